package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/store"
)

var _ store.ActivityIndex = (*Store)(nil)

// The store's clock. Times are whole microseconds, assigned one per batch
// by the committer, and never go backwards across the whole store (not
// only per topic), even when the wall clock does or the store is reopened:
// that is what lets Watermark be exact.
//
// clock.pending holds the time of every batch that was given a time but
// whose heads are not yet published (readable), oldest first; batches are
// published in the order they were timed. clock.floor is the latest time a
// Watermark promised: later batches are timed at or after it.
type clock struct {
	now     func() time.Time
	last    int64 // the last time assigned (unix µs)
	floor   int64
	pending []int64
}

// assign returns the time of the next batch and marks it pending. Only the
// committer calls it.
func (s *Store) assignTime() time.Time {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	c := &s.clock
	us := max(c.now().UnixMicro(), c.last, c.floor)
	c.last = us
	c.pending = append(c.pending, us)
	return time.UnixMicro(us).UTC()
}

// timePublished drops the oldest pending batch time: that batch is
// readable now, or failed. Only the publisher calls it.
func (s *Store) timePublished() {
	s.clockMu.Lock()
	s.clock.pending = s.clock.pending[1:]
	if len(s.clock.pending) == 0 {
		s.clock.pending = nil
	}
	s.clockMu.Unlock()
}

// Watermark implements store.ActivityIndex. It is exact: the time just
// before the oldest batch not yet readable, or, when there is none, just
// before the current time, which later batches are then not given.
func (s *Store) Watermark(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return time.Time{}, store.ErrClosed
	}
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	c := &s.clock
	w := max(c.now().UnixMicro(), c.last, c.floor)
	c.floor = w
	if len(c.pending) > 0 {
		w = c.pending[0] // at most c.last
	}
	return time.UnixMicro(w - 1).UTC(), nil
}

// activityKey is a<time: unix µs, 8 bytes big-endian><topic bytes>: the
// index in (time, topic) order, one entry per topic.
func activityKey(us int64, topic string) []byte {
	k := make([]byte, 0, 9+len(topic))
	k = append(k, prefixActivity)
	k = binary.BigEndian.AppendUint64(k, uint64(max(us, 0)))
	return append(k, topic...)
}

// loadActivity reads the whole index: each topic's latest time, and the
// latest time of all, which the clock starts from.
func (s *Store) loadActivity() (map[string]int64, int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixActivity},
		UpperBound: []byte{prefixActivity + 1},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("embedded: load activity index: %w", err)
	}
	active := make(map[string]int64)
	var latest int64
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 10 {
			_ = it.Close()
			return nil, 0, fmt.Errorf("embedded: activity index key %q: %w", k, errCorrupt)
		}
		us := int64(binary.BigEndian.Uint64(k[1:9]))
		active[string(k[9:])] = us
		latest = max(latest, us)
	}
	if err := it.Close(); err != nil {
		return nil, 0, fmt.Errorf("embedded: load activity index: %w", err)
	}
	return active, latest, nil
}

// Active implements store.ActivityIndex by a scan of the a... keys. An entry
// is written in the same batch as its events, so it is exactly as durable;
// it may be seen just before the batch is synced, when its events are not
// yet readable (which the contract allows).
func (s *Store) Active(ctx context.Context, after store.Activity, limit int) ([]store.Activity, error) {
	if limit <= 0 {
		return nil, errBadLimit
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	lower := activityKey(after.Time.UnixMicro(), after.Topic)
	if after.Topic != "" {
		lower = append(lower, 0) // the next key after it
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{prefixActivity + 1}})
	if err != nil {
		return nil, fmt.Errorf("embedded: activity: %w", err)
	}
	defer it.Close()
	var out []store.Activity
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) < 10 {
			return nil, fmt.Errorf("embedded: activity index key %q: %w", k, errCorrupt)
		}
		out = append(out, store.Activity{
			Time:  time.UnixMicro(int64(binary.BigEndian.Uint64(k[1:9]))).UTC(),
			Topic: string(k[9:]),
		})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: activity: %w", err)
	}
	return out, nil
}
