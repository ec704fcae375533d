package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/tasks"
)

var errCorrupt = errors.New("redis tasks: corrupt reply or record")

// Enqueue implements tasks.Queue. The new task's id sorts after every id
// of its kind made before, on any node. A zero RunAt means now.
func (q *Queue) Enqueue(ctx context.Context, t tasks.Task) (string, bool, error) {
	if err := validKind(t.Kind); err != nil {
		return "", false, err
	}
	if len(t.Key) > maxKeyLen {
		return "", false, fmt.Errorf("%w: key longer than %d bytes", tasks.ErrInvalid, maxKeyLen)
	}
	if err := q.enter(ctx); err != nil {
		return "", false, err
	}
	defer q.closeMu.RUnlock()
	if _, ok := q.indexed.Load(t.Kind); !ok {
		if err := q.index(ctx, t.Kind); err != nil {
			return "", false, err
		}
	}
	now := q.now()
	runAt := t.RunAt
	if runAt.IsZero() {
		runAt = now
	}
	tag := tagOf(t.Kind)
	keys := []string{q.base(tag) + t.Kind + ":due"}
	id := q.ids.Next(now)[:16] + tag
	args := append(q.header(tag, 5), t.Kind, t.Key, t.Payload, encTime(runAt), id)
	v, err := q.scripts.enqueue.Run(ctx, q.rdb, keys, args...).Slice()
	if err != nil {
		return "", false, fmt.Errorf("redis tasks: enqueue %s: %w", t.Kind, err)
	}
	if len(v) != 4 {
		return "", false, fmt.Errorf("redis tasks: enqueue %s: %w", t.Kind, errCorrupt)
	}
	added, got := num(v[0]) == 1, str(v[1])
	if added && got != id {
		q.ids.Observe(got) // the kind's ids were ahead of this clock
	}
	if num(v[2]) == 1 {
		q.notify(t.Kind)
	}
	if num(v[3]) == 1 { // the kind's keys were missing: Redis may have lost the index too
		if err := q.index(ctx, t.Kind); err != nil {
			q.log.Warn("tasks: kinds index not updated", "kind", t.Kind, "err", err)
		}
	}
	return got, added, nil
}

// index adds kind to the kinds set read by Stats.
func (q *Queue) index(ctx context.Context, kind string) error {
	if err := q.rdb.SAdd(ctx, q.kindsK, kind).Err(); err != nil {
		return fmt.Errorf("redis tasks: index kind %s: %w", kind, err)
	}
	q.indexed.Store(kind, struct{}{})
	return nil
}

// Claim implements tasks.Queue.
func (q *Queue) Claim(ctx context.Context, kind string, n int, lease time.Duration) ([]tasks.Task, error) {
	if err := validKind(kind); err != nil {
		return nil, err
	}
	if lease <= 0 {
		return nil, fmt.Errorf("%w: lease must be positive", tasks.ErrInvalid)
	}
	if err := q.enter(ctx); err != nil {
		return nil, err
	}
	defer q.closeMu.RUnlock()
	if n <= 0 {
		return nil, nil
	}
	now := q.now()
	until := now.Add(lease)
	tag := tagOf(kind)
	args := append(q.header(tag, 4), kind, encTime(now.Add(1)), encTime(until), n)
	v, err := q.scripts.claim.Run(ctx, q.rdb, []string{q.base(tag) + kind + ":due"}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis tasks: claim %s: %w", kind, err)
	}
	if len(v) < 1 || (len(v)-1)%6 != 0 {
		return nil, fmt.Errorf("redis tasks: claim %s: %w", kind, errCorrupt)
	}
	out := make([]tasks.Task, 0, (len(v)-1)/6)
	for i := 1; i < len(v); i += 6 {
		runAt, err := decTime(str(v[i+5]))
		if err != nil {
			return nil, fmt.Errorf("redis tasks: claim %s: %w", kind, err)
		}
		t := tasks.Task{
			ID:         str(v[i]),
			Kind:       kind,
			Key:        str(v[i+1]),
			RunAt:      runAt,
			Attempt:    int(num(v[i+3])),
			LastError:  str(v[i+4]),
			State:      tasks.Running,
			LeaseUntil: until,
		}
		if p := str(v[i+2]); p != "" {
			t.Payload = []byte(p)
		}
		out = append(out, t)
	}
	if num(v[0]) == 1 {
		q.notify(kind) // leases released that this call did not claim
	}
	return out, nil
}

