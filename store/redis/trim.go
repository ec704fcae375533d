package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/store"
)

// Sweep tuning: topics per ZSCAN page and pipeline, and latest-by-key
// entries per HSCAN step.
const (
	sweepTopics = 256
	sweepLatest = "512"
)

// TrimExpired implements store.Trimmer: for every topic in the topics index
// it drops events and latest-by-key entries older than Retention.MaxAge as
// of Config.Now, one short script call per topic (and per HSCAN step of a
// large latest-by-key hash), so appends are never held up for long. A topic
// whose whole log expires keeps its meta (epoch and last seq). Topics whose
// keys are gone (Redis lost them) leave the index. Idempotency keys need no
// sweep: appends judge their age themselves, and Redis expires them.
//
// Several nodes may sweep at once; the scripts make that harmless.
func (s *Store) TrimExpired(ctx context.Context) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	maxAge := s.cfg.Retention.MaxAge
	if maxAge <= 0 {
		return ctx.Err()
	}
	cutoff := strconv.FormatInt(s.now().Add(-maxAge).UnixMicro(), 10)
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		kv, next, err := s.rdb.ZScan(ctx, s.index, cursor, "", sweepTopics).Result()
		if err != nil {
			return fmt.Errorf("redis store: trim: scan topics: %w", err)
		}
		if err := s.trimTopics(ctx, kv, cutoff); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// trimTopics trims the topics of one ZSCAN page, {topic, score, ...}.
func (s *Store) trimTopics(ctx context.Context, kv []string, cutoff string) error {
	type job struct {
		topic, score, cursor string
		keys                 []string
	}
	jobs := make([]*job, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		b := s.base(kv[i])
		jobs = append(jobs, &job{topic: kv[i], score: kv[i+1], cursor: "0",
			keys: []string{b + "log", b + "meta", b + "latest", b + "keys"}})
	}
	for len(jobs) > 0 {
		pipe := s.rdb.Pipeline()
		cmds := make([]*goredis.Cmd, len(jobs))
		for i, j := range jobs {
			cmds[i] = s.scripts.trim.EvalSha(ctx, pipe, j.keys, cutoff, j.cursor, sweepLatest)
		}
		_, _ = pipe.Exec(ctx)
		var more []*job
		for i, j := range jobs {
			v, err := cmds[i].StringSlice()
			if goredis.HasErrorPrefix(err, "NOSCRIPT") {
				v, err = s.scripts.trim.Run(ctx, s.rdb, j.keys, cutoff, j.cursor, sweepLatest).StringSlice()
			}
			if err != nil {
				return fmt.Errorf("redis store: trim %q: %w", j.topic, err)
			}
			switch {
			case len(v) == 1 && v[0] == "gone":
				err := s.scripts.unindex.Run(ctx, s.rdb, []string{s.index}, j.topic, j.score, cutoff).Err()
				if err != nil && !errors.Is(err, goredis.Nil) {
					return fmt.Errorf("redis store: trim: unindex %q: %w", j.topic, err)
				}
			case len(v) == 2 && v[0] == "ok":
				if v[1] != "0" {
					j.cursor = v[1]
					more = append(more, j)
				}
			default:
				return fmt.Errorf("redis store: trim %q: answer %q: %w", j.topic, v, errCorrupt)
			}
		}
		jobs = more
	}
	return nil
}

// sweepLoop runs TrimExpired every interval until Close.
func (s *Store) sweepLoop(interval time.Duration) {
	defer close(s.swept)
	store.Sweep(s.stop, interval, s.TrimExpired, s.log)
}

// TrimTopic implements store.TopicTrimmer in one script call, atomic with
// the topic's appends: the events kept are the newest keep when it runs.
func (s *Store) TrimTopic(ctx context.Context, topic string, keep uint64) (store.Head, error) {
	if err := s.acquire(); err != nil {
		return store.Head{}, err
	}
	defer s.closeMu.RUnlock()
	b := s.base(topic)
	v, err := s.scripts.trimCount.Run(ctx, s.rdb, []string{b + "log", b + "meta"},
		strconv.FormatUint(min(keep, maxExact), 10)).Slice()
	if err != nil {
		return store.Head{}, fmt.Errorf("redis store: trim %q: %w", topic, err)
	}
	h, err := parseHead(v)
	if err != nil {
		return store.Head{}, fmt.Errorf("redis store: trim %q: %w", topic, err)
	}
	return h, nil
}
