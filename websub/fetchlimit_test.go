package websub_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/websub"
)

// Audit finding 7: a fetched body over MaxFetchBytes (the hub's --max-body)
// fails the fetch with a clear reason, once, and nothing is stored.
func TestThinPingBodyOverMaxBody(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.MaxFetchBytes = 1000 }).start()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("x", 1001)))
	}))
	t.Cleanup(srv.Close)
	if code, body := e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {srv.URL + "/big"}}); code != http.StatusNoContent {
		t.Fatalf("ping: %d %s", code, body)
	}
	o := e.obs.wait(t, "fetched", nil)
	if o.err == nil || !strings.Contains(o.err.Error(), "larger than 1000 bytes") {
		t.Fatalf("fetch of 1001 bytes: %+v", o)
	}
	if page, err := e.store.Read(t.Context(), srv.URL+"/big", storeQuery()); err != nil || len(page.Events) != 0 {
		t.Fatalf("stored %d events (%v)", len(page.Events), err)
	}
	stats, err := e.queue.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := stats[websub.KindFetch]; c.Pending != 0 || hits.Load() != 1 {
		t.Fatalf("a too-large body is fetched again: %d requests, %+v", hits.Load(), c)
	}
}

// Audit finding 7: 20 pings of one URL within FetchMinInterval make two
// fetches, counted at the server: one at once, and one after the interval
// that sees the content the last ping announced.
func TestThinPingsSpacedByInterval(t *testing.T) {
	const interval = 2 * time.Second
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.FetchMinInterval = interval }).start()
	fs := newFeedServer(t)
	topic := fs.srv.URL + "/feed"
	ping := func() {
		t.Helper()
		if code, body := e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {topic}}); code != http.StatusNoContent {
			t.Fatalf("ping: %d %s", code, body)
		}
	}
	fs.add("a")
	start := time.Now()
	ping()
	e.obs.wait(t, "fetched", func(o obsEvent) bool { return o.topic == topic && o.err == nil })
	for range 18 {
		ping()
	}
	fs.add("b")
	ping() // the 20th: its content must be fetched
	n := len(fs.fetches())
	if since := time.Since(start); since >= interval {
		t.Skipf("the pings took %v, longer than the interval: the machine is too busy for this test", since)
	}
	if n != 1 {
		t.Fatalf("%d fetches within the interval, want 1", n)
	}
	e.obs.wait(t, "fetched", func(o obsEvent) bool { return o.topic == topic && o.err == nil })
	if n := len(fs.fetches()); n != 2 {
		t.Fatalf("%d fetches for 20 pings, want 2", n)
	}
	stats, err := e.queue.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := stats[websub.KindFetch]; c.Pending != 0 {
		t.Fatalf("fetch tasks left after the second fetch: %+v", c)
	}
	page, err := e.store.Read(t.Context(), topic, storeQuery())
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("log after the fetches: %d events (%v), want entries a and b", len(page.Events), err)
	}
}

// Only http and https URLs may be pinged.
func TestThinPingSchemes(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	for _, u := range []string{"ftp://example.com/feed", "file:///etc/passwd", "gopher://example.com/", "/relative"} {
		if code, body := e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {u}}); code != http.StatusBadRequest {
			t.Errorf("ping of %s: %d %s, want 400", u, code, body)
		}
	}
}