// byID runs one of the scripts on the task id (see scripts.go).
func (q *Queue) byID(ctx context.Context, what string, s *goredis.Script, id string, extra ...any) error {
	if !tasks.ValidID(id) {
		return fmt.Errorf("redis tasks: %s: %w: %q", what, tasks.ErrNotFound, id)
	}
	if err := q.enter(ctx); err != nil {
		return err
	}
	defer q.closeMu.RUnlock()
	tag := id[16:]
	args := append(append(q.header(tag, 1+len(extra)), id), extra...)
	v, err := s.Run(ctx, q.rdb, []string{q.base(tag) + "t:" + id}, args...).Slice()
	if err != nil {
		return fmt.Errorf("redis tasks: %s %s: %w", what, id, err)
	}
	if len(v) < 2 {
		return fmt.Errorf("redis tasks: %s %s: %w", what, id, errCorrupt)
	}
	switch str(v[0]) {
	case "nf":
		return fmt.Errorf("redis tasks: %s: %w: %s", what, tasks.ErrNotFound, id)
	case "nr":
		return fmt.Errorf("redis tasks: %s: %w: %s", what, tasks.ErrNotRunning, id)
	case "ok":
	default:
		return fmt.Errorf("redis tasks: %s %s: %w", what, id, errCorrupt)
	}
	if num(v[1]) == 1 && len(v) > 2 {
		q.notify(str(v[2]))
	}
	return nil
}

// Complete implements tasks.Queue.
func (q *Queue) Complete(ctx context.Context, id string) error {
	return q.byID(ctx, "complete", q.scripts.complete, id)
}

// Retry implements tasks.Queue. A zero runAt means now.
func (q *Queue) Retry(ctx context.Context, id string, runAt time.Time, errMsg string) error {
	if runAt.IsZero() {
		runAt = q.now()
	}
	return q.byID(ctx, "retry", q.scripts.retry, id, encTime(runAt), errMsg)
}

// Extend implements tasks.Queue.
func (q *Queue) Extend(ctx context.Context, id string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("%w: lease must be positive", tasks.ErrInvalid)
	}
	return q.byID(ctx, "extend", q.scripts.extend, id, encTime(q.now().Add(lease)))
}

// Dead implements tasks.Queue. Dead of a task already dead changes nothing.
func (q *Queue) Dead(ctx context.Context, id string, reason string) error {
	return q.byID(ctx, "dead", q.scripts.dead, id, reason, encTime(q.now()))
}

// Get implements tasks.Queue.
func (q *Queue) Get(ctx context.Context, id string) (tasks.Task, error) {
	if !tasks.ValidID(id) {
		return tasks.Task{}, fmt.Errorf("redis tasks: get: %w: %q", tasks.ErrNotFound, id)
	}
	if err := q.enter(ctx); err != nil {
		return tasks.Task{}, err
	}
	defer q.closeMu.RUnlock()
	m, err := q.rdb.HGetAll(ctx, q.base(id[16:])+"t:"+id).Result()
	if err != nil {
		return tasks.Task{}, fmt.Errorf("redis tasks: get %s: %w", id, err)
	}
	if len(m) == 0 {
		return tasks.Task{}, fmt.Errorf("redis tasks: get: %w: %s", tasks.ErrNotFound, id)
	}
	t, err := parseTask(id, m)
	if err != nil {
		return tasks.Task{}, fmt.Errorf("redis tasks: get: %w", err)
	}
	return t, nil
}

