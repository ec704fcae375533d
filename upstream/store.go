package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hubbub/hubbub/internal/pebblelog"
)

// ErrClosed is returned (wrapped) by a closed Store.
var ErrClosed = errors.New("upstream: store closed")

// Store keeps the upstreams durably. Every method is safe for concurrent
// use; every mutation is atomic and durable when it returns without error.
// With several nodes sharing one Store (upstream/redisupstreams), any node
// may serve a callback or run a task of any upstream, so reads must see
// every node's writes.
type Store interface {
	// Get returns the upstream id and whether it exists.
	Get(ctx context.Context, id string) (Upstream, bool, error)
	// List returns every upstream in id order.
	List(ctx context.Context) ([]Upstream, error)
	// Put stores u, replacing any upstream with its id.
	Put(ctx context.Context, u Upstream) error
	// Create stores u unless an upstream with its id exists, atomically;
	// it returns the upstream stored under the id and whether it is u.
	Create(ctx context.Context, u Upstream) (Upstream, bool, error)
	// Update atomically reads the upstream id, lets fn change it and
	// stores the result; it reports false (and calls nothing) when there
	// is no such upstream. An error from fn is returned and nothing
	// changes. fn may be called more than once by a backend that retries
	// optimistically, and must not have side effects.
	Update(ctx context.Context, id string, fn func(u *Upstream) error) (Upstream, bool, error)
	// Delete removes the upstream id (nothing when it does not exist).
	Delete(ctx context.Context, id string) error
	// Close releases the store; later calls fail with ErrClosed.
	Close() error
}

// pebbleStore is the one-node Store: a Pebble database (one key per id,
// JSON values) with every upstream in memory. Each change is fsynced
// before it returns.
type pebbleStore struct {
	db     *pebble.DB
	mu     sync.Mutex
	closed bool
	byID   map[string]Upstream
}

// OpenPebble opens (creating if needed) the one-node Store in dir.
func OpenPebble(dir string, logger *slog.Logger) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.New(logger)})
	if err != nil {
		return nil, fmt.Errorf("upstream: open %s: %w", dir, err)
	}
	s := &pebbleStore{db: db, byID: make(map[string]Upstream)}
	it, err := db.NewIter(nil)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upstream: load: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		var u Upstream
		if err := json.Unmarshal(it.Value(), &u); err != nil {
			_ = it.Close()
			_ = db.Close()
			return nil, fmt.Errorf("upstream: decode %q: %w", it.Key(), err)
		}
		s.byID[u.ID] = u
	}
	if err := it.Close(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upstream: load: %w", err)
	}
	return s, nil
}

func (s *pebbleStore) Get(_ context.Context, id string) (Upstream, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Upstream{}, false, ErrClosed
	}
	u, ok := s.byID[id]
	return u, ok, nil
}

func (s *pebbleStore) List(context.Context) ([]Upstream, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	out := make([]Upstream, 0, len(s.byID))
	for _, u := range s.byID {
		out = append(out, u)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Upstream) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *pebbleStore) Put(_ context.Context, u Upstream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(u)
}

func (s *pebbleStore) putLocked(u Upstream) error {
	if s.closed {
		return ErrClosed
	}
	v, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("upstream: encode: %w", err)
	}
	if err := s.db.Set([]byte(u.ID), v, pebble.Sync); err != nil {
		return fmt.Errorf("upstream: put %s: %w", u.ID, err)
	}
	s.byID[u.ID] = u
	return nil
}

func (s *pebbleStore) Create(_ context.Context, u Upstream) (Upstream, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Upstream{}, false, ErrClosed
	}
	if cur, ok := s.byID[u.ID]; ok {
		return cur, false, nil
	}
	if err := s.putLocked(u); err != nil {
		return Upstream{}, false, err
	}
	return u, true, nil
}

func (s *pebbleStore) Update(_ context.Context, id string, fn func(u *Upstream) error) (Upstream, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Upstream{}, false, ErrClosed
	}
	u, ok := s.byID[id]
	if !ok {
		return Upstream{}, false, nil
	}
	if err := fn(&u); err != nil {
		return s.byID[id], true, err
	}
	return u, true, s.putLocked(u)
}

func (s *pebbleStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.db.Delete([]byte(id), pebble.Sync); err != nil {
		return fmt.Errorf("upstream: delete %s: %w", id, err)
	}
	delete(s.byID, id)
	return nil
}

func (s *pebbleStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// Checkpoint writes a consistent copy of the upstreams into dir, which must
// not exist (created on the same file system: table files are
// hard-linked). Changes wait for it.
func (s *pebbleStore) Checkpoint(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("upstream: checkpoint to %s: %w", dir, err)
	}
	return nil
}
