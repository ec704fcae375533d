package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Heartbeat timing: a node writes its record every HeartbeatEvery, and the
// record expires HeartbeatTTL after the last write, so a dead node drops
// out of the list within HeartbeatTTL.
const (
	HeartbeatEvery = 2 * time.Second
	HeartbeatTTL   = 6 * time.Second
)

// Node is what a node says of itself in its heartbeat.
type Node struct {
	ID          string    `json:"id"`
	Address     string    `json:"address"`
	Version     string    `json:"version"`
	Started     time.Time `json:"started"`
	Connections int64     `json:"connections"` // live subscriber connections
	Heartbeat   time.Time `json:"heartbeat"`   // when this record was written
	// Watching names the other nodes whose $sys/stats/NODE topic a live
	// subscriber of this node watches, so that they publish their stats
	// although nobody on their own node watches (the dashboard of a
	// several-node deployment).
	Watching []string `json:"watching,omitempty"`
}

// Registry keeps node records in Redis:
//
//	<P>:{nodes}:node:<id>  string: the node's JSON, expiring HeartbeatTTL after its write
//	<P>:{nodes}:all        sorted set: id -> expiry (unix ms), to list without SCAN
//
// It is safe for concurrent use.
type Registry struct {
	rdb    goredis.UniversalClient
	prefix string
	logger *slog.Logger
}

// NewRegistry returns a Registry under key prefix prefix.
func NewRegistry(rdb goredis.UniversalClient, prefix string, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.Default()
	}
	return &Registry{rdb: rdb, prefix: prefix, logger: logger}
}

// Every key carries the hash tag {nodes}, so the heartbeat's transaction and
// List's MGET stay in one hash slot on Redis Cluster.
func (r *Registry) key(id string) string { return r.prefix + ":{nodes}:node:" + id }
func (r *Registry) index() string        { return r.prefix + ":{nodes}:all" }

// Beat writes n's record (n.Heartbeat is set to now).
func (r *Registry) Beat(ctx context.Context, n Node) error {
	now := time.Now()
	n.Heartbeat = now.UTC()
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	pipe := r.rdb.TxPipeline()
	pipe.Set(ctx, r.key(n.ID), b, HeartbeatTTL)
	pipe.ZAdd(ctx, r.index(), goredis.Z{Score: float64(now.Add(HeartbeatTTL).UnixMilli()), Member: n.ID})
	pipe.ZRemRangeByScore(ctx, r.index(), "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Run beats every HeartbeatEvery with what self returns, until ctx is done;
// then it removes the record, so a node shut down cleanly leaves the list at
// once. Failures are logged once per outage.
func (r *Registry) Run(ctx context.Context, self func() Node) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	failing := false
	for {
		bctx, cancel := context.WithTimeout(ctx, HeartbeatEvery)
		err := r.Beat(bctx, self())
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			r.logger.Warn("heartbeat to Redis failed", "err", err)
			failing = true
		case err == nil && failing:
			r.logger.Info("heartbeat to Redis works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			id := self().ID
			_ = r.rdb.Del(dctx, r.key(id)).Err()
			_ = r.rdb.ZRem(dctx, r.index(), id).Err()
			cancel()
			return
		case <-t.C:
		}
	}
}

// List returns the nodes whose heartbeat has not expired, by id.
func (r *Registry) List(ctx context.Context) ([]Node, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := r.rdb.ZRangeByScore(ctx, r.index(), &goredis.ZRangeBy{Min: now, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(ids) == 0 {
		return []Node{}, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key(id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]Node, 0, len(vals))
	var bad error
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		var n Node
		if err := json.Unmarshal([]byte(s), &n); err != nil {
			bad = errors.Join(bad, err)
			continue
		}
		out = append(out, n)
	}
	if bad != nil {
		r.logger.Warn("list nodes: unreadable records skipped", "err", bad)
	}
	slices.SortFunc(out, func(a, b Node) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}