// parseTask decodes a task hash (see the package doc for its fields).
func parseTask(id string, m map[string]string) (tasks.Task, error) {
	t := tasks.Task{ID: id, Kind: m["k"], Key: m["y"], LastError: m["e"]}
	if p := m["p"]; p != "" {
		t.Payload = []byte(p)
	}
	a, err := strconv.Atoi(m["a"])
	if err != nil || t.Kind == "" {
		return t, fmt.Errorf("task %s: %w", id, errCorrupt)
	}
	t.Attempt = a
	if t.RunAt, err = decTime(m["r"]); err != nil {
		return t, fmt.Errorf("task %s: %w", id, err)
	}
	switch m["s"] {
	case "1":
		t.State = tasks.Pending
	case "2":
		t.State = tasks.Running
		t.LeaseUntil, err = decTime(m["l"])
	case "3":
		t.State = tasks.Dead
		t.DeadAt, err = decTime(m["x"])
	default:
		err = errCorrupt
	}
	if err != nil {
		return t, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

// ListDead implements tasks.Queue. The ids come from one read of the
// dead-letter set and the tasks from one pipeline after it; dead tasks are
// never removed, so none is missing.
func (q *Queue) ListDead(ctx context.Context, kind, after string, limit int) ([]tasks.Task, error) {
	if err := validKind(kind); err != nil {
		return nil, err
	}
	if err := q.enter(ctx); err != nil {
		return nil, err
	}
	defer q.closeMu.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	lo := "-"
	if after != "" {
		lo = "(" + after
	}
	base := q.base(tagOf(kind))
	ids, err := q.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: base + kind + ":dead", Start: lo, Stop: "+", ByLex: true, Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis tasks: list dead %s: %w", kind, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	_, err = q.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, base+"t:"+id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis tasks: list dead %s: %w", kind, err)
	}
	out := make([]tasks.Task, 0, len(ids))
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		t, err := parseTask(ids[i], m)
		if err != nil {
			return nil, fmt.Errorf("redis tasks: list dead %s: %w", kind, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// NextDue implements tasks.Queue. A pending task whose key a running task
// holds is left out: the end of the running task's lease counts instead.
func (q *Queue) NextDue(ctx context.Context, kind string) (time.Time, bool, error) {
	if err := validKind(kind); err != nil {
		return time.Time{}, false, err
	}
	if err := q.enter(ctx); err != nil {
		return time.Time{}, false, err
	}
	defer q.closeMu.RUnlock()
	tag := tagOf(kind)
	args := append(q.header(tag, 1), kind)
	s, err := q.scripts.nextDue.Run(ctx, q.rdb, []string{q.base(tag) + kind + ":due"}, args...).Text()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redis tasks: next due %s: %w", kind, err)
	}
	t, err := decTime(s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redis tasks: next due %s: %w", kind, err)
	}
	return t, true, nil
}

// Stats implements tasks.Queue. Each kind's counts are read atomically;
// different kinds at slightly different moments.
func (q *Queue) Stats(ctx context.Context) (map[string]tasks.Counts, error) {
	if err := q.enter(ctx); err != nil {
		return nil, err
	}
	defer q.closeMu.RUnlock()
	kinds, err := q.rdb.SMembers(ctx, q.kindsK).Result()
	if err != nil {
		return nil, fmt.Errorf("redis tasks: stats: %w", err)
	}
	out := make(map[string]tasks.Counts, len(kinds))
	for _, kind := range kinds {
		tag := tagOf(kind)
		args := append(q.header(tag, 1), kind)
		v, err := q.scripts.counts.Run(ctx, q.rdb, []string{q.base(tag) + kind + ":due"}, args...).Slice()
		if err != nil {
			return nil, fmt.Errorf("redis tasks: stats %s: %w", kind, err)
		}
		if len(v) != 3 {
			return nil, fmt.Errorf("redis tasks: stats %s: %w", kind, errCorrupt)
		}
		c := tasks.Counts{Pending: int(num(v[0])), Running: int(num(v[1])), Dead: int(num(v[2]))}
		if c != (tasks.Counts{}) {
			out[kind] = c
		}
	}
	return out, nil
}

// str returns a script reply element as a string.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// num returns a script reply element as an integer (0 if it is none).
func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
