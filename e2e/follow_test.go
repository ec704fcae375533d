package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testFeed is an outside feed on 127.0.0.1 whose entries the test adds
// while subscribers listen. It answers conditional GETs with 304, can be
// made to answer another status, and counts the GETs of hubbub's
// follower ("hubbub feeds" User-Agent).
type testFeed struct {
	srv    *httptest.Server
	format string // atom, rss or json
	mu     sync.Mutex
	n      int    // entries 1..n
	status int    // answered instead of the feed when not 0
	moved  string // a path answered with 301 to the feed when not ""
	hub    string // advertised rel="hub" when not ""
	follow int    // GETs by the follower
	served int    // 200s to the follower
}

func newTestFeed(t *testing.T, format string, n int) *testFeed {
	f := &testFeed{format: format, n: n}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *testFeed) URL() string { return f.srv.URL + "/feed." + f.format }

func (f *testFeed) add(k int) {
	f.mu.Lock()
	f.n += k
	f.mu.Unlock()
}

func (f *testFeed) set(fn func(f *testFeed)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func (f *testFeed) counts() (gets, served int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.follow, f.served
}

func entryTime(i int) time.Time {
	return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
}

func (f *testFeed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n, status, hubURL := f.n, f.status, f.hub
	follower := strings.HasPrefix(r.UserAgent(), "hubbub feeds")
	if follower {
		f.follow++
	}
	f.mu.Unlock()
	if f.moved != "" && r.URL.Path == f.moved {
		http.Redirect(w, r, f.URL(), http.StatusMovedPermanently)
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	etag := `"v` + strconv.Itoa(n) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if follower {
		f.mu.Lock()
		f.served++
		f.mu.Unlock()
	}
	self := f.URL()
	var b strings.Builder
	switch f.format {
	case "atom":
		w.Header().Set("Content-Type", "application/atom+xml")
		fmt.Fprintf(&b, `<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Test</title><id>%s</id><updated>%s</updated><link rel="self" href="%s"/>`,
			self, entryTime(n).Format(time.RFC3339), self)
		if hubURL != "" {
			fmt.Fprintf(&b, `<link rel="hub" href="%s"/>`, hubURL)
		}
		for i := n; i >= 1; i-- {
			fmt.Fprintf(&b, `<entry><id>urn:test:%d</id><title>Entry %d</title><updated>%s</updated><link href="https://example.com/%d"/><category term="c%d"/><content type="html">&lt;p&gt;body %d&lt;/p&gt;</content></entry>`,
				i, i, entryTime(i).Format(time.RFC3339), i, i, i)
		}
		b.WriteString(`</feed>`)
	case "rss":
		w.Header().Set("Content-Type", "application/rss+xml")
		b.WriteString(`<?xml version="1.0"?><rss version="2.0"><channel><title>Test</title><link>https://example.com/</link><description>d</description>`)
		for i := n; i >= 1; i-- {
			fmt.Fprintf(&b, `<item><guid isPermaLink="false">urn:test:%d</guid><title>Entry %d</title><link>https://example.com/%d</link><description>body %d</description><enclosure url="https://example.com/%d.mp3" type="audio/mpeg" length="10"/><pubDate>%s</pubDate></item>`,
				i, i, i, i, i, entryTime(i).Format(time.RFC1123Z))
		}
		b.WriteString(`</channel></rss>`)
	case "json":
		w.Header().Set("Content-Type", "application/feed+json")
		items := []map[string]any{}
		for i := n; i >= 1; i-- {
			items = append(items, map[string]any{"id": fmt.Sprintf("urn:test:%d", i), "title": fmt.Sprintf("Entry %d", i),
				"content_html": fmt.Sprintf("<p>body %d</p>", i), "date_modified": entryTime(i).Format(time.RFC3339),
				"authors": []map[string]string{{"name": "Ann"}}})
		}
		doc, _ := json.Marshal(map[string]any{"version": "https://jsonfeed.org/version/1.1", "title": "Test", "feed_url": self, "items": items})
		b.Write(doc)
	}
	io.WriteString(w, b.String())
}

// entryJSON is the normalised entry (follow.Entry) as far as the tests look.
type entryJSON struct {
	ID         string   `json:"id"`
	Title      string   `json:"title"`
	Content    string   `json:"content"`
	Summary    string   `json:"summary"`
	Categories []string `json:"categories"`
	Enclosures []struct {
		URL string `json:"url"`
	} `json:"enclosures"`
	Authors []struct {
		Name string `json:"name"`
	} `json:"authors"`
	Updated   string `json:"updated"`
	Published string `json:"published"`
}

func entryOf(t *testing.T, w wireEvent) entryJSON {
	t.Helper()
	if w.ContentType != "application/json" {
		t.Fatalf("event %s: content type %q, want the normalised entry (application/json): %s", w.ID, w.ContentType, w.Data)
	}
	var e entryJSON
	if err := json.Unmarshal(w.Data, &e); err != nil {
		t.Fatalf("entry %s: %v", w.Data, err)
	}
	return e
}

// feedRow is a row of GET /api/feeds.
type feedRow struct {
	Topic           string  `json:"topic"`
	URL             string  `json:"url"`
	State           string  `json:"state"`
	Method          string  `json:"method"`
	Hub             string  `json:"hub"`
	IntervalSeconds float64 `json:"interval_seconds"`
	LastError       string  `json:"last_error"`
	LastStatus      int     `json:"last_status"`
	Subscribers     int     `json:"subscribers"`
	NextFetch       string  `json:"next_fetch"`
}

// waitFeed polls GET /api/feeds until the row of topic satisfies cond.
func (h *hubProc) waitFeed(t *testing.T, topic string, d time.Duration, what string, cond func(feedRow) bool) feedRow {
	t.Helper()
	var last feedRow
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		a := h.do(t, http.MethodGet, "/api/feeds", nil, nil)
		if a.Status != http.StatusOK {
			t.Fatalf("GET /api/feeds: %s", a)
		}
		var resp struct{ Feeds []feedRow }
		if err := json.Unmarshal(a.Body, &resp); err != nil {
			t.Fatalf("GET /api/feeds: %v in %s", err, a.Body)
		}
		for _, r := range resp.Feeds {
			if r.Topic == topic {
				last = r
				if cond(r) {
					return r
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // polling the API; not synchronisation
	}
	t.Fatalf("feed %s: not %s within %s; last row %+v", topic, what, d, last)
	return last
}

var feedArgs = []string{"--feeds", "http://127.0.0.1:*/**", "--allow-private-callbacks",
	"--feeds-min-interval", "200ms", "--feeds-max-interval", "600ms", "--feeds-linger", "1500ms", "--feeds-host-interval", "0"}

// TestFollowFeeds: for an Atom, an RSS 2.0 and a JSON Feed on 127.0.0.1,
// the first read with count=5 returns the feed's latest 5 entries; new
// entries reach SSE, long-poll and WebSub subscribers once and in order,
// as normalised JSON where asked; an unchanged feed gets 304s and its
// interval grows; following stops once the last subscriber has left.
func TestFollowFeeds(t *testing.T) {
	t.Parallel()
	hooks := make(chan []byte, 64)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		b, _ := io.ReadAll(r.Body)
		hooks <- b
	}))
	defer cb.Close()
	h := startHub(t, "", feedArgs...)
	for _, format := range []string{"atom", "rss", "json"} {
		t.Run(format, func(t *testing.T) {
			feed := newTestFeed(t, format, 8)
			topic := url.QueryEscape(feed.URL())

			// First read: fetched before answering; the newest 5, oldest first.
			er, _ := h.getEvents(t, "topic="+topic+"&count=5&format=json")
			if len(er.Events) != 5 {
				t.Fatalf("first read: %d events, want 5: %+v", len(er.Events), er)
			}
			for i, w := range er.Events {
				e := entryOf(t, w)
				if want := fmt.Sprintf("urn:test:%d", 4+i); e.ID != want || w.Type != "entry" {
					t.Fatalf("first read event %d: %s %+v, want %s", i, w.Type, e, want)
				}
			}
			last := entryOf(t, er.Events[4])
			switch format {
			case "atom":
				if last.Title != "Entry 8" || last.Content != "<p>body 8</p>" || len(last.Categories) != 1 || last.Categories[0] != "c8" || last.Updated == "" {
					t.Fatalf("atom entry normalised as %+v", last)
				}
			case "rss":
				if last.Summary != "body 8" || len(last.Enclosures) != 1 || last.Enclosures[0].URL != "https://example.com/8.mp3" || last.Published == "" {
					t.Fatalf("rss entry normalised as %+v", last)
				}
			case "json":
				if last.Content != "<p>body 8</p>" || len(last.Authors) != 1 || last.Authors[0].Name != "Ann" {
					t.Fatalf("json feed entry normalised as %+v", last)
				}
			}
			// Atom and RSS answers work on the topic too.
			a := h.do(t, http.MethodGet, "/events?topic="+topic+"&count=2&format=atom", nil, nil)
			if a.Status != http.StatusOK || strings.Count(string(a.Body), "<entry>") != 2 {
				t.Fatalf("format=atom: %s", a)
			}

			// Listeners: SSE (count=5 then live, entries as JSON),
			// long-poll from the read's cursor, and a webhook.
			sse := h.openSSE(t, "topic="+topic+"&count=5", "", false)
			sseEntry := func(i int) {
				t.Helper()
				w := decodeData(t, sse.next(t, 10*time.Second))
				text := string(w.Data)
				_ = json.Unmarshal(w.Data, &text) // XML comes as a JSON string
				if w.Type != "entry" || !strings.Contains(text, fmt.Sprintf(">urn:test:%d<", i)) && !strings.Contains(text, fmt.Sprintf(`"id":"urn:test:%d"`, i)) {
					t.Fatalf("SSE: %s %s, want entry urn:test:%d", w.Type, text, i)
				}
			}
			for i := 4; i <= 8; i++ {
				sseEntry(i)
			}
			form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {feed.URL()}, "hub.callback": {cb.URL + "/" + format}, "hub.verify": {"sync"}}
			if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
				t.Fatalf("websub subscribe: %s", a)
			}
			feed.add(2)
			sseEntry(9)
			sseEntry(10)
			poll, _ := h.getEvents(t, "topic="+topic+"&wait=poll&timeout=10&format=json&after="+url.QueryEscape(er.Cursor))
			if len(poll.Events) != 2 || entryOf(t, poll.Events[0]).ID != "urn:test:9" || entryOf(t, poll.Events[1]).ID != "urn:test:10" {
				t.Fatalf("long-poll after the first read: %+v", poll)
			}
			var hooked string
			for !strings.Contains(hooked, "urn:test:10") {
				select {
				case b := <-hooks:
					hooked += string(b)
				case <-time.After(10 * time.Second):
					t.Fatalf("webhook: no delivery of entries 9 and 10; got %q", hooked)
				}
			}
			if !strings.Contains(hooked, "urn:test:9") || strings.Contains(hooked, "urn:test:8") {
				t.Fatalf("webhook deliveries %q: want entries 9 and 10 only", hooked)
			}
			// Nothing is published twice: the feed is unchanged now.
			if ev, err := sse.tryNext(time.Second); err == nil {
				t.Fatalf("SSE: an event after entry 10: %+v", ev)
			}
			all := h.retrieveAll(t, feed.URL())
			if len(all) != 10 {
				t.Fatalf("the topic holds %d events, want 10", len(all))
			}

			// Unchanged: 304s, and the interval grows past the minimum.
			h.waitFeed(t, feed.URL(), 10*time.Second, "backed off", func(r feedRow) bool {
				return r.LastStatus == http.StatusNotModified && r.IntervalSeconds > 0.2 && r.Method == "poll" && r.Subscribers == 2
			})

			// The listeners leave: the webhook unsubscribes, the stream closes.
			form.Set("hub.mode", "unsubscribe")
			if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
				t.Fatalf("websub unsubscribe: %s", a)
			}
			sse.Close()
			h.waitFeed(t, feed.URL(), 15*time.Second, "idle, with no fetch scheduled", func(r feedRow) bool {
				return r.State == "idle" && r.Subscribers == 0 && r.NextFetch == ""
			})
		})
	}
	if v := h.metric(t, `hubbub_feeds_fetches_total{status="304"}`); v < 3 {
		t.Errorf("hubbub_feeds_fetches_total{status=\"304\"} = %v, want some", v)
	}
	if v := h.metric(t, `hubbub_feeds_entries_total`); v != 30 { // 10 per feed, each once
		t.Errorf("hubbub_feeds_entries_total = %v, want 30", v)
	}
	h.waitMetric(t, "hubbub_feeds_followed", 10*time.Second, func(v float64) bool { return v == 0 })
}

