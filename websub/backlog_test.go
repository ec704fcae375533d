package websub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/websub"
)

// MeasureBacklog adds up, over unexpired subscriptions, the events after
// each cursor, and finds the oldest of them.
func TestMeasureBacklog(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil) // not started: nothing is delivered
	ctx := context.Background()
	var times []time.Time
	for _, topic := range []string{"a", "a", "a", "a", "a", "b", "c", "c"} {
		res, err := e.hub.Publish(ctx, []event.Draft{{Topics: []string{topic}, Data: []byte(`1`)}})
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, res[0].Time)
		e.clock.Advance(time.Second)
	}
	head := func(topic string) event.Position {
		h, err := e.store.Head(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return event.Position{Epoch: h.Epoch, Seq: h.Last}
	}
	now := e.clock.Now()
	put := func(topic, cb string, cursor event.Position, state string, expires time.Time) {
		s := websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, LogTopic: topic, Callback: cb,
			Cursor: cursor, State: state, Expires: expires}
		if err := e.records.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Hour)
	a := head("a")
	put("a", "http://x/1", event.Position{Epoch: a.Epoch, Seq: 2}, websub.StateActive, later)            // 3 pending, from seq 3
	put("a", "http://x/2", event.Position{}, websub.StateFailing, later)                                 // 5 pending, from seq 1
	put("b", "http://x/3", head("b"), websub.StateActive, later)                                         // none
	put("c", "http://x/4", event.Position{Epoch: "0000000000000000", Seq: 1}, websub.StateActive, later) // another epoch: 2
	put("a", "http://x/5", event.Position{}, websub.StateFailing, now.Add(-time.Second))                 // expired: not counted

	b, err := e.ws.MeasureBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Subscriptions != 4 || b.Failing != 1 || b.Behind != 3 || b.Events != 10 {
		t.Errorf("backlog %+v, want 4 subscriptions, 1 failing, 3 behind, 10 events", b)
	}
	if !b.Oldest.Equal(times[0]) {
		t.Errorf("oldest pending %v, want the first event of a, %v", b.Oldest, times[0])
	}

	// Once the failing subscription has caught up, the oldest pending
	// event is a's third.
	put("a", "http://x/2", a, websub.StateActive, later)
	if b, err = e.ws.MeasureBacklog(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Events != 5 || b.Failing != 0 || !b.Oldest.Equal(times[2]) {
		t.Errorf("after catching up: %+v, want 5 events, oldest %v", b, times[2])
	}
}

// BenchmarkMeasureBacklog: 1,000 subscriptions on 100 topics, each topic
// with 10 events still to deliver.
func BenchmarkMeasureBacklog(b *testing.B) {
	e := newEnvRetention(b, b.TempDir(), store.Retention{}, nil)
	ctx := context.Background()
	for i := range 100 {
		topic := fmt.Sprintf("t/%d", i)
		for range 10 {
			if _, err := e.hub.Publish(ctx, []event.Draft{{Topics: []string{topic}, Data: []byte(`1`)}}); err != nil {
				b.Fatal(err)
			}
		}
		for j := range 10 {
			cb := fmt.Sprintf("http://x/%d/%d", i, j)
			s := websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, LogTopic: topic, Callback: cb,
				State: websub.StateActive, Expires: time.Now().Add(time.Hour)}
			if err := e.records.Put(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		bl, err := e.ws.MeasureBacklog(ctx)
		if err != nil || bl.Events != 10_000 {
			b.Fatalf("%+v %v", bl, err)
		}
	}
}
