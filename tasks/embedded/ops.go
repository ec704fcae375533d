package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/tasks"
)

// Enqueue implements tasks.Queue. It returns once the task (or the change
// of the pending task's RunAt) is synced to disk; when it only finds a
// pending task to absorb it, it still waits until that task is durable.
func (q *Queue) Enqueue(ctx context.Context, t tasks.Task) (string, bool, error) {
	if err := validKind(t.Kind); err != nil {
		return "", false, err
	}
	if len(t.Key) > maxKeyLen {
		return "", false, fmt.Errorf("%w: key longer than %d bytes", tasks.ErrInvalid, maxKeyLen)
	}
	var (
		id    string
		added bool
	)
	err := q.update(ctx, func(tx *txn) error {
		runAt := tx.now
		if !t.RunAt.IsZero() {
			runAt = t.RunAt.UnixNano()
		}
		if t.Key != "" {
			other, err := tx.pending(t.Kind, t.Key)
			if err != nil {
				return err
			}
			if other != nil {
				id = other.ID
				if runAt < other.runAt {
					return tx.move(other, runAt)
				}
				// Nothing changes, but the caller must not return before
				// the pending task is durable: rewriting its dedup entry
				// makes this batch's sync cover it.
				return tx.b.Set(dedupKey(t.Kind, t.Key), []byte(id), nil)
			}
		}
		id = tx.newID()
		r := &record{runAt: runAt}
		r.ID, r.Kind, r.Key, r.Payload, r.State = id, t.Kind, t.Key, t.Payload, tasks.Pending
		if err := tx.addPending(r); err != nil {
			return err
		}
		added = true
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("tasks/embedded: enqueue %s: %w", t.Kind, err)
	}
	return id, added, nil
}

// newID returns an id not used by any record.
func (tx *txn) newID() string {
	for {
		id := tx.q.ids.Next(time.Unix(0, tx.now))
		_, closer, err := tx.b.Get(taskKey(id))
		if err != nil { // pebble.ErrNotFound, or a read error the write will meet too
			return id
		}
		_ = closer.Close()
	}
}

// pending returns the pending task holding the dedup key, or nil.
func (tx *txn) pending(kind, key string) (*record, error) {
	v, closer, err := tx.b.Get(dedupKey(kind, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := string(v)
	_ = closer.Close()
	r, err := tx.get(id)
	if errors.Is(err, tasks.ErrNotFound) || (err == nil && r.State != tasks.Pending) {
		// Cannot happen while the invariants hold; heal the index.
		tx.q.log.Warn("tasks: stale dedup entry dropped", "kind", kind, "key", key, "id", id)
		return nil, tx.b.Delete(dedupKey(kind, key), nil)
	}
	return r, err
}

// addPending writes r, pending at r.runAt, with its index entries.
func (tx *txn) addPending(r *record) error {
	r.State, r.lease = tasks.Pending, 0
	if err := tx.b.Set(timedKey(prefixDue, r.Kind, r.runAt, r.ID), nil, nil); err != nil {
		return err
	}
	tx.noteDue(r.Kind, r.runAt)
	if r.Key != "" {
		if err := tx.b.Set(dedupKey(r.Kind, r.Key), []byte(r.ID), nil); err != nil {
			return err
		}
	}
	tx.add(r.Kind, 1, 0, 0)
	tx.ready[r.Kind] = true
	return tx.put(r)
}

// move makes the pending task r due at runAt.
func (tx *txn) move(r *record, runAt int64) error {
	if err := tx.b.Delete(timedKey(prefixDue, r.Kind, r.runAt, r.ID), nil); err != nil {
		return err
	}
	r.runAt = runAt
	if err := tx.b.Set(timedKey(prefixDue, r.Kind, r.runAt, r.ID), nil, nil); err != nil {
		return err
	}
	tx.noteDue(r.Kind, r.runAt)
	tx.ready[r.Kind] = true
	return tx.put(r)
}

// requeue makes the running task r pending at runAt with Attempt+1, or
// merges it into the pending task holding its key.
func (tx *txn) requeue(r *record, runAt int64, errMsg string) error {
	if err := tx.unrun(r); err != nil {
		return err
	}
	r.Attempt++
	r.LastError = errMsg
	r.runAt = runAt
	if r.Key != "" {
		other, err := tx.pending(r.Kind, r.Key)
		if err != nil {
			return err
		}
		if other != nil {
			if err := tx.b.Delete(taskKey(r.ID), nil); err != nil {
				return err
			}
			other.Attempt = max(other.Attempt, r.Attempt)
			other.LastError = errMsg
			if runAt < other.runAt {
				return tx.move(other, runAt)
			}
			return tx.put(other)
		}
	}
	return tx.addPending(r)
}

// Claim implements tasks.Queue.
func (q *Queue) Claim(ctx context.Context, kind string, n int, lease time.Duration) ([]tasks.Task, error) {
	if err := validKind(kind); err != nil {
		return nil, err
	}
	if lease <= 0 {
		return nil, fmt.Errorf("%w: lease must be positive", tasks.ErrInvalid)
	}
	if n <= 0 {
		return nil, nil
	}
	var out []tasks.Task
	err := q.update(ctx, func(tx *txn) error {
		out = out[:0]
		upTo := appendTime(kindKey(prefixLease, kind, 8), tx.now+1)
		var ended [][]byte
		if err := tx.scan(kindKey(prefixLease, kind, 0), upTo, -1, func(k []byte) {
			ended = append(ended, k)
		}); err != nil {
			return err
		}
		for _, k := range ended {
			if err := tx.releaseLease(k); err != nil {
				return err
			}
		}
		clear(tx.ready) // the caller is the one who would be told
		until := tx.now + int64(lease)
		return tx.scanDue(kind, tx.now, func(r *record) (bool, bool, error) {
			if err := tx.claim(r, until); err != nil {
				return false, false, err
			}
			out = append(out, r.task())
			return len(out) < n, true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("tasks/embedded: claim %s: %w", kind, err)
	}
	return out, nil
}

// releaseLease requeues the task of an ended lease (its l key).
func (tx *txn) releaseLease(k []byte) error {
	_, _, id, err := splitTimed(k)
	if err != nil {
		return err
	}
	r, err := tx.getRunning(id)
	if err != nil {
		return err
	}
	return tx.requeue(r, r.runAt, "lease expired")
}

// scanDue calls fn, in due order, with the pending tasks of kind due at
// or before upTo whose key no running task holds, until fn returns more
// false. fn reports whether it consumed the task's due entry (claimed it).
// The scan starts at Queue.dueLow and leaves the bound it found in
// tx.dueScan: the time of the first entry it left in place, the time it
// stopped at, or upTo+1 when it consumed every entry up to upTo.
func (tx *txn) scanDue(kind string, upTo int64, fn func(r *record) (more, consumed bool, err error)) error {
	lo := kindKey(prefixDue, kind, 0)
	if low, ok := tx.q.dueLow[kind]; ok {
		if ins, ok := tx.dueIns[kind]; ok && ins < low {
			low = ins // written earlier in this txn (a released lease, say)
		}
		lo = appendTime(kindKey(prefixDue, kind, 8), low)
	}
	it, err := tx.b.NewIter(&pebble.IterOptions{
		LowerBound: lo,
		UpperBound: appendTime(kindKey(prefixDue, kind, 8), upTo+1),
	})
	if err != nil {
		return err
	}
	bound, known := upTo+1, false
	keep := func(t int64) {
		if !known {
			bound, known = t, true
		}
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, t, id, err := splitTimed(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		r, err := tx.get(id)
		if err == nil && r.Key != "" {
			var busy bool
			busy, err = tx.exists(runKey(kind, r.Key))
			if err == nil && busy {
				keep(t)
				continue // runs of one key never overlap
			}
		}
		more, consumed := false, false
		if err == nil {
			more, consumed, err = fn(r)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
		if !consumed || !more {
			keep(t) // left in place, or where the scan stopped
		}
		if !more {
			break
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if tx.dueScan == nil {
		tx.dueScan = make(map[string]int64)
	}
	tx.dueScan[kind] = bound
	return nil
}

func (tx *txn) exists(k []byte) (bool, error) {
	_, closer, err := tx.b.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// claim leases the pending task r until until.
func (tx *txn) claim(r *record, until int64) error {
	if err := tx.unpend(r); err != nil {
		return err
	}
	r.State, r.lease = tasks.Running, until
	if err := tx.b.Set(timedKey(prefixLease, r.Kind, until, r.ID), nil, nil); err != nil {
		return err
	}
	if r.Key != "" {
		if err := tx.b.Set(runKey(r.Kind, r.Key), []byte(r.ID), nil); err != nil {
			return err
		}
	}
	tx.add(r.Kind, 0, 1, 0)
	return tx.put(r)
}

// unrun removes the index entries of the running task r. If a pending task
// was waiting for r's key, its kind is notified.
func (tx *txn) unrun(r *record) error {
	if err := tx.b.Delete(timedKey(prefixLease, r.Kind, r.lease, r.ID), nil); err != nil {
		return err
	}
	tx.add(r.Kind, 0, -1, 0)
	if r.Key == "" {
		return nil
	}
	if err := tx.b.Delete(runKey(r.Kind, r.Key), nil); err != nil {
		return err
	}
	waiting, err := tx.exists(dedupKey(r.Kind, r.Key))
	if waiting {
		tx.ready[r.Kind] = true
	}
	return err
}

// unpend removes the index entries of the pending task r.
func (tx *txn) unpend(r *record) error {
	if err := tx.b.Delete(timedKey(prefixDue, r.Kind, r.runAt, r.ID), nil); err != nil {
		return err
	}
	if r.Key != "" {
		dk := dedupKey(r.Kind, r.Key)
		v, closer, err := tx.b.Get(dk)
		if err == nil {
			holds := string(v) == r.ID
			_ = closer.Close()
			if holds {
				if err := tx.b.Delete(dk, nil); err != nil {
					return err
				}
			}
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
	}
	tx.add(r.Kind, -1, 0, 0)
	return nil
}

// Complete implements tasks.Queue.
func (q *Queue) Complete(ctx context.Context, id string) error {
	err := q.update(ctx, func(tx *txn) error {
		r, err := tx.getRunning(id)
		if err != nil {
			return err
		}
		if err := tx.unrun(r); err != nil {
			return err
		}
		return tx.b.Delete(taskKey(id), nil)
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: complete: %w", err)
	}
	return nil
}

// Retry implements tasks.Queue. A zero runAt means now.
func (q *Queue) Retry(ctx context.Context, id string, runAt time.Time, errMsg string) error {
	err := q.update(ctx, func(tx *txn) error {
		r, err := tx.getRunning(id)
		if err != nil {
			return err
		}
		at := tx.now
		if !runAt.IsZero() {
			at = runAt.UnixNano()
		}
		return tx.requeue(r, at, errMsg)
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: retry: %w", err)
	}
	return nil
}

// Extend implements tasks.Queue.
func (q *Queue) Extend(ctx context.Context, id string, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("%w: lease must be positive", tasks.ErrInvalid)
	}
	err := q.update(ctx, func(tx *txn) error {
		r, err := tx.getRunning(id)
		if err != nil {
			return err
		}
		if err := tx.b.Delete(timedKey(prefixLease, r.Kind, r.lease, r.ID), nil); err != nil {
			return err
		}
		r.lease = tx.now + int64(lease)
		if err := tx.b.Set(timedKey(prefixLease, r.Kind, r.lease, r.ID), nil, nil); err != nil {
			return err
		}
		return tx.put(r)
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: extend: %w", err)
	}
	return nil
}

// Dead implements tasks.Queue. Dead of a task already dead changes nothing.
func (q *Queue) Dead(ctx context.Context, id string, reason string) error {
	err := q.update(ctx, func(tx *txn) error {
		r, err := tx.get(id)
		if err != nil {
			return err
		}
		switch r.State {
		case tasks.Dead:
			return nil
		case tasks.Running:
			if err := tx.unrun(r); err != nil {
				return err
			}
		default:
			if err := tx.unpend(r); err != nil {
				return err
			}
		}
		r.State, r.LastError, r.dead, r.lease = tasks.Dead, reason, tx.now, 0
		if err := tx.b.Set(deadKey(r.Kind, r.ID), nil, nil); err != nil {
			return err
		}
		tx.add(r.Kind, 0, 0, 1)
		return tx.put(r)
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: dead: %w", err)
	}
	return nil
}

// Get implements tasks.Queue.
func (q *Queue) Get(ctx context.Context, id string) (tasks.Task, error) {
	if err := q.enter(ctx); err != nil {
		return tasks.Task{}, err
	}
	defer q.closeMu.RUnlock()
	r, err := q.get(id)
	if err != nil {
		return tasks.Task{}, fmt.Errorf("tasks/embedded: get: %w", err)
	}
	return r.task(), nil
}

func (q *Queue) get(id string) (*record, error) {
	if !tasks.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", tasks.ErrNotFound, id)
	}
	v, closer, err := q.db.Get(taskKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", tasks.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeRecord(id, v)
}

// ListDead implements tasks.Queue.
func (q *Queue) ListDead(ctx context.Context, kind, after string, limit int) ([]tasks.Task, error) {
	if err := validKind(kind); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := q.enter(ctx); err != nil {
		return nil, err
	}
	defer q.closeMu.RUnlock()
	p := kindKey(prefixDead, kind, 0)
	lo := p
	if after != "" {
		lo = append(deadKey(kind, after), 0)
	}
	var ids []string
	err := q.scan(lo, prefixEnd(p), func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(p):]))
		return len(ids) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("tasks/embedded: list dead %s: %w", kind, err)
	}
	out := make([]tasks.Task, 0, len(ids))
	for _, id := range ids {
		r, err := q.get(id)
		if errors.Is(err, tasks.ErrNotFound) {
			continue // removed between the scan and now: cannot happen today
		}
		if err != nil {
			return nil, fmt.Errorf("tasks/embedded: list dead %s: %w", kind, err)
		}
		out = append(out, r.task())
	}
	return out, nil
}

// NextDue implements tasks.Queue. A pending task whose key a running task
// holds is not due before that run ends, so it is left out: the end of the
// running task's lease counts instead.
func (q *Queue) NextDue(ctx context.Context, kind string) (time.Time, bool, error) {
	if err := validKind(kind); err != nil {
		return time.Time{}, false, err
	}
	var (
		next  int64
		found bool
	)
	see := func(t int64) {
		if !found || t < next {
			next = t
		}
		found = true
	}
	err := q.update(ctx, func(tx *txn) error { // reads only: nothing is written
		lo := kindKey(prefixLease, kind, 0)
		var first []byte
		if err := tx.scan(lo, prefixEnd(lo), 1, func(k []byte) { first = k }); err != nil {
			return err
		}
		if first != nil {
			_, t, _, err := splitTimed(first)
			if err != nil {
				return err
			}
			see(t)
		}
		return tx.scanDue(kind, math.MaxInt64-1, func(r *record) (bool, bool, error) {
			see(r.runAt)
			return false, false, nil
		})
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("tasks/embedded: next due %s: %w", kind, err)
	}
	if !found {
		return time.Time{}, false, nil
	}
	return time.Unix(0, next), true, nil
}