// TestFollowRefusals: with --feeds set, a subscription of any kind to a
// feed URL no pattern covers, or whose host resolves to a non-public
// address, is refused with 403 and the reason; one feed more than
// --feeds-max gets 429; topics that are no URLs are not concerned.
func TestFollowRefusals(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--feeds", "https://*.example.com/**", "--feeds", "http://localhost:*/**")
	for _, tc := range []struct{ topic, reason string }{
		{"http://127.0.0.1:9/feed", "no --feeds pattern covers it"},
		{"http://localhost:9/feed", "non-public address"},
	} {
		q := "topic=" + url.QueryEscape(tc.topic)
		for _, query := range []string{q, q + "&count=5", q + "&wait=poll&timeout=1", q + "&wait=stream"} {
			a := h.do(t, http.MethodGet, "/events?"+query, nil, nil)
			if a.Status != http.StatusForbidden || !strings.Contains(string(a.Body), tc.reason) {
				t.Errorf("GET /events?%s: %s, want 403 saying %q", query, a, tc.reason)
			}
		}
		if _, a := h.trySSE(t, q, "", false); a.Status != http.StatusForbidden || !strings.Contains(string(a.Body), tc.reason) {
			t.Errorf("SSE %s: %s, want 403 saying %q", tc.topic, a, tc.reason)
		}
		form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {tc.topic}, "hub.callback": {"https://cb.example.com/x"}, "hub.verify": {"sync"}}
		a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode()))
		if a.Status != http.StatusForbidden || !strings.Contains(string(a.Body), tc.reason) {
			t.Errorf("WebSub subscribe to %s: %s, want 403 saying %q", tc.topic, a, tc.reason)
		}
	}
	if a := h.do(t, http.MethodGet, "/events?topic=news", nil, nil); a.Status != http.StatusOK {
		t.Errorf("a plain topic: %s", a)
	}

	// --feeds-max: the second feed is one too many.
	h2 := startHub(t, "", "--feeds", "http://127.0.0.1:*/**", "--allow-private-callbacks", "--feeds-max", "1", "--feeds-host-interval", "0")
	one, two := newTestFeed(t, "atom", 1), newTestFeed(t, "rss", 1)
	if er, _ := h2.getEvents(t, "topic="+url.QueryEscape(one.URL())); len(er.Events) != 1 {
		t.Fatalf("first feed: %+v", er)
	}
	a := h2.do(t, http.MethodGet, "/events?topic="+url.QueryEscape(two.URL()), nil, nil)
	if a.Status != http.StatusTooManyRequests || !strings.Contains(string(a.Body), "--feeds-max 1") {
		t.Fatalf("second feed over --feeds-max 1: %s, want 429", a)
	}
}

