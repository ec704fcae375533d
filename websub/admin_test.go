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

// RetryNow brings a failing subscription's next delivery forward: the
// callback asked for an hour's wait (Retry-After), the retry comes at once.
func TestRetryNow(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.RetryMax = 2 * time.Hour }).start()
	sub := newSubscriber(t)
	failing := func(int, delivery) (int, http.Header) {
		return http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}
	}
	sub.set(nil, failing)
	cb := sub.url("/cb")
	if err := e.subscribe("retry/now", cb, nil); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"retry/now"}, Data: []byte(`1`)})
	e.obs.wait(t, "delivered", func(o obsEvent) bool { return o.status == http.StatusServiceUnavailable })
	id := websub.SubscriptionID("retry/now", cb)
	var s websub.Subscription
	deadline := time.Now().Add(waitFor)
	for { // the failure is recorded just after the observer hears of it
		var err error
		if s, _, err = e.records.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if s.Failures == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Failures != 1 || s.NextAttempt.Before(e.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("after a 503 with Retry-After 3600: failures %d, next attempt %v", s.Failures, s.NextAttempt)
	}

	sub.set(nil, nil) // the callback works again
	got, err := e.ws.RetryNow(context.Background(), id)
	if err != nil || !got.NextAttempt.IsZero() || got.Failures != 1 {
		t.Fatalf("RetryNow = %+v, %v; want no next attempt, the failure count kept", got, err)
	}
	if d := sub.next(); string(d.body) != "1" {
		t.Fatalf("delivered %q, want 1", d.body)
	}
	if _, err := e.ws.RetryNow(context.Background(), "nope"); !errors.Is(err, websub.ErrNotFound) {
		t.Fatalf("RetryNow(unknown) = %v, want ErrNotFound", err)
	}
}

// Remove ends a subscription without asking the subscriber; nothing is
// delivered to it afterwards.
func TestRemove(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	sub := newSubscriber(t)
	cb := sub.url("/cb")
	if err := e.subscribe("remove/me", cb, nil); err != nil {
		t.Fatal(err)
	}
	id := websub.SubscriptionID("remove/me", cb)
	ok, err := e.ws.Remove(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if o := e.obs.wait(t, "removed", nil); o.callback != cb || o.mode != "removed" {
		t.Fatalf("observer heard %+v, want removed %s", o, cb)
	}
	if _, found, _ := e.records.Get(context.Background(), id); found {
		t.Fatal("the record is still there")
	}
	e.publish(event.Draft{Topics: []string{"remove/me"}, Data: []byte(`1`)})
	sub.none()
	if ok, err := e.ws.Remove(context.Background(), id); err != nil || ok {
		t.Fatalf("Remove again = %v, %v; want false", ok, err)
	}
}
