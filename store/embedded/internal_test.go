package embedded

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

func TestEventCodec(t *testing.T) {
	in := &event.Event{
		Type: "t", Key: "k", ContentType: "text/plain", IdempotencyKey: "i",
		Time: time.Unix(1700000000, 123456000).UTC(), // whole µs, as the store assigns
		Data: []byte{0, 1, 2, 255}, Tags: []string{"a", ""}, Geo: &event.Geo{Lat: -90, Lon: 180},
	}
	b := appendEvent(nil, in)
	if len(b) > eventSize(in) {
		t.Errorf("encoded %d bytes, eventSize says %d", len(b), eventSize(in))
	}
	var out event.Event
	if err := decodeEvent(b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Time.Equal(in.Time) || out.Type != in.Type || out.Key != in.Key || out.ContentType != in.ContentType ||
		out.IdempotencyKey != in.IdempotencyKey || !bytes.Equal(out.Data, in.Data) || *out.Geo != *in.Geo ||
		len(out.Tags) != 2 || out.Tags[0] != "a" || out.Tags[1] != "" {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	for i := range b { // truncations must fail, never panic
		var e event.Event
		_ = decodeEvent(b[:i], &e)
	}
}

func TestKeysSortBySeqAndTopic(t *testing.T) {
	if bytes.Compare(eventKey("a", 255), eventKey("a", 256)) >= 0 {
		t.Fatal("seq 255 does not sort before 256")
	}
	// "a" must not interleave with "a\x00..." or "ab".
	lo, hi := eventKey("a", 0), appendSeqBound(topicKey(prefixEvent, "a", 8), ^uint64(0))
	for _, other := range []string{"ab", "a\x00", "b", ""} {
		k := eventKey(other, 1)
		if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
			t.Fatalf("key of topic %q falls in topic a's range", other)
		}
	}
}

func countEvents(t *testing.T, s *Store, topic string) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: eventKey(topic, 0),
		UpperBound: appendSeqBound(topicKey(prefixEvent, topic, 8), ^uint64(0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// TestCountTrimmingDeletes checks that events trimmed by count are removed
// from disk, not only hidden.
func TestCountTrimmingDeletes(t *testing.T) {
	s, err := Open(t.TempDir(), store.Config{Retention: store.Retention{MaxEvents: 10}},
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 1000 {
		d := event.Draft{Topics: []string{"p"}, Type: "message", Data: []byte(fmt.Sprint(i))}
		if _, err := s.Append(ctx, []event.Draft{d}); err != nil {
			t.Fatal(err)
		}
	}
	if n := countEvents(t, s, "p"); n > 10+purgeSlack+1 {
		t.Fatalf("%d events on disk with MaxEvents 10", n)
	}
	if err := s.TrimExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, s, "p"); n != 10 {
		t.Fatalf("%d events on disk after a sweep, want 10", n)
	}
}

// TestExpiryWithoutSweep checks that idempotency keys and latest-by-key
// entries expire exactly at their limit even when no sweep has run.
func TestExpiryWithoutSweep(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := Open(t.TempDir(), store.Config{
		Now: clock, IdempotencyWindow: time.Hour,
		Retention: store.Retention{MaxAge: 2 * time.Hour},
	}, WithLogger(slog.New(slog.DiscardHandler)), WithTrimInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := event.Draft{Topics: []string{"x"}, Type: "message", Key: "k", IdempotencyKey: "i"}
	appendOne := func() store.Result {
		t.Helper()
		res, err := s.Append(ctx, []event.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	appendOne()
	now = now.Add(time.Hour - time.Nanosecond)
	if r := appendOne(); !r.Duplicate {
		t.Fatalf("just inside the window: %+v", r)
	}
	now = now.Add(time.Nanosecond)
	if r := appendOne(); r.Duplicate || r.Seq != 2 {
		t.Fatalf("at the end of the window: %+v, want a new event", r)
	}
	if _, ok, err := s.Latest(ctx, "x", "k"); !ok || err != nil {
		t.Fatalf("Latest = %v, %v", ok, err)
	}
	now = now.Add(2*time.Hour + time.Nanosecond)
	if _, ok, err := s.Latest(ctx, "x", "k"); ok || err != nil {
		t.Fatalf("Latest past MaxAge = %v, %v; want forgotten", ok, err)
	}
}

// TestBackgroundSweep checks that the sweep runs by itself.
func TestBackgroundSweep(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, err := Open(t.TempDir(), store.Config{Now: clock, Retention: store.Retention{MaxAge: time.Minute}},
		WithLogger(slog.New(slog.DiscardHandler)), WithTrimInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Append(ctx, []event.Draft{{Topics: []string{"bg"}, Type: "message"}}); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(time.Hour))
	deadline := time.After(10 * time.Second)
	for {
		s.headsMu.RLock()
		ch, h := s.published, s.heads["bg"]
		s.headsMu.RUnlock()
		if h.First == 2 {
			return
		}
		select {
		case <-ch: // heads changed: look again
		case <-deadline:
			t.Fatalf("head still %+v: the sweep did not run", h)
		}
	}
}