// TestFollowGoneAndMoved: a feed that answers 301 is fetched at its new
// URL with entries still in the topic subscribed to; a 410 stops the
// following even while someone listens.
func TestFollowGoneAndMoved(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", feedArgs...)
	feed := newTestFeed(t, "atom", 2)
	feed.set(func(f *testFeed) { f.moved = "/old" })
	topic := feed.srv.URL + "/old"
	sse := h.openSSE(t, "topic="+url.QueryEscape(topic)+"&count=5", "", false)
	for range 2 {
		if w := decodeData(t, sse.next(t, 10*time.Second)); w.Type != "entry" || w.Topic != topic {
			t.Fatalf("SSE: %+v", w)
		}
	}
	h.waitFeed(t, topic, 10*time.Second, "moved", func(r feedRow) bool { return r.URL == feed.URL() && r.State == "following" })
	feed.add(1)
	if w := decodeData(t, sse.next(t, 10*time.Second)); !strings.Contains(string(w.Data), "urn:test:3") || w.Topic != topic {
		t.Fatalf("SSE after the move: %+v", w)
	}
	feed.set(func(f *testFeed) { f.status = http.StatusGone })
	h.waitFeed(t, topic, 10*time.Second, "gone", func(r feedRow) bool { return r.State == "gone" && r.NextFetch == "" && r.Subscribers == 1 })
	if v := h.metric(t, `hubbub_feeds_fetches_total{status="410"}`); v != 1 {
		t.Fatalf(`hubbub_feeds_fetches_total{status="410"} = %v, want 1`, v)
	}
}

