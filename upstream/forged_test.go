package upstream_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/upstream/redisupstreams"
	"github.com/hubbub/hubbub/websub"
)

// Audit finding 8: anyone could confirm or deny a conduit subscription at
// its predictable callback URL, with any lease. These tests play the
// attacker (the old URL, a wrong token, no request outstanding, a huge
// lease) and then the real remote hub, on both stores.

func TestForgedCallbacksPebble(t *testing.T) { forgedCase(t, newEnv(t)) }

func TestForgedCallbacksRedis(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t, "Redis upstreams"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := redisupstreams.Open(ctx, redistest.URL(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	forgedCase(t, newEnvStore(t, st))
}

func TestLegacyUpstreamGetsTokenPebble(t *testing.T) {
	st, err := upstream.OpenPebble(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	legacyCase(t, newEnvStore(t, st))
}

func TestLegacyUpstreamGetsTokenRedis(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t, "Redis upstreams"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := redisupstreams.Open(ctx, redistest.URL(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	legacyCase(t, newEnvStore(t, st))
}

func forgedCase(t *testing.T, e *env) {
	topic := e.remote.URL + "/feed.atom"
	u, err := e.m.Add(t.Context(), upstream.Spec{Hub: e.remote.URL, Topic: topic, Into: "news/forged"})
	if err != nil {
		t.Fatal(err)
	}
	sub := e.request()
	cb := e.m.Callback(u)
	if sub.Get("hub.callback") != cb {
		t.Fatalf("subscribe request %v, want callback %s", sub, cb)
	}
	old := e.srv.URL + "/upstream/" + u.ID // the audit's predictable URL
	wrong := old + "/" + "00000000000000000000000000000000"
	state := func() upstream.Upstream {
		got, _, err := e.m.Get(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	forged := []url.Values{
		{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"forged"}, "hub.lease_seconds": {"9200000000"}},
		{"hub.mode": {"denied"}, "hub.topic": {topic}, "hub.reason": {"forged by anyone"}},
	}
	for _, base := range []string{old, wrong, old + "/"} {
		for _, q := range forged {
			if code, body := e.verify(base, q); code != http.StatusNotFound || body == "forged" {
				t.Fatalf("%s %v: %d %q", base, q.Get("hub.mode"), code, body)
			}
		}
		if code := e.push(base, "text/plain", websub.Sign("sha256", u.Secret, []byte("x")), "x"); code != http.StatusNotFound && code != http.StatusGone {
			t.Fatalf("push to %s: %d", base, code)
		}
	}
	if got := state(); got.State != upstream.StatePending || got.LastError != "" {
		t.Fatalf("after forgeries: %+v", got)
	}

	// The real verification, with a lease beyond the range: clamped.
	code, body := e.verify(cb, url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"real"}, "hub.lease_seconds": {"9200000000"}})
	if code != http.StatusOK || body != "real" {
		t.Fatalf("verification: %d %q", code, body)
	}
	got := state()
	if got.State != upstream.StateActive || got.LeaseSeconds != int64(upstream.MaxLease/time.Second) || got.Requested != "" {
		t.Fatalf("after verification: %+v", got)
	}
	// No subscribe request outstanding now: a second verification, even
	// with the token, is not answered (and cannot shorten the lease).
	if code, _ := e.verify(cb, url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"again"}, "hub.lease_seconds": {"1"}}); code != http.StatusNotFound {
		t.Fatalf("verification without a request outstanding: %d", code)
	}
	if got := state(); got.LeaseSeconds != int64(upstream.MaxLease/time.Second) {
		t.Fatalf("lease changed: %+v", got)
	}
	// Signed content at the real URL is taken.
	if code := e.push(cb, "text/plain", websub.Sign("sha256", u.Secret, []byte("hello")), "hello"); code != http.StatusAccepted || len(e.events("news/forged")) != 1 {
		t.Fatalf("push: %d, events %v", code, e.events("news/forged"))
	}
}

// legacyCase: an upstream stored before callback tokens existed gets one
// at its next subscribe, and only the new URL verifies.
func legacyCase(t *testing.T, e *env) {
	topic := e.remote.URL + "/legacy"
	spec := upstream.Spec{Hub: e.remote.URL, Topic: topic, Into: "news/legacy"}
	id := upstream.ID(spec.Hub, spec.Topic, spec.Into)
	legacy := upstream.Upstream{ID: id, Hub: spec.Hub, Topic: topic, Into: spec.Into, Secret: "s3cr3t",
		LeaseSeconds: 3600, State: upstream.StateActive, Created: e.clock.Now()}
	if err := e.st.Put(t.Context(), legacy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.runner.Enqueue(t.Context(), upstream.SubscribeTask(id, time.Time{})); err != nil {
		t.Fatal(err)
	}
	sub := e.request()
	got, _, _ := e.m.Get(t.Context(), id)
	if len(got.Token) != 32 || sub.Get("hub.callback") != e.m.Callback(got) {
		t.Fatalf("renewal of a legacy upstream: %v, stored %+v", sub, got)
	}
	q := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"c"}}
	if code, _ := e.verify(e.srv.URL+"/upstream/"+id, q); code != http.StatusNotFound {
		t.Fatalf("old URL verified: %d", code)
	}
	if code, body := e.verify(e.m.Callback(got), q); code != http.StatusOK || body != "c" {
		t.Fatalf("new URL: %d %q", code, body)
	}
	// Content still sent to the old URL: 410, so the remote hub ends that
	// subscription.
	if code := e.push(e.srv.URL+"/upstream/"+id, "text/plain", websub.Sign("sha256", "s3cr3t", []byte("x")), "x"); code != http.StatusGone {
		t.Fatalf("push to the old URL: %d", code)
	}
}
