package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

func ev(topic string, seq uint64) *event.Event {
	return &event.Event{Topic: topic, Epoch: "e", Seq: seq, Type: "message", Data: []byte(`{}`)}
}

// TestAckDoesNotWaitOnFanout publishes through the real path (hub, embedded
// store, its commit listener) while the fan-out is stalled: every publish
// is acknowledged, the events wait in the queue, and once the fan-out goes
// on the subscriber gets them all in order.
func TestAckDoesNotWaitOnFanout(t *testing.T) {
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{OnCommit: b.OnCommit})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := hub.New(st, b, hub.Options{})
	var tapped atomic.Int64
	b.Tap(func(evs []*event.Event) { tapped.Add(int64(len(evs))) })
	sub := b.Subscribe(broker.Spec{Topics: []string{"t"}, Limit: 100})
	defer sub.Close()

	release := broker.StallFanout(b)
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		if _, err := h.Publish(ctx, []event.Draft{{Topics: []string{"t"}, Data: fmt.Appendf(nil, `{"i":%d}`, i)}}); err != nil {
			release()
			t.Fatalf("publish %d while the fan-out is stalled: %v", i, err)
		}
	}
	queued := broker.Queued(b)
	release()
	if queued != n {
		t.Fatalf("%d events queued after %d acknowledged publishes, want all", queued, n)
	}
	if tapped.Load() != n {
		t.Fatalf("taps saw %d events, want %d", tapped.Load(), n)
	}
	b.Flush()
	got, err := sub.Take(nil)
	if err != nil || len(got) != n {
		t.Fatalf("got %d events (%v), want %d", len(got), err, n)
	}
	for i, it := range got {
		if it.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, it.Seq)
		}
	}
}

// TestOverflowCutsSubscribers: OnCommit never waits; when the queue is full
// it drops, and every live subscriber is cut off (to resume from the log)
// before anything queued after the drop reaches it. Taps see every event.
func TestOverflowCutsSubscribers(t *testing.T) {
	b := broker.New()
	broker.SetQueueEvents(b, 4)
	var tapped atomic.Int64
	b.Tap(func(evs []*event.Event) { tapped.Add(int64(len(evs))) })
	p, _ := event.CompilePattern("**")
	exact := b.Subscribe(broker.Spec{Topics: []string{"a"}, Limit: 100})
	pat := b.Subscribe(broker.Spec{Patterns: []*event.Pattern{p}, Limit: 100})
	idle := b.Subscribe(broker.Spec{Topics: []string{"quiet"}, Limit: 100})

	release := broker.StallFanout(b)
	for i := range 10 {
		b.OnCommit([]*event.Event{ev("a", uint64(i+1))}) // returns while stalled
	}
	release()
	b.Flush()
	if got := b.Stats.Overflows.Load(); got != 6 {
		t.Fatalf("%d batches dropped, want 6", got)
	}
	if tapped.Load() != 10 {
		t.Fatalf("taps saw %d events, want 10", tapped.Load())
	}
	for name, s := range map[string]*broker.Sub{"exact": exact, "pattern": pat, "idle": idle} {
		if _, err := s.Take(nil); !errors.Is(err, broker.ErrSlow) {
			t.Errorf("%s: %v, want ErrSlow", name, err)
		}
		select {
		case <-s.CutOff():
		default:
			t.Errorf("%s: CutOff not closed", name)
		}
		s.Close()
	}
	// Subscribers that come after are served as usual.
	late := b.Subscribe(broker.Spec{Topics: []string{"a"}, Limit: 100})
	defer late.Close()
	b.OnCommit([]*event.Event{ev("a", 11)})
	b.Flush()
	if got, err := late.Take(nil); err != nil || len(got) != 1 {
		t.Fatalf("late subscriber: %d events (%v)", len(got), err)
	}
}

// TestPublishWaitsForRoom: Publish (the bridge's way in) does not drop when
// the queue is full; it waits, and everything arrives.
func TestPublishWaitsForRoom(t *testing.T) {
	b := broker.New()
	broker.SetQueueEvents(b, 4)
	sub := b.Subscribe(broker.Spec{Topics: []string{"a"}, Limit: 100})
	defer sub.Close()
	release := broker.StallFanout(b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			b.Publish([]*event.Event{ev("a", uint64(i+1))})
		}
	}()
	// Wait (bounded) until the publisher has filled the queue and blocks.
	for deadline := time.Now().Add(30 * time.Second); broker.Queued(b) < 4; {
		if time.Now().After(deadline) {
			release()
			t.Fatal("the queue did not fill")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return once the fan-out went on")
	}
	b.Flush()
	got, err := sub.Take(nil)
	if err != nil || len(got) != 10 || b.Stats.Overflows.Load() != 0 {
		t.Fatalf("got %d events (%v), %d overflows", len(got), err, b.Stats.Overflows.Load())
	}
}

// TestSubscribeSeesOnlyLaterEvents: an event queued before Subscribe (in the
// log already, so in the subscriber's history) is not offered live, even
// when the fan-out reaches it after Subscribe; one queued after is.
func TestSubscribeSeesOnlyLaterEvents(t *testing.T) {
	b := broker.New()
	p, _ := event.CompilePattern("a/*")
	release := broker.StallFanout(b)
	b.OnCommit([]*event.Event{ev("a/x", 1)})
	sub := b.Subscribe(broker.Spec{Patterns: []*event.Pattern{p}, Limit: 10})
	defer sub.Close()
	b.OnCommit([]*event.Event{ev("a/x", 2)})
	release()
	b.Flush()
	got, err := sub.Take(nil)
	if err != nil || len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("got %d events (%v), want only seq 2", len(got), err)
	}
}
