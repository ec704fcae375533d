package websub_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/websub"
)

// waitVerification waits until the verification record of (topic, cb)
// satisfies ok, and returns it.
func waitVerification(t *testing.T, e *env, topic, cb string, ok func(v websub.Verification, found bool) bool) websub.Verification {
	t.Helper()
	id := websub.SubscriptionID(topic, cb)
	deadline := time.Now().Add(waitFor)
	for {
		list, err := e.records.ListVerifications(context.Background(), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var v websub.Verification
		found := false
		for _, x := range list {
			if x.ID == id {
				v, found = x, true
			}
		}
		if ok(v, found) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("verification of %s for %s: %+v (found %v) within %v", topic, cb, v, found, waitFor)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/cb"
}

// An asynchronous verification is visible while it is tried, retried with
// backoff when the callback cannot be reached, and visible as failed (with
// the subscriber's reason) when it gives up or the callback refuses; a
// success leaves no record, and the sweep drops old ones (newcomer report
// 16: failed verifications were invisible and gave up within a second).
func TestVerificationStates(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	ctx := context.Background()

	// Unreachable: pending with the reason and the next try, then failed.
	dead := closedURL(t)
	if code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"v/a"}, "hub.callback": {dead}}); code != http.StatusAccepted {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	v := waitVerification(t, e, "v/a", dead, func(v websub.Verification, found bool) bool {
		return found && v.State == websub.VerifyPending && v.Attempts >= 1
	})
	if v.Mode != websub.ModeSubscribe || v.LastError != "callback could not be reached" || v.NextAttempt.IsZero() || v.Requested.IsZero() {
		t.Fatalf("pending verification after a failed try: %+v", v)
	}
	v = waitVerification(t, e, "v/a", dead, func(v websub.Verification, found bool) bool { return found && v.State == websub.VerifyFailed })
	if v.Attempts != 8 || v.LastError != "callback could not be reached (tried 8 times)" || !v.NextAttempt.IsZero() {
		t.Fatalf("failed verification: %+v", v)
	}

	// Refused by the callback: failed at once.
	s := newSubscriber(t)
	s.set(func(string) (int, string) { return http.StatusNotFound, "no" }, nil)
	if err := e.subscribe("v/b", s.url("/cb"), nil); err == nil {
		t.Fatal("verification answered 404 succeeded")
	}
	v = waitVerification(t, e, "v/b", s.url("/cb"), func(v websub.Verification, found bool) bool { return found && v.State == websub.VerifyFailed })
	if v.LastError != "callback answered 404" || v.Attempts != 1 {
		t.Fatalf("refused verification: %+v", v)
	}

	// Verified at last: the record goes, the subscription is there.
	s.set(nil, nil)
	if err := e.subscribe("v/b", s.url("/cb"), nil); err != nil {
		t.Fatal(err)
	}
	waitVerification(t, e, "v/b", s.url("/cb"), func(_ websub.Verification, found bool) bool { return !found })
	if _, ok, err := e.records.Get(ctx, websub.SubscriptionID("v/b", s.url("/cb"))); !ok || err != nil {
		t.Fatalf("verified subscription not stored: %v %v", ok, err)
	}

	// The sweep drops records a day old.
	e.ws.Reconcile(ctx)
	if list, _ := e.records.ListVerifications(ctx, "", 10); len(list) != 1 {
		t.Fatalf("sweep removed a fresh record: %+v", list)
	}
	e.clock.Advance(websub.VerificationRetention + time.Minute)
	e.ws.Reconcile(ctx)
	if list, _ := e.records.ListVerifications(ctx, "", 10); len(list) != 0 {
		t.Fatalf("sweep kept a record older than the retention: %+v", list)
	}
}

// A request the hub denies (Options.Allow) is on record as denied, with
// the reason.
func TestVerificationDenied(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.Allow = func(topic, _ string) error {
			if strings.HasPrefix(topic, "closed/") {
				return errors.New("closed topics take no subscribers")
			}
			return nil
		}
	}).start()
	s := newSubscriber(t)
	if code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"closed/x"}, "hub.callback": {s.url("/cb")}}); code != http.StatusAccepted {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	v := waitVerification(t, e, "closed/x", s.url("/cb"), func(v websub.Verification, found bool) bool { return found })
	if v.State != websub.VerifyDenied || v.LastError != "closed topics take no subscribers" {
		t.Fatalf("denied request: %+v", v)
	}
}
