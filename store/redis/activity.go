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

// On a cluster: an append's time is at least its server's clock less
// clusterLag (the index entry is written first, ahead; see commit.go), and
// the servers' clocks may be clusterSkew apart. Watermark allows for both.
const (
	clusterLag  = 2 * time.Second
	clusterSkew = time.Second
)

// Watermark implements store.ActivityIndex: the index server's clock, just
// before now. On one server every append that runs later stamps its events
// with that clock or a later time; on a cluster it allows clusterLag and
// clusterSkew.
func (s *Store) Watermark(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if err := s.acquire(); err != nil {
		return time.Time{}, err
	}
	defer s.closeMu.RUnlock()
	v, err := s.scripts.time.Run(ctx, s.rdb, []string{s.index}).Text()
	if err != nil {
		return time.Time{}, fmt.Errorf("redis store: watermark: %w", err)
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("redis store: watermark: server time %q: %w", v, errCorrupt)
	}
	w := microTime(us - 1)
	if s.cluster {
		w = w.Add(-clusterLag - clusterSkew)
	}
	return w, nil
}

// Active implements store.ActivityIndex on the topics index. Where the
// entry to page on from is still in place, one script finds it by rank;
// otherwise (the first page, or the topic has moved on) the place is found
// by score: the rest of that score's entries (few: the topics one
// pipeline wrote in one microsecond), then what follows.
func (s *Store) Active(ctx context.Context, after store.Activity, limit int) ([]store.Activity, error) {
	if limit <= 0 {
		return nil, errBadLimit
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	score := strconv.FormatInt(after.Time.UnixMicro(), 10)
	v, err := s.scripts.active.Run(ctx, s.rdb, []string{s.index}, score, after.Topic, limit).Slice()
	switch {
	case err == nil:
		return parseActivity(v)
	case !errors.Is(err, goredis.Nil):
		return nil, fmt.Errorf("redis store: activity: %w", err)
	}
	var out []store.Activity
	same, err := s.rdb.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
		Key: s.index, Start: score, Stop: score, ByScore: true,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: activity: %w", err)
	}
	for _, z := range same {
		if m, _ := z.Member.(string); m > after.Topic && len(out) < limit {
			out = append(out, store.Activity{Time: microTime(int64(z.Score)), Topic: m})
		}
	}
	if len(out) == limit {
		return out, nil
	}
	rest, err := s.rdb.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
		Key: s.index, Start: "(" + score, Stop: "+inf", ByScore: true, Count: int64(limit - len(out)),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: activity: %w", err)
	}
	for _, z := range rest {
		m, _ := z.Member.(string)
		out = append(out, store.Activity{Time: microTime(int64(z.Score)), Topic: m})
	}
	return out, nil
}

// parseActivity reads ZRANGE ... WITHSCORES as a script returns it:
// member, score, member, score...
func parseActivity(v []any) ([]store.Activity, error) {
	out := make([]store.Activity, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		m, ok1 := v[i].(string)
		sc, ok2 := v[i+1].(string)
		us, err := strconv.ParseFloat(sc, 64)
		if !ok1 || !ok2 || err != nil {
			return nil, fmt.Errorf("redis store: activity entry %v %v: %w", v[i], v[i+1], errCorrupt)
		}
		out = append(out, store.Activity{Time: microTime(int64(us)), Topic: m})
	}
	return out, nil
}
