package hub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

type fixture struct {
	hub    *hub.Hub
	log    store.Log
	broker *broker.Broker
}

// newHub opens a hub on a fresh embedded store. wire=false leaves the
// store's commit listener unconnected so a test can feed the broker itself.
func newHub(t testing.TB, ret store.Retention, wire bool, opts hub.Options) fixture {
	t.Helper()
	b := broker.New()
	cfg := store.Config{Retention: ret}
	if wire {
		cfg.OnCommit = b.OnCommit
	}
	st, err := embedded.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return fixture{hub: hub.New(st, b, opts), log: st, broker: b}
}

func publish(t testing.TB, h *hub.Hub, topic string, n int) []store.Result {
	t.Helper()
	var out []store.Result
	for i := 0; i < n; i++ {
		res, err := h.Publish(context.Background(), []event.Draft{{Topics: []string{topic}, Data: fmt.Appendf(nil, `{"i":%d}`, i)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res...)
	}
	return out
}

// collect reads messages until n events arrived (resets are returned too),
// failing after a deadline.
func collect(t *testing.T, s *hub.Subscription, n int) (events []*event.Item, resets []*hub.Reset) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(events) < n {
		msgs, err := s.Next(ctx, nil)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(events), n, err)
		}
		for _, m := range msgs {
			if m.Reset != nil {
				resets = append(resets, m.Reset)
			} else {
				events = append(events, m.Item)
			}
		}
	}
	return events, resets
}

func seqs(items []*event.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func wantSeqs(t *testing.T, got []*event.Item, from, to uint64) {
	t.Helper()
	if len(got) != int(to-from+1) {
		t.Fatalf("got seqs %v, want %d..%d", seqs(got), from, to)
	}
	for i, it := range got {
		if it.Seq != from+uint64(i) {
			t.Fatalf("got seqs %v, want %d..%d", seqs(got), from, to)
		}
	}
}

func sub(t *testing.T, h *hub.Hub, req hub.SubscribeRequest) *hub.Subscription {
	t.Helper()
	s, err := h.Subscribe(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestLiveOnly(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publish(t, f.hub, "a", 3)
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}})
	publish(t, f.hub, "a", 2)
	got, resets := collect(t, s, 2)
	wantSeqs(t, got, 4, 5)
	if len(resets) != 0 {
		t.Fatalf("unexpected resets %v", resets)
	}
	if c := s.Cursor(); c != got[1].Position().String() {
		t.Fatalf("cursor %q, want %q", c, got[1].Position())
	}
}

func TestResumeFromCursorThenLive(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	res := publish(t, f.hub, "a", 5)
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": res[1].Position()}})
	got, _ := collect(t, s, 3)
	wantSeqs(t, got, 3, 5)
	publish(t, f.hub, "a", 1)
	got, _ = collect(t, s, 1)
	wantSeqs(t, got, 6, 6)
}

func TestLastN(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publish(t, f.hub, "a", 5)
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a", "b"}, Last: 2})
	got, _ := collect(t, s, 2)
	wantSeqs(t, got, 4, 5)
}

