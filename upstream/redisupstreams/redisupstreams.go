// Package redisupstreams keeps the conduit's upstreams (package upstream)
// in Redis, so that several hubbub nodes sharing one Redis and key prefix
// share one set of upstreams: a remote hub's verification GET or content
// POST may reach any node behind the load balancer, and the subscribe and
// renewal tasks (on the shared task queue) may run on any node.
//
// # Key layout
//
//	<P>:upstream:{up}:u   hash: upstream id -> the JSON of an upstream.Upstream
//
// One hash holds every upstream: there are few (each is configured by an
// operator), and List is one HGETALL.
//
// # Atomicity and durability
//
// Put, Get and Delete are single commands. Update is optimistic: it reads
// the JSON, calls fn on the decoded copy and writes the result with a
// script that compares the stored JSON with the JSON it read
// (compare-and-set), reading again and calling fn again when another node
// changed the upstream in between. A mutation has returned once Redis
// applied it; it is as durable as the server's persistence makes it
// ("appendonly yes" with "appendfsync always" for the upstream.Store
// guarantee). The client never retries a command by itself.
package redisupstreams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/upstream"
)

// maxUpdateAttempts bounds Update's optimistic retries.
const maxUpdateAttempts = 1000

// casLua: KEYS[1] the hash, ARGV[1] id, ARGV[2] the JSON read, ARGV[3] the
// new JSON. 1 stored, 0 changed meanwhile, -1 deleted meanwhile.
const casLua = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`

// Store is an upstream.Store in Redis. It is safe for concurrent use.
type Store struct {
	rdb    goredis.UniversalClient
	key    string
	cas    *goredis.Script
	mu     sync.RWMutex // held for reading by calls, for writing by Close
	closed bool
}

var _ upstream.Store = (*Store)(nil)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db or
// rediss://) and returns the upstreams kept under prefix, which must be
// non-empty and without '{' or '}'. It fails if Redis cannot be reached
// within ctx. The caller (usually upstream.Manager) must Close it.
func Open(ctx context.Context, url, prefix string) (*Store, error) {
	if prefix == "" || strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redisupstreams: bad key prefix %q: must be non-empty, without '{' or '}'", prefix)
	}
	rdb, err := redisconn.New(url, 4) // few, rare operations
	if err != nil {
		return nil, fmt.Errorf("redisupstreams: %w", err)
	}
	s := &Store{rdb: rdb, key: prefix + ":upstream:{up}:u", cas: goredis.NewScript(casLua)}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redisupstreams: connect: %w", err)
	}
	return s, nil
}

func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return upstream.ErrClosed
	}
	return nil
}

func (s *Store) getRaw(ctx context.Context, id string) (string, bool, error) {
	v, err := s.rdb.HGet(ctx, s.key, id).Result()
	if errors.Is(err, goredis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redisupstreams: get %s: %w", id, err)
	}
	return v, true, nil
}

func decode(v string) (upstream.Upstream, error) {
	var u upstream.Upstream
	if err := json.Unmarshal([]byte(v), &u); err != nil {
		return u, fmt.Errorf("redisupstreams: decode: %w", err)
	}
	return u, nil
}

// Get implements upstream.Store.
func (s *Store) Get(ctx context.Context, id string) (upstream.Upstream, bool, error) {
	if err := s.acquire(); err != nil {
		return upstream.Upstream{}, false, err
	}
	defer s.mu.RUnlock()
	raw, ok, err := s.getRaw(ctx, id)
	if err != nil || !ok {
		return upstream.Upstream{}, false, err
	}
	u, err := decode(raw)
	return u, err == nil, err
}

// List implements upstream.Store.
func (s *Store) List(ctx context.Context) ([]upstream.Upstream, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	all, err := s.rdb.HGetAll(ctx, s.key).Result()
	if err != nil {
		return nil, fmt.Errorf("redisupstreams: list: %w", err)
	}
	out := make([]upstream.Upstream, 0, len(all))
	for _, v := range all {
		u, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b upstream.Upstream) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Put implements upstream.Store.
func (s *Store) Put(ctx context.Context, u upstream.Upstream) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	v, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("redisupstreams: encode: %w", err)
	}
	if err := s.rdb.HSet(ctx, s.key, u.ID, v).Err(); err != nil {
		return fmt.Errorf("redisupstreams: put %s: %w", u.ID, err)
	}
	return nil
}

// Create implements upstream.Store with HSETNX.
func (s *Store) Create(ctx context.Context, u upstream.Upstream) (upstream.Upstream, bool, error) {
	if err := s.acquire(); err != nil {
		return upstream.Upstream{}, false, err
	}
	defer s.mu.RUnlock()
	v, err := json.Marshal(u)
	if err != nil {
		return upstream.Upstream{}, false, fmt.Errorf("redisupstreams: encode: %w", err)
	}
	created, err := s.rdb.HSetNX(ctx, s.key, u.ID, v).Result()
	if err != nil {
		return upstream.Upstream{}, false, fmt.Errorf("redisupstreams: create %s: %w", u.ID, err)
	}
	if created {
		return u, true, nil
	}
	raw, ok, err := s.getRaw(ctx, u.ID)
	if err != nil {
		return upstream.Upstream{}, false, err
	}
	if !ok { // deleted in between: as if created and deleted at once
		return u, false, nil
	}
	cur, err := decode(raw)
	return cur, false, err
}

// Update implements upstream.Store with compare-and-set, retried while
// another writer got in between (up to maxUpdateAttempts times).
func (s *Store) Update(ctx context.Context, id string, fn func(u *upstream.Upstream) error) (upstream.Upstream, bool, error) {
	if err := s.acquire(); err != nil {
		return upstream.Upstream{}, false, err
	}
	defer s.mu.RUnlock()
	for range maxUpdateAttempts {
		raw, ok, err := s.getRaw(ctx, id)
		if err != nil || !ok {
			return upstream.Upstream{}, false, err
		}
		old, err := decode(raw)
		if err != nil {
			return upstream.Upstream{}, true, err
		}
		u, _ := decode(raw) // a separate copy for fn
		if err := fn(&u); err != nil {
			return old, true, err
		}
		if u.ID != id {
			return old, true, fmt.Errorf("redisupstreams: update %s: the id changed", id)
		}
		v, err := json.Marshal(u)
		if err != nil {
			return old, true, fmt.Errorf("redisupstreams: encode: %w", err)
		}
		n, err := s.cas.Run(ctx, s.rdb, []string{s.key}, id, raw, v).Int()
		if err != nil {
			return old, true, fmt.Errorf("redisupstreams: update %s: %w", id, err)
		}
		switch n {
		case 1:
			return u, true, nil
		case -1:
			return upstream.Upstream{}, false, nil
		}
	}
	return upstream.Upstream{}, true, fmt.Errorf("redisupstreams: update %s: gave up after %d conflicting attempts", id, maxUpdateAttempts)
}

// Delete implements upstream.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := s.rdb.HDel(ctx, s.key, id).Err(); err != nil {
		return fmt.Errorf("redisupstreams: delete %s: %w", id, err)
	}
	return nil
}

// Close closes the connection; it may be called twice.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.rdb.Close()
}
