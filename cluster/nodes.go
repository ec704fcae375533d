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
	// Instance is random per process: two records of one ID with
	// different instances are two processes claiming the same name.
	Instance string `json:"instance,omitempty"`
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

// Beat writes n's record (n.Heartbeat is set to now). It returns the
// record it replaced when that one was written by another instance (a
// second process with the same ID), else nil.
func (r *Registry) Beat(ctx context.Context, n Node) (*Node, error) {
	now := time.Now()
	n.Heartbeat = now.UTC()
	b, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	pipe := r.rdb.TxPipeline()
	old := pipe.SetArgs(ctx, r.key(n.ID), b, goredis.SetArgs{TTL: HeartbeatTTL, Get: true})
	pipe.ZAdd(ctx, r.index(), goredis.Z{Score: float64(now.Add(HeartbeatTTL).UnixMilli()), Member: n.ID})
	pipe.ZRemRangeByScore(ctx, r.index(), "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	cmds, err := pipe.Exec(ctx)
	if errors.Is(err, goredis.Nil) {
		err = nil // SET GET found no record; the other commands may still have failed:
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, goredis.Nil) {
			err = e
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	prev, err := old.Result()
	if err != nil || n.Instance == "" {
		return nil, nil // no previous record (goredis.Nil), or no way to tell
	}
	var p Node
	if json.Unmarshal([]byte(prev), &p) != nil || p.Instance == "" || p.Instance == n.Instance {
		return nil, nil
	}
	return &p, nil
}

// Run beats every HeartbeatEvery with what self returns, until ctx is done;
// then it removes the record, so a node shut down cleanly leaves the list at
// once. Failures are logged once per outage; another process writing
// records under the same ID is logged as an error once per such process.
func (r *Registry) Run(ctx context.Context, self func() Node) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	failing := false
	seen := map[string]bool{} // instances of other processes already reported
	for {
		bctx, cancel := context.WithTimeout(ctx, HeartbeatEvery)
		other, err := r.Beat(bctx, self())
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			r.logger.Warn("heartbeat to Redis failed", "err", err)
			failing = true
		case err == nil && failing:
			r.logger.Info("heartbeat to Redis works again")
			failing = false
		}
		if other != nil && !seen[other.Instance] && len(seen) < 100 {
			seen[other.Instance] = true
			r.logger.Error("another running node uses this --node-id: give each node its own, or /api/nodes, the dashboard and $sys/stats mix the two up",
				"node_id", other.ID, "other_address", other.Address, "other_started", other.Started)
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

// Get returns the record of the node id, and whether there is a live one.
func (r *Registry) Get(ctx context.Context, id string) (Node, bool, error) {
	s, err := r.rdb.Get(ctx, r.key(id)).Result()
	if errors.Is(err, goredis.Nil) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, fmt.Errorf("read node %s: %w", id, err)
	}
	var n Node
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return Node{}, false, fmt.Errorf("read node %s: %w", id, err)
	}
	return n, true, nil
}

// DuplicateError says that a live node already goes by the ID a starting
// node asked for.
type DuplicateError struct{ Other Node }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("node id %q is taken by a running node (address %s, started %s): give each node its own --node-id",
		e.Other.ID, e.Other.Address, e.Other.Started.Format(time.RFC3339))
}

// Claim checks, before a node with ID id and instance starts beating, that
// no other live process goes by id. A record of another instance may be
// that of a process that just died (a crash leaves its record until it
// expires), so Claim watches it: if it is written again, its writer is
// alive and Claim returns a *DuplicateError; if it expires, the ID is
// free. So Claim may block up to HeartbeatTTL plus a poll, or until ctx
// ends. Two processes claiming one ID at the same instant both pass;
// Run then logs the conflict.
func (r *Registry) Claim(ctx context.Context, id, instance string) error {
	n, ok, err := r.Get(ctx, id)
	if err != nil || !ok || n.Instance == instance {
		return err
	}
	r.logger.Info("a node with this --node-id beat recently; waiting to see whether it is still alive",
		"node_id", id, "other_address", n.Address, "last_heartbeat", n.Heartbeat, "wait_at_most", HeartbeatTTL)
	deadline := time.Now().Add(HeartbeatTTL + time.Second)
	poll := time.NewTicker(HeartbeatEvery / 8)
	defer poll.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
		m, ok, err := r.Get(ctx, id)
		switch {
		case err != nil:
			return err
		case !ok:
			return nil // expired: its writer is gone
		case m.Instance != n.Instance || !m.Heartbeat.Equal(n.Heartbeat):
			return &DuplicateError{Other: m}
		}
	}
	return nil
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