// Subscribing while a publisher runs must give every seq once, in order:
// the history/live hand-over has no gap and no duplicate.
func TestCatchUpWhilePublishing(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{SubscriberBuffer: 100000})
	const total = 3000
	var wg sync.WaitGroup
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			if i == 500 {
				close(started)
			}
			if _, err := f.hub.Publish(context.Background(), []event.Draft{{Topics: []string{"a"}}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	<-started
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": {Seq: 0}}})
	got, _ := collect(t, s, total)
	wg.Wait()
	wantSeqs(t, got, 1, total)
}

func TestResetTrimmed(t *testing.T) {
	f := newHub(t, store.Retention{MaxEvents: 5}, true, hub.Options{})
	res := publish(t, f.hub, "a", 12)
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": res[0].Position()}})
	got, resets := collect(t, s, 5)
	wantSeqs(t, got, 8, 12)
	if len(resets) != 1 || resets[0].Reason != hub.ResetTrimmed || resets[0].Cursor.Seq != 7 || resets[0].Cursor.Epoch != res[0].Epoch {
		t.Fatalf("resets %+v, want one trimmed reset at %s:7", resets, res[0].Epoch)
	}
}

func TestResetEpochAndUnknown(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	res := publish(t, f.hub, "a", 3)
	for _, c := range []struct {
		pos    event.Position
		reason string
	}{
		{event.Position{Epoch: "other", Seq: 2}, hub.ResetEpoch},
		{event.Position{Epoch: res[0].Epoch, Seq: 99}, hub.ResetUnknown},
		{event.Position{Seq: 99}, hub.ResetUnknown},
	} {
		s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": c.pos}})
		got, resets := collect(t, s, 3)
		wantSeqs(t, got, 1, 3)
		if len(resets) != 1 || resets[0].Reason != c.reason {
			t.Fatalf("cursor %v: resets %+v, want %s", c.pos, resets, c.reason)
		}
	}
	// A bare seq within the log resumes without a reset.
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": {Seq: 2}}})
	got, resets := collect(t, s, 1)
	wantSeqs(t, got, 3, 3)
	if len(resets) != 0 {
		t.Fatalf("bare seq: unexpected resets %+v", resets)
	}
}

// A live event that skips seqs (a lost or reordered broker message) makes
// the subscription fill the gap from the log, then drop the late arrival.
func TestGapFilledFromLog(t *testing.T) {
	f := newHub(t, store.Retention{}, false, hub.Options{})
	res := publish(t, f.hub, "a", 4) // stored, but the broker heard nothing
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": res[0].Position()}})
	got, _ := collect(t, s, 3) // 2..4 from the log
	wantSeqs(t, got, 2, 4)
	more := publish(t, f.hub, "a", 3) // 5, 6, 7 stored
	page, err := f.log.Read(context.Background(), "a", store.Query{After: 4, Limit: 10})
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("read: %v %d", err, len(page.Events))
	}
	f.broker.Publish(page.Events[2:]) // 7 arrives first: a gap
	f.broker.Publish(page.Events[:2]) // then 5, 6 late
	got, _ = collect(t, s, 3)
	wantSeqs(t, got, 5, 7)
	_ = more
	f.broker.Publish(page.Events[:1]) // a duplicate of 5 is dropped
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if msgs, err := s.Next(ctx, nil); err == nil {
		t.Fatalf("duplicate delivered: %+v", msgs)
	}
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{SubscriberBuffer: 4})
	slow := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}})
	fast := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"a"}, Buffer: 1000})
	publish(t, f.hub, "a", 10)
	got, _ := collect(t, fast, 10)
	wantSeqs(t, got, 1, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := slow.Next(ctx, nil); !errors.Is(err, broker.ErrSlow) {
		t.Fatalf("slow subscriber: err %v, want ErrSlow", err)
	}
	if f.broker.Stats.CutOff.Load() != 1 {
		t.Fatalf("cut-offs = %d", f.broker.Stats.CutOff.Load())
	}
}

func TestPatternAndMultiCursorResume(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"photos/tag/*"}})
	publish(t, f.hub, "photos/user/1", 1)
	publish(t, f.hub, "photos/tag/kitten", 2)
	publish(t, f.hub, "photos/tag/dog", 1)
	got, _ := collect(t, s, 3)
	if got[0].Topic != "photos/tag/kitten" || got[2].Topic != "photos/tag/dog" {
		t.Fatalf("got %v", got)
	}
	cursor := s.Cursor()
	s.Close()
	publish(t, f.hub, "photos/tag/kitten", 2) // while disconnected
	c, err := event.ParseCursor(cursor, "")
	if err != nil {
		t.Fatal(err)
	}
	s2 := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"photos/tag/*"}, Cursor: c})
	got, _ = collect(t, s2, 2)
	wantSeqs(t, got, 3, 4)
}

func TestRetrieve(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	res := publish(t, f.hub, "a", 15)
	ctx := context.Background()
	r, err := f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Events) != 10 || r.Events[0].Seq != 6 || r.Events[9].Seq != 15 || r.Cursor["a"].Seq != 15 {
		t.Fatalf("newest 10: %d events, first %d, cursor %v", len(r.Events), r.Events[0].Seq, r.Cursor)
	}
	r, err = f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"a"}, After: true, Cursor: event.Cursor{"a": res[2].Position()}, Count: 4})
	if err != nil || len(r.Events) != 4 || r.Events[0].Seq != 4 || r.Cursor["a"].Seq != 7 {
		t.Fatalf("after 3: %v %+v", err, r)
	}
	r, err = f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"a"}, Before: event.Cursor{"a": res[4].Position()}, Count: 3})
	if err != nil || len(r.Events) != 3 || r.Events[0].Seq != 2 || r.Events[2].Seq != 4 {
		t.Fatalf("before 5: %v %+v", err, r)
	}
	if _, err := f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"a"}, Count: hub.MaxCount + 1}); !event.IsValidation(err) {
		t.Fatalf("count over max: %v", err)
	}
}

func TestPublishValidation(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	bad := []event.Draft{
		{},
		{Topics: []string{""}},
		{Topics: []string{"a/*"}},
		{Topics: []string{"a"}, Type: "no spaces"},
		{Topics: []string{"a", "a"}},
		{Topics: []string{"a"}, Geo: &event.Geo{Lat: 91}},
	}
	for _, d := range bad {
		if _, err := f.hub.Publish(context.Background(), []event.Draft{d}); !event.IsValidation(err) {
			t.Errorf("draft %+v: err %v, want a validation error", d, err)
		}
	}
	h, _ := f.log.Head(context.Background(), "a")
	if h.Last != 0 {
		t.Fatalf("bad drafts stored %d events", h.Last)
	}
}
