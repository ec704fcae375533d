package upstream_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/tasks"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/websub"
)

const waitFor = 15 * time.Second

// clock is real time plus an offset the test advances.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

type env struct {
	t      *testing.T
	clock  *clock
	hub    *hub.Hub
	m      *upstream.Manager
	srv    *httptest.Server // hubbub: callbacks and API
	remote *httptest.Server // the fake remote hub
	reqs   chan url.Values  // requests the remote hub received
	status atomic.Int32     // what the remote hub answers (202 when 0)
	runner *tasks.Runner
	st     upstream.Store // the store given to newEnvStore, or nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newEnv(t *testing.T) *env { return newEnvStore(t, nil) }

// newEnvStore is newEnv with the upstreams in ust (the Manager closes it),
// or in a one-node store when ust is nil.
func newEnvStore(t *testing.T, ust upstream.Store) *env {
	e := &env{t: t, clock: &clock{}, reqs: make(chan url.Values, 100), st: ust}
	dir := t.TempDir()
	b := broker.New()
	st, err := embedded.Open(filepath.Join(dir, "log"), store.Config{Now: e.clock.Now, OnCommit: b.Publish}, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	q, err := tembedded.Open(filepath.Join(dir, "tasks"), tembedded.WithLogger(quiet()), tembedded.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	runner := tasks.NewRunner(q, tasks.Options{Now: e.clock.Now, Logger: quiet(), MaxSleep: 50 * time.Millisecond, Grace: 5 * time.Second})
	e.runner = runner
	e.hub = hub.New(st, b, hub.Options{})
	e.remote = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		e.reqs <- r.PostForm
		code := int(e.status.Load())
		if code == 0 {
			code = http.StatusAccepted
		}
		w.WriteHeader(code)
	}))
	e.srv = httptest.NewServer(nil)
	e.m, err = upstream.New(upstream.Options{Hub: e.hub, Runner: runner, Dir: filepath.Join(dir, "upstream"), Store: ust,
		PublicURL: e.srv.URL, AllowPrivate: true, Logger: quiet(), Now: e.clock.Now, Lease: time.Hour,
		Retry: tasks.KindOptions{Backoff: tasks.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	e.m.Register(runner)
	mux := http.NewServeMux()
	mux.Handle("/upstream/", e.m.Handler())
	mux.Handle("/api/upstreams", e.m.API())
	mux.Handle("/api/upstreams/", e.m.API())
	e.srv.Config.Handler = mux
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		e.srv.Close()
		e.remote.Close()
		_ = e.m.Close()
		_ = q.Close()
		_ = st.Close()
	})
	return e
}

// request waits for the remote hub's next request.
func (e *env) request() url.Values {
	e.t.Helper()
	select {
	case v := <-e.reqs:
		return v
	case <-time.After(waitFor):
		e.t.Fatal("the remote hub got no request")
		return nil
	}
}

// verify plays the remote hub's verification GET and returns status and body.
func (e *env) verify(callback string, q url.Values) (int, string) {
	e.t.Helper()
	resp, err := http.Get(callback + "?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// push plays a content distribution POST.
func (e *env) push(callback, ctype, sig string, body string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, callback, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if sig != "" {
		req.Header.Set(websub.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) events(topic string) []string {
	e.t.Helper()
	res, err := e.hub.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{topic}, Count: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range res.Events {
		out = append(out, ev.Key+" "+ev.ContentType)
	}
	return out
}

func atom(ids ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>remote</title><id>urn:feed</id><updated>2024-01-09T00:00:00Z</updated>`)
	for i, id := range ids {
		b.WriteString(`<entry><id>` + id + `</id><title>e` + id + `</title><updated>2024-01-0` + string(rune('1'+i)) + `T00:00:00Z</updated><content>hi</content></entry>`)
	}
	b.WriteString(`</feed>`)
	return b.String()
}

func TestConduit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	topic := e.remote.URL + "/feed.atom"
	u, err := e.m.Add(ctx, upstream.Spec{Hub: e.remote.URL, Topic: topic, Into: "news/remote"})
	if err != nil {
		t.Fatal(err)
	}
	cb := e.m.Callback(u)
	if !strings.HasPrefix(cb, e.srv.URL+"/upstream/"+u.ID+"/") || len(u.Token) != 32 {
		t.Fatalf("callback %q", cb)
	}
	sub := e.request()
	if sub.Get("hub.mode") != "subscribe" || sub.Get("hub.topic") != topic || sub.Get("hub.callback") != cb ||
		sub.Get("hub.secret") != u.Secret || len(u.Secret) < 32 || sub.Get("hub.lease_seconds") != "3600" {
		t.Fatalf("subscribe request %v", sub)
	}

	// Verification: only our topic, mode and a pending/active upstream.
	for _, q := range []url.Values{
		{"hub.mode": {"subscribe"}, "hub.topic": {topic + "x"}, "hub.challenge": {"c"}},
		{"hub.mode": {"unsubscribe"}, "hub.topic": {topic}, "hub.challenge": {"c"}},
		{"hub.mode": {"subscribe"}, "hub.topic": {topic}},
	} {
		if code, _ := e.verify(cb, q); code != http.StatusNotFound {
			t.Fatalf("verification %v: %d", q, code)
		}
	}
	if code, _ := e.verify(e.srv.URL+"/upstream/nope", url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"c"}}); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d", code)
	}
	verifiedAt := e.clock.Now()
	code, body := e.verify(cb, url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"ch4ll"}, "hub.lease_seconds": {"1000"}})
	if code != http.StatusOK || body != "ch4ll" {
		t.Fatalf("verification: %d %q", code, body)
	}
	got, _, _ := e.m.Get(t.Context(), u.ID)
	if got.State != upstream.StateActive || got.LeaseSeconds != 1000 || got.Expires.Sub(verifiedAt) < 1000*time.Second || got.Expires.Sub(verifiedAt) > 1001*time.Second {
		t.Fatalf("after verification: %+v", got)
	}

	// Signed content: two entries.
	feed := atom("a", "b")
	if code := e.push(cb, "application/atom+xml", websub.Sign("sha256", u.Secret, []byte(feed)), feed); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	if evs := e.events("news/remote"); len(evs) != 2 || evs[0] != "entry:a application/atom+xml" || evs[1] != "entry:b application/atom+xml" {
		t.Fatalf("events %v", evs)
	}
	// Badly signed, unsigned: dropped, still 2xx.
	feed3 := atom("a", "b", "c")
	if code := e.push(cb, "application/atom+xml", websub.Sign("sha256", "wrong", []byte(feed3)), feed3); code != http.StatusAccepted {
		t.Fatalf("bad push: %d", code)
	}
	if code := e.push(cb, "application/atom+xml", "", feed3); code != http.StatusAccepted {
		t.Fatalf("unsigned push: %d", code)
	}
	if n := e.m.Rejected(); n != 2 || len(e.events("news/remote")) != 2 {
		t.Fatalf("rejected %d, events %v", n, e.events("news/remote"))
	}
	// One new entry: only it is published; every algorithm is accepted.
	for _, alg := range []string{"sha1", "sha384", "sha512"} {
		if code := e.push(cb, "application/atom+xml", websub.Sign(alg, u.Secret, []byte(feed3)), feed3); code != http.StatusAccepted {
			t.Fatalf("push %s: %d", alg, code)
		}
	}
	if evs := e.events("news/remote"); len(evs) != 3 || evs[2] != "entry:c application/atom+xml" {
		t.Fatalf("events %v", evs)
	}
	// Other content: one raw event with its Content-Type.
	if code := e.push(cb, "text/plain; charset=utf-8", websub.Sign("sha256", u.Secret, []byte("hello")), "hello"); code != http.StatusAccepted {
		t.Fatalf("text push: %d", code)
	}
	if evs := e.events("news/remote"); len(evs) != 4 || evs[3] != " text/plain; charset=utf-8" {
		t.Fatalf("events %v", evs)
	}
	// Unknown callback id: 410 Gone.
	if code := e.push(e.srv.URL+"/upstream/nope", "text/plain", "", "x"); code != http.StatusGone {
		t.Fatalf("unknown id push: %d", code)
	}

	// Renewal: at 80% of the granted lease, the subscription is requested again.
	e.clock.Advance(800 * time.Second)
	if again := e.request(); again.Get("hub.mode") != "subscribe" || again.Get("hub.callback") != cb {
		t.Fatalf("renewal %v", again)
	}
}

func TestDeniedAndRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	topic := e.remote.URL + "/t"
	u, err := e.m.Add(ctx, upstream.Spec{Hub: e.remote.URL, Topic: topic, Into: "x"})
	if err != nil {
		t.Fatal(err)
	}
	e.request()
	cb := e.m.Callback(u)
	if code, _ := e.verify(cb, url.Values{"hub.mode": {"denied"}, "hub.topic": {topic}, "hub.reason": {"not allowed"}}); code != http.StatusOK {
		t.Fatalf("denial: %d", code)
	}
	got, _, _ := e.m.Get(t.Context(), u.ID)
	if got.State != upstream.StateDenied || got.LastError != "denied: not allowed" {
		t.Fatalf("after denial %+v", got)
	}
	// A denied upstream no longer verifies nor receives.
	if code, _ := e.verify(cb, url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"c"}}); code != http.StatusNotFound {
		t.Fatalf("verification after denial: %d", code)
	}
	// It is subscribed again after DenialRetry(1), and verifies then.
	e.clock.Advance(upstream.DenialRetry(1))
	if again := e.request(); again.Get("hub.mode") != "subscribe" || again.Get("hub.callback") != cb {
		t.Fatalf("retry after denial %v", again)
	}
	if code, body := e.verify(cb, url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.challenge": {"c2"}}); code != http.StatusOK || body != "c2" {
		t.Fatalf("verification of the retry: %d %q", code, body)
	}
	if got, _, _ := e.m.Get(t.Context(), u.ID); got.State != upstream.StateActive || got.Denials != 0 {
		t.Fatalf("after the retry %+v", got)
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	topic := e.remote.URL + "/t"
	resp, err := http.Post(e.srv.URL+"/api/upstreams", "application/json",
		strings.NewReader(`{"hub":"`+e.remote.URL+`","topic":"`+topic+`","into":"z"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || strings.Contains(string(b), `"secret"`) || !strings.Contains(string(b), `"signed":true`) {
		t.Fatalf("add: %d %s", resp.StatusCode, b)
	}
	e.request()
	id := upstream.ID(e.remote.URL, topic, "z")
	if resp, err = http.Get(e.srv.URL + "/api/upstreams"); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), id) || strings.Contains(string(b), `"secret"`) {
		t.Fatalf("list: %s", b)
	}
	if r, _ := http.Post(e.srv.URL+"/api/upstreams", "application/x-www-form-urlencoded", strings.NewReader("hub=nope&topic=x&into=z")); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad add: %d", r.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/api/upstreams/"+id, nil)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %v %v", resp, err)
	}
	if del, _ := io.ReadAll(resp.Body); string(del) != `{"id":"`+id+`","state":"unsubscribing"}`+"\n" {
		t.Fatalf("delete answered %q", del)
	}
	resp.Body.Close()
	if un := e.request(); un.Get("hub.mode") != "unsubscribe" || un.Get("hub.topic") != topic {
		t.Fatalf("unsubscribe request %v", un)
	}
	cur, _, _ := e.m.Get(t.Context(), id)
	if !strings.Contains(string(b), cur.Token) || strings.Contains(string(b), `"token"`) {
		t.Fatalf("list shows the callback with its token, not the token alone: %s", b)
	}
	cb := e.m.Callback(cur)
	if code, body := e.verify(cb, url.Values{"hub.mode": {"unsubscribe"}, "hub.topic": {topic}, "hub.challenge": {"bye"}}); code != http.StatusOK || body != "bye" {
		t.Fatalf("unsubscribe verification: %d %q", code, body)
	}
	if _, ok, _ := e.m.Get(t.Context(), id); ok {
		t.Fatal("upstream still there after unsubscription")
	}
}

// TestConcurrentAdd: the same upstream added at once (every node naming
// it in its configuration) is one record with one secret, whatever each
// caller got back first.
func TestConcurrentAdd(t *testing.T) {
	e := newEnv(t)
	spec := upstream.Spec{Hub: e.remote.URL, Topic: "http://feed.example/x", Into: "in/x"}
	const n = 8
	secrets := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			u, err := e.m.Add(t.Context(), spec)
			if err != nil {
				t.Error(err)
				return
			}
			secrets <- u.Secret
		})
	}
	wg.Wait()
	close(secrets)
	stored, ok, err := e.m.Get(t.Context(), upstream.ID(spec.Hub, spec.Topic, spec.Into))
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	for s := range secrets {
		if s != stored.Secret {
			t.Fatal("an Add returned a secret that is not the stored one")
		}
	}
}
