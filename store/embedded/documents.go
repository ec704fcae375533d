package embedded

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

var _ store.DocumentLister = (*Store)(nil)

// Documents implements store.DocumentLister by a scan of the topic's
// k<topic><key> range. Entries newer than the published head (written but
// not yet synced) are left out: they arrive through the commit listener.
func (s *Store) Documents(ctx context.Context, topic, after string, limit int) ([]*event.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("embedded: documents: limit must be positive")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	prefix := topicKey(prefixLatest, topic, 0)
	lower := prefix
	if after != "" {
		lower = append(latestKey(topic, after), 0) // the next key after it
	}
	s.headsMu.RLock()
	published := s.heads[topic].Last
	s.headsMu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("embedded: documents %q: %w", topic, err)
	}
	defer it.Close()
	var out []*event.Event
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		seq, epoch, rec, err := splitLatest(it.Value())
		if err != nil {
			return nil, fmt.Errorf("embedded: documents %q: %w", topic, err)
		}
		if seq > published {
			continue
		}
		if t, ok := eventTime(rec); ok && s.expired(t) {
			continue
		}
		e := &event.Event{Topic: topic, Epoch: epoch, Seq: seq}
		if err := decodeEvent(append([]byte(nil), rec...), e); err != nil {
			return nil, fmt.Errorf("embedded: documents %q: %w", topic, err)
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: documents %q: %w", topic, err)
	}
	return out, nil
}
