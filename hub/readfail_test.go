package hub_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

// flakyLog fails its first reads, as a store that is briefly down.
type flakyLog struct {
	store.Log
	failures atomic.Int32
}

func (l *flakyLog) Read(ctx context.Context, topic string, q store.Query) (store.Page, error) {
	if l.failures.Add(-1) >= 0 {
		return store.Page{}, errors.New("store down")
	}
	return l.Log.Read(ctx, topic, q)
}

// A live subscription stays open through failing log reads: it retries
// with backoff, ticks still return (heartbeats), and it delivers once the
// store answers again.
func TestSubscriptionSurvivesReadFailures(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publish(t, f.hub, "a", 3)
	fl := &flakyLog{Log: f.log}
	fl.failures.Store(3)
	h := hub.New(fl, f.broker, hub.Options{})
	s := sub(t, h, hub.SubscribeRequest{Topics: []string{"a"}, Cursor: event.Cursor{"a": {}}})
	tick := make(chan time.Time, 1)
	tick <- time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := s.Next(ctx, tick)
	if err != nil || msgs != nil {
		t.Fatalf("a tick during the outage: %v %v, want no messages and no error", msgs, err)
	}
	got, _ := collect(t, s, 3)
	wantSeqs(t, got, 1, 3)
	if n := fl.failures.Load(); n >= 0 {
		t.Fatalf("the reads did not fail as planned (%d left)", n)
	}
}
