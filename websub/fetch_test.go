package websub_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mmcdole/gofeed"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
)

// feedServer serves an Atom feed with an ETag, answering 304 to a
// matching If-None-Match.
type feedServer struct {
	mu       sync.Mutex
	entries  []string // ids, oldest first
	version  int
	requests []http.Header
	srv      *httptest.Server
}

func newFeedServer(t *testing.T) *feedServer {
	f := &feedServer{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *feedServer) add(ids ...string) {
	f.mu.Lock()
	f.entries = append(f.entries, ids...)
	f.version++
	f.mu.Unlock()
}

func (f *feedServer) fetches() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.requests...)
}

func (f *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/moved" {
		http.Redirect(w, r, "/feed", http.StatusFound)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Header.Clone())
	etag := fmt.Sprintf(`"v%d"`, f.version)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Test</title><id>urn:test</id><updated>2024-01-01T00:00:00Z</updated>`)
	for i := len(f.entries) - 1; i >= 0; i-- { // newest first
		fmt.Fprintf(&b, `<entry><id>%s</id><title>Entry %s</title><updated>2024-01-01T00:%02d:00Z</updated><content type="html">&lt;p&gt;%s&lt;/p&gt;</content></entry>`,
			f.entries[i], f.entries[i], i, f.entries[i])
	}
	b.WriteString(`</feed>`)
	w.Header().Set("Content-Type", "application/atom+xml")
	w.Header().Set("ETag", etag)
	_, _ = w.Write([]byte(b.String()))
}

func entryIDs(t *testing.T, body []byte) []string {
	t.Helper()
	f, err := gofeed.NewParser().Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("delivered feed does not parse: %v\n%s", err, body)
	}
	var ids []string
	for _, it := range f.Items {
		ids = append(ids, it.GUID)
	}
	return ids
}

func TestThinPingAtom(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	fs := newFeedServer(t)
	topic := fs.srv.URL + "/feed"
	s := newSubscriber(t)
	if err := e.subscribe(topic, s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	ping := func() {
		t.Helper()
		if code, body := e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {topic}}); code != http.StatusNoContent {
			t.Fatalf("ping: %d %s", code, body)
		}
		e.obs.wait(t, "fetched", func(o obsEvent) bool { return o.topic == topic })
	}
	fs.add("a", "b")
	ping()
	d := s.next()
	if ct := d.header.Get("Content-Type"); ct != websub.AtomContentType {
		t.Fatalf("content type %q", ct)
	}
	if ids := entryIDs(t, d.body); strings.Join(ids, ",") != "a,b" {
		t.Fatalf("first delivery entries %v", ids)
	}
	if !strings.Contains(string(d.body), `rel="hub"`) || !strings.Contains(string(d.body), `rel="self"`) {
		t.Fatalf("feed lacks hub/self links: %s", d.body)
	}
	// Unchanged: a conditional GET, nothing published.
	ping()
	reqs := fs.fetches()
	if got := reqs[len(reqs)-1].Get("If-None-Match"); got != `"v1"` {
		t.Fatalf("If-None-Match %q", got)
	}
	if ua := reqs[len(reqs)-1].Get("User-Agent"); !strings.Contains(ua, "hubbub") || !strings.Contains(ua, "1 subscribers") {
		t.Fatalf("User-Agent %q", ua)
	}
	// Two new entries: exactly those are delivered.
	fs.add("c", "d")
	ping()
	if ids := entryIDs(t, s.next().body); strings.Join(ids, ",") != "c,d" {
		t.Fatalf("second delivery entries %v", ids)
	}
	// A server ignoring validators does not cause republication.
	fs.mu.Lock()
	fs.version = 99
	fs.mu.Unlock()
	ping()
	s.none()
}

func TestThinPingCoalescesAndRedirects(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil) // not started: pings pile up
	fs := newFeedServer(t)
	fs.add("a")
	topic := fs.srv.URL + "/moved"
	for range 10 {
		if code, _ := e.post(url.Values{"hub.mode": {"publish"}, "hub.topic": {topic}}); code != http.StatusAccepted {
			t.Fatalf("ping answered %d", code)
		}
	}
	e.start()
	if o := e.obs.wait(t, "fetched", nil); o.err != nil || o.n != 1 {
		t.Fatalf("fetch: %+v", o)
	}
	if n := len(fs.fetches()); n != 1 {
		t.Fatalf("%d fetches for a burst of pings", n)
	}
	page, err := e.store.Read(t.Context(), topic, storeQuery())
	if err != nil || len(page.Events) != 1 || page.Events[0].Type != websub.TypeEntry {
		t.Fatalf("log after fetch: %v %v", page.Events, err)
	}
}

func TestThinPingRawBody(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("plain body"))
	}))
	t.Cleanup(srv.Close)
	s := newSubscriber(t)
	if err := e.subscribe(srv.URL, s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {srv.URL}})
		e.obs.wait(t, "fetched", nil)
	}
	d := s.next()
	if string(d.body) != "plain body" || d.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("raw thin ping delivery %q %q", d.body, d.header.Get("Content-Type"))
	}
	s.none()
}

func TestSSRFGuard(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.AllowPrivate = false }).start()
	s := newSubscriber(t)
	err := e.subscribe("t", s.url("/"), nil)
	if err == nil {
		t.Fatal("verification reached a loopback callback")
	}
	select {
	case v := <-s.verifs:
		t.Fatalf("loopback callback was called: %v", v.query)
	default:
	}
	_ = event.Draft{}
}
