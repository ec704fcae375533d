package websub_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
)

// waitRecord polls the subscription's record until ok holds (the record
// is written just after the observer hears of a delivery), failing the
// test at the deadline.
func waitRecord(t *testing.T, e *env, id, what string, ok func(websub.Subscription) bool) websub.Subscription {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		s, found, err := e.records.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if found && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: record is %+v (found %v)", what, s, found)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A subscription whose deliveries fail for SuspendAfter is suspended: no
// more POSTs (nor tasks), RetryNow refuses, Resume makes it active and
// delivers what waited; a suspended subscription still expires.
func TestSuspendAndResume(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.RetryMax = 100 * time.Millisecond
		o.SuspendAfter = 2 * time.Hour
	}).start()
	sub := newSubscriber(t)
	failing := func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil }
	sub.set(nil, failing)
	cb := sub.url("/cb")
	if err := e.subscribe("suspend/me", cb, nil); err != nil {
		t.Fatal(err)
	}
	id := websub.SubscriptionID("suspend/me", cb)
	e.publish(event.Draft{Topics: []string{"suspend/me"}, Data: []byte(`1`)})

	// Failures within SuspendAfter: retried, not suspended.
	s := waitRecord(t, e, id, "two failures", func(s websub.Subscription) bool { return s.Failures >= 2 })
	if s.State == websub.StateSuspended || s.FailingSince.IsZero() {
		t.Fatalf("after %d failures within SuspendAfter: state %q, failing since %v", s.Failures, s.State, s.FailingSince)
	}
	// Three hours of failures later: suspended.
	e.clock.Advance(3 * time.Hour)
	s = waitRecord(t, e, id, "suspended", func(s websub.Subscription) bool { return s.State == websub.StateSuspended })
	if !s.NextAttempt.IsZero() || s.LastError == "" {
		t.Fatalf("suspended record: next attempt %v, last error %q", s.NextAttempt, s.LastError)
	}
	// No more tries: neither for new events nor by reconciliation.
	for len(e.obs.ch) > 0 { // deliveries before the suspension
		<-e.obs.ch
	}
	e.publish(event.Draft{Topics: []string{"suspend/me"}, Data: []byte(`2`)})
	e.ws.Reconcile(context.Background())
	select {
	case o := <-e.obs.ch:
		if o.what == "delivered" {
			t.Fatalf("a suspended subscription got a delivery attempt: %+v", o)
		}
	case <-time.After(300 * time.Millisecond): // a negative check: nothing waits on it
	}
	if _, err := e.ws.RetryNow(context.Background(), id); !errors.Is(err, websub.ErrSuspended) {
		t.Fatalf("RetryNow(suspended) = %v, want ErrSuspended", err)
	}

	// Resume: active at once, and the waiting events go out.
	sub.set(nil, nil)
	got, err := e.ws.Resume(context.Background(), id)
	if err != nil || got.State != websub.StateActive || got.Failures != 0 || !got.FailingSince.IsZero() {
		t.Fatalf("Resume = %+v, %v; want active with the failures cleared", got, err)
	}
	for _, want := range []string{"1", "2"} {
		if d := sub.next(); string(d.body) != want {
			t.Fatalf("delivered %q, want %s", d.body, want)
		}
	}
	waitRecord(t, e, id, "a clean record", func(s websub.Subscription) bool { return s.LastError == "" && !s.LastSuccess.IsZero() })
	if _, err := e.ws.Resume(context.Background(), "nope"); !errors.Is(err, websub.ErrNotFound) {
		t.Fatalf("Resume(unknown) = %v, want ErrNotFound", err)
	}

	// Suspended again, it still ends at its lease.
	sub.set(nil, failing)
	e.publish(event.Draft{Topics: []string{"suspend/me"}, Data: []byte(`3`)})
	waitRecord(t, e, id, "failing again", func(s websub.Subscription) bool { return s.Failures >= 1 })
	e.clock.Advance(3 * time.Hour)
	waitRecord(t, e, id, "suspended again", func(s websub.Subscription) bool { return s.State == websub.StateSuspended })
	e.clock.Advance(websub.DefaultLease)
	e.ws.Reconcile(context.Background())
	if o := e.obs.wait(t, "removed", nil); o.mode != "expired" {
		t.Fatalf("removed with reason %q, want expired", o.mode)
	}
}

// SuspendAfter 0 never suspends, however long the failures last.
func TestNoSuspendByDefault(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.RetryMax = 100 * time.Millisecond }).start()
	sub := newSubscriber(t)
	sub.set(nil, func(int, delivery) (int, http.Header) { return http.StatusInternalServerError, nil })
	cb := sub.url("/cb")
	if err := e.subscribe("never/suspend", cb, nil); err != nil {
		t.Fatal(err)
	}
	id := websub.SubscriptionID("never/suspend", cb)
	e.publish(event.Draft{Topics: []string{"never/suspend"}, Data: []byte(`1`)})
	waitRecord(t, e, id, "a failure", func(s websub.Subscription) bool { return s.Failures >= 1 })
	e.clock.Advance(websub.DefaultLease - time.Hour) // long, but within the lease
	s := waitRecord(t, e, id, "failures after the clock moved", func(s websub.Subscription) bool { return s.Failures >= 3 || s.State == websub.StateSuspended })
	if s.State == websub.StateSuspended {
		t.Fatalf("suspended with SuspendAfter 0: %+v", s)
	}
}
