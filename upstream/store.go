package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hubbub/hubbub/internal/pebblelog"
)

// errClosed is returned by a closed store.
var errClosed = errors.New("upstream: store closed")

// store keeps the upstreams in a Pebble database (one key per id, JSON
// values), with every upstream in memory. Each change is fsynced before
// it returns.
type store struct {
	db     *pebble.DB
	mu     sync.Mutex
	closed bool
	byID   map[string]Upstream
}

func openStore(dir string, logger *slog.Logger) (*store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.New(logger)})
	if err != nil {
		return nil, fmt.Errorf("upstream: open %s: %w", dir, err)
	}
	s := &store{db: db, byID: make(map[string]Upstream)}
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

func (s *store) get(id string) (Upstream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	return u, ok
}

// list returns every upstream in id order.
func (s *store) list() []Upstream {
	s.mu.Lock()
	out := make([]Upstream, 0, len(s.byID))
	for _, u := range s.byID {
		out = append(out, u)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Upstream) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// put stores u durably.
func (s *store) put(u Upstream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(u)
}

func (s *store) putLocked(u Upstream) error {
	if s.closed {
		return errClosed
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

// update applies fn to the upstream id and stores the result durably; it
// returns false when there is no such upstream. An error from fn is
// returned and nothing changes.
func (s *store) update(_ context.Context, id string, fn func(u *Upstream) error) (Upstream, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	if !ok {
		return Upstream{}, false, nil
	}
	if err := fn(&u); err != nil {
		return u, true, err
	}
	return u, true, s.putLocked(u)
}

// delete removes the upstream id durably.
func (s *store) delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := s.db.Delete([]byte(id), pebble.Sync); err != nil {
		return fmt.Errorf("upstream: delete %s: %w", id, err)
	}
	delete(s.byID, id)
	return nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}