// TestFollowPushed: a feed that names a hub (a second hubbub) is
// subscribed to there through the conduit; new entries arrive by push,
// with no second fetch by the follower.
func TestFollowPushed(t *testing.T) {
	t.Parallel()
	b := startHub(t, "", "--allow-private-callbacks")
	port := freePort(t)
	public := "http://127.0.0.1:" + strconv.Itoa(port)
	a := startHub(t, "", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--public-url", public,
		"--feeds", "http://127.0.0.1:*/**", "--allow-private-callbacks", "--feeds-min-interval", "200ms",
		"--feeds-max-interval", "1h", "--feeds-host-interval", "0")
	feed := newTestFeed(t, "atom", 3)
	feed.set(func(f *testFeed) { f.hub = b.URL + "/hub" })
	sse := a.openSSE(t, "topic="+url.QueryEscape(feed.URL())+"&count=3", "", false)
	for range 3 {
		sse.next(t, 10*time.Second)
	}
	a.waitFeed(t, feed.URL(), 10*time.Second, "pushed", func(r feedRow) bool { return r.Method == "push" && r.Hub == b.URL+"/hub" })
	// Pings go to the hub once it has verified the subscription.
	for deadline := time.Now().Add(20 * time.Second); ; {
		ans := a.do(t, http.MethodGet, "/api/upstreams", nil, nil)
		if strings.Contains(string(ans.Body), `"state":"active"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream subscription at the feed's hub is not active: %s", ans)
		}
		time.Sleep(50 * time.Millisecond) // polling the API; not synchronisation
	}
	feed.add(1)
	ping := url.Values{"hub.mode": {"publish"}, "hub.url": {feed.URL()}}
	if ans := b.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(ping.Encode())); ans.Status/100 != 2 {
		t.Fatalf("ping the feed's hub: %s", ans)
	}
	w := decodeData(t, sse.next(t, 20*time.Second))
	if !strings.Contains(string(w.Data), "urn:test:4") {
		t.Fatalf("pushed entry: %+v", w)
	}
	if ev, err := sse.tryNext(500 * time.Millisecond); err == nil {
		t.Fatalf("an event after the pushed entry (an entry published twice?): %+v", ev)
	}
	if gets, _ := feed.counts(); gets != 1 {
		t.Fatalf("the follower fetched the feed %d times, want 1 (the first fetch; then pushes)", gets)
	}
}

// TestFollowRestart: what is followed survives a restart: polling goes on
// from the durable schedule without a new subscriber, and no entry is
// published twice.
func TestFollowRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"--feeds", "http://127.0.0.1:*/**", "--allow-private-callbacks", "--feeds-min-interval", "200ms",
		"--feeds-max-interval", "600ms", "--feeds-linger", "1m", "--feeds-host-interval", "0"}
	h := startHub(t, dir, args...)
	feed := newTestFeed(t, "rss", 3)
	if er, _ := h.getEvents(t, "topic="+url.QueryEscape(feed.URL())+"&count=5"); len(er.Events) != 3 {
		t.Fatalf("first read: %+v", er)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hubbub exited with %d", code)
	}
	feed.add(1)
	h = startHub(t, dir, args...)
	// Nobody subscribes again: the durable poll fetches entry 4 by itself.
	var all []wireEvent
	for deadline := time.Now().Add(15 * time.Second); len(all) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, the topic holds %d events, want 4", len(all))
		}
		a := h.do(t, http.MethodGet, "/events?count=100&topic="+url.QueryEscape(feed.URL()), nil, nil)
		var er eventsResponse
		if err := json.Unmarshal(a.Body, &er); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		all = er.Events
		time.Sleep(50 * time.Millisecond) // polling the topic; not synchronisation
	}
	h.waitFeed(t, feed.URL(), 10*time.Second, "polled with 304s", func(r feedRow) bool { return r.LastStatus == http.StatusNotModified })
	if all = h.retrieveAll(t, feed.URL()); len(all) != 4 {
		t.Fatalf("the topic holds %d events, want 4 (none twice)", len(all))
	}
}

// TestFollowTwoNodes: two nodes on one Redis follow a feed that a
// subscriber on one of them listens to; any node may poll it, entries reach
// the subscriber, and the feed is followed until that subscriber leaves.
func TestFollowTwoNodes(t *testing.T) {
	t.Parallel()
	_, prefix := requireRedis(t)
	store := "redis://" + sharedRedis() + "/0"
	var hubs []*hubProc
	for i := range 2 {
		hubs = append(hubs, startHub(t, "", append([]string{"--store", store, "--redis-prefix", prefix, "--node-id", fmt.Sprintf("feeds-%d", i)}, feedArgs...)...))
	}
	a, b := hubs[0], hubs[1]
	feed := newTestFeed(t, "json", 2)
	topic := url.QueryEscape(feed.URL())
	sse := a.openSSE(t, "topic="+topic+"&count=5", "", false)
	sse.next(t, 10*time.Second)
	sse.next(t, 10*time.Second)
	// b learns of the feed (a read), then both nodes' runners share its polls.
	b.getEvents(t, "topic="+topic)
	for i := 3; i <= 6; i++ {
		feed.add(1)
		w := decodeData(t, sse.next(t, 10*time.Second))
		if !strings.Contains(string(w.Data), fmt.Sprintf(`"id":"urn:test:%d"`, i)) {
			t.Fatalf("SSE on node a: %s, want entry %d", w.Data, i)
		}
	}
	// Still followed well past the linger (1.5 s), as a's subscriber
	// listens: ten more fetches take at least 2 s (at most one per 200 ms).
	gets, _ := feed.counts()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if now, _ := feed.counts(); now >= gets+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 10 fetches in 20 s while a subscriber listens")
		}
		time.Sleep(50 * time.Millisecond) // polling a counter; not synchronisation
	}
	a.waitFeed(t, feed.URL(), 10*time.Second, "following with a subscriber", func(r feedRow) bool { return r.State == "following" && r.Subscribers == 1 })
	feed.add(1)
	w := decodeData(t, sse.next(t, 10*time.Second))
	if !strings.Contains(string(w.Data), `"id":"urn:test:7"`) {
		t.Fatalf("SSE on node a after the linger: %s", w.Data)
	}
	sse.Close()
	for _, h := range hubs {
		h.waitMetric(t, "hubbub_feeds_followed", 15*time.Second, func(v float64) bool { return v == 0 })
	}
}
