package recordstest

import (
	"testing"
	"time"

	"github.com/hubbub/hubbub/websub"
)

// CountHost checks websub.HostCounter on r: the per-host count follows
// Put (a renewal counts once), Update, Delete and DeleteIf, across topics
// and ports, with hosts compared case-insensitively; reopen returns a new
// counter on the same storage, which must agree.
func CountHost(t *testing.T, r websub.Records, reopen func() websub.HostCounter) {
	t.Helper()
	ctx := t.Context()
	hc := r.(websub.HostCounter)
	want := func(hc websub.HostCounter, host string, n int) {
		t.Helper()
		got, err := hc.CountHost(ctx, host)
		if err != nil || got != n {
			t.Fatalf("CountHost(%s) = %d, %v; want %d", host, got, err, n)
		}
	}
	for i, cb := range []string{"http://A.example/1", "http://a.example:8080/2", "http://b.example/1"} {
		for _, topic := range []string{"t1", "t2"} {
			if err := r.Put(ctx, hostSub(topic, cb)); err != nil {
				t.Fatal(i, err)
			}
		}
	}
	if err := r.Put(ctx, hostSub("t1", "http://A.example/1")); err != nil { // a renewal
		t.Fatal(err)
	}
	want(hc, "a.example", 4)
	want(hc, "b.example", 2)
	want(hc, "c.example", 0)
	if _, err := r.Update(ctx, websub.SubscriptionID("t1", "http://b.example/1"), func(s *websub.Subscription) error { s.Failures++; return nil }); err != nil {
		t.Fatal(err)
	}
	want(hc, "b.example", 2)
	if ok, err := r.Delete(ctx, websub.SubscriptionID("t1", "http://b.example/1")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := r.DeleteIf(ctx, websub.SubscriptionID("t2", "http://a.example:8080/2"), func(websub.Subscription) bool { return true }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	want(hc, "a.example", 3)
	want(hc, "b.example", 1)
	want(reopen(), "a.example", 3)
}

func hostSub(topic, cb string) websub.Subscription {
	return websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, Callback: cb, LogTopic: topic,
		State: websub.StateActive, Expires: time.Unix(2e9, 0).UTC()}
}
