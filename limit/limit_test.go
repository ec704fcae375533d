package limit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rejections records OnReject calls.
type rejections struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejections) add(limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[limit]++
}

func (r *rejections) get(limit string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[limit]
}

func serve(t *testing.T, l *Limiter, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(l.Wrap(h))
	t.Cleanup(srv.Close)
	return srv
}

// stream is a handler that answers 200, flushes, and holds the request
// until the client goes away.
var stream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, _, _ = c.Read(r.Context())
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	<-r.Context().Done()
})

// Finding 9: a body trickled one byte at a time is cut off at the read
// timeout, answered 408, and its connection closed; it gets nowhere near
// sending its whole body.
func TestSlowBodyIsClosed(t *testing.T) {
	var rej rejections
	l := New(Options{ReadTimeout: 200 * time.Millisecond, OnReject: rej.add})
	srv := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return // answered by the limiter
		}
		fmt.Fprintln(w, "read it all")
	}))
	const bodyLen = 1000
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /hub HTTP/1.1\r\nHost: hub\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", bodyLen)

	answer := make(chan string, 1)
	go func() { // everything the server sends, up to its close
		b, _ := io.ReadAll(conn)
		answer <- string(b)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	var got string
trickle:
	for sent < bodyLen {
		select {
		case got = <-answer:
			break trickle
		case <-tick.C:
			if _, err := conn.Write([]byte("x")); err != nil {
				got = <-answer
				break trickle
			}
			sent++
		}
	}
	if sent == bodyLen {
		got = <-answer
		t.Fatalf("the whole slow body was read (answer %q)", got)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "did not arrive within 200ms") {
		t.Fatalf("answer %q, want 408 with a reason", got)
	}
	t.Logf("closed after %d of %d body bytes", sent, bodyLen)
	if rej.get(ReadTimeout) != 1 {
		t.Fatalf("read_timeout rejections = %d, want 1", rej.get(ReadTimeout))
	}
}

// A body that arrived in time lifts the deadline: a handler still working
// after the read timeout keeps its context and answers.
func TestBodyInTimeLiftsDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	l := New(Options{ReadTimeout: timeout})
	srv := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select { // outlive the deadline by three times
		case <-r.Context().Done():
			http.Error(w, "context ended", http.StatusInternalServerError)
			return
		case <-time.After(3 * timeout):
		}
		fmt.Fprintf(w, "%s", b)
	}))
	for i := range 2 { // the second on the same kept-alive connection
		resp, err := srv.Client().Post(srv.URL+"/publish", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "hello" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
}

// A streaming GET (no body) is not under the read deadline: it outlives
// the read timeout by many heartbeats.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	l := New(Options{ReadTimeout: timeout})
	srv := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		tick := time.NewTicker(timeout / 2)
		defer tick.Stop()
		for i := range 10 {
			fmt.Fprintf(w, "beat %d\n", i)
			_ = rc.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
		fmt.Fprintln(w, "end")
	}))
	resp, err := srv.Client().Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(b), "beat 9\nend\n") {
		t.Fatalf("stream ended early: %q", b)
	}
}

func get(t *testing.T, ctx context.Context, url string, header http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The N+1th stream of one address gets 429 with Retry-After and a reason;
// its WebSocket is closed with 1008; ending one stream admits another.
func TestConnsPerIP(t *testing.T) {
	var rej rejections
	l := New(Options{MaxConnsPerIP: 2, OnReject: rej.add})
	srv := serve(t, l, stream)
	ctx := context.Background()
	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	r1 := get(t, ctx1, srv.URL, nil)
	defer r1.Body.Close()
	r2 := get(t, ctx, srv.URL, nil)
	defer r2.Body.Close()
	if r1.StatusCode != 200 || r2.StatusCode != 200 {
		t.Fatalf("first two: %d %d", r1.StatusCode, r2.StatusCode)
	}

	r3 := get(t, ctx, srv.URL, nil)
	b, _ := io.ReadAll(r3.Body)
	r3.Body.Close()
	if r3.StatusCode != http.StatusTooManyRequests || r3.Header.Get("Retry-After") != "5" ||
		!strings.Contains(string(b), "too many connections from your address: at most 2") {
		t.Fatalf("third: %d Retry-After=%q %q", r3.StatusCode, r3.Header.Get("Retry-After"), b)
	}

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatalf("the upgrade over the limit must be accepted, then closed: %v", err)
	}
	_, _, err = c.Read(dctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != CloseReason {
		t.Fatalf("over-limit WebSocket read: %v, want close 1008 %q", err, CloseReason)
	}

	cancel1() // the first stream ends; its slot frees when its handler returns
	waitFor(t, "the first stream's slot to free", func() bool { return l.InFlight("127.0.0.1") < 2 })
	r4 := get(t, ctx, srv.URL, nil)
	defer r4.Body.Close()
	if r4.StatusCode != http.StatusOK {
		t.Fatalf("after freeing one: %d", r4.StatusCode)
	}
	if n := rej.get(ConnsPerIP); n != 2 {
		t.Fatalf("conns_per_ip rejections = %d, want 2", n)
	}
}

// The client address comes from the hook: two clients behind one proxy
// each get their own count.
func TestConnsPerIPClientAddrHook(t *testing.T) {
	l := New(Options{MaxConnsPerIP: 1, ClientAddr: func(r *http.Request) string { return r.Header.Get("X-Client") }})
	srv := serve(t, l, stream)
	ctx := context.Background()
	for _, tc := range []struct {
		client string
		want   int
	}{{"a", 200}, {"b", 200}, {"a", 429}, {"b", 429}, {"c", 200}} {
		resp := get(t, ctx, srv.URL, http.Header{"X-Client": {tc.client}})
		defer resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("client %s: %d, want %d", tc.client, resp.StatusCode, tc.want)
		}
	}
}

func TestPublishRate(t *testing.T) {
	var rej rejections
	l := New(Options{PublishRate: 0.5, PublishBurst: 2, OnReject: rej.add})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := l.AllowPublish(r); !ok {
			TooMany(w, wait, "publish rate limit")
			return
		}
		fmt.Fprintln(w, "published")
	}))
	defer srv.Close()
	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i, tc := range []struct {
		token string
		want  int
	}{{"k1", 200}, {"k1", 200}, {"k1", 429}, {"k2", 200}, {"", 200}, {"", 200}, {"", 429}} {
		resp := post(tc.token)
		if resp.StatusCode != tc.want {
			t.Fatalf("publish %d (%q): %d, want %d", i, tc.token, resp.StatusCode, tc.want)
		}
		if tc.want == 429 && resp.Header.Get("Retry-After") != "2" {
			// 0.5/s: the next token is at most 2 s away.
			t.Fatalf("Retry-After = %q, want 2", resp.Header.Get("Retry-After"))
		}
	}
	if n := rej.get(PublishRate); n != 2 {
		t.Fatalf("publish_rate rejections = %d, want 2", n)
	}
}

// The bucket refills at the rate; the wait given is until the next token.
func TestBucketsTake(t *testing.T) {
	b := newBuckets(10, 2, 100)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0},
		{0, true, 0},
		{0, false, 100 * time.Millisecond},
		{50 * time.Millisecond, false, 50 * time.Millisecond},
		{100 * time.Millisecond, true, 0},
		{100 * time.Millisecond, false, 100 * time.Millisecond},
		{time.Second, true, 0},
		{time.Second, true, 0},
		{time.Second, false, 100 * time.Millisecond},
	}
	for i, s := range steps {
		wait, ok := b.take("k", t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d at %v: ok=%v wait=%v, want %v %v", i, s.at, ok, wait, s.ok, s.wait)
		}
	}
}

// The buckets kept stay under the cap however many keys come, idle ones
// going first.
func TestBucketsBounded(t *testing.T) {
	b := newBuckets(1, 1, 64)
	t0 := time.Unix(1000, 0)
	for i := range 10000 {
		b.take(fmt.Sprint("k", i), t0)
		if n := b.tracked(); n > 64 {
			t.Fatalf("after %d keys: %d buckets kept", i+1, n)
		}
	}
	// A busy key survives a sweep of idle ones.
	b = newBuckets(1, 1, 4)
	for i := range 3 {
		b.take(fmt.Sprint("idle", i), t0)
	}
	b.take("busy", t0.Add(1500*time.Millisecond))
	b.take("new", t0.Add(2*time.Second)) // full: the idle three go
	if n := b.tracked(); n != 2 {
		t.Fatalf("%d buckets after the sweep, want busy and new", n)
	}
	if _, ok := b.take("busy", t0.Add(2*time.Second)); ok {
		t.Fatal("the busy key's bucket was dropped: it got a fresh token")
	}
}

func TestDefaultRateKey(t *testing.T) {
	addr := func(*http.Request) string { return "10.0.0.1" }
	for _, tc := range []struct{ auth, want string }{
		{"", "addr:10.0.0.1"},
		{"Bearer k", "key:8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"},
		{"bearer  k ", "key:8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"},
		{"Basic abc", "addr:10.0.0.1"},
		{"Bearer ", "addr:10.0.0.1"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/publish", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if got := DefaultRateKey(r, addr); got != tc.want {
			t.Errorf("Authorization %q: %q, want %q", tc.auth, got, tc.want)
		}
	}
}

// BenchmarkWrap measures the door's cost on a request with every limit on.
func BenchmarkWrap(b *testing.B) {
	l := New(Options{MaxConnsPerIP: 100, ReadTimeout: time.Second, PublishRate: 1e9})
	h := l.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { l.AllowPublish(r) }))
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.RemoteAddr = "10.1.2.3:4567"
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkBucketsChurn measures takes by ever-new keys against a full map
// (the eviction path).
func BenchmarkBucketsChurn(b *testing.B) {
	bk := newBuckets(10, 10, 10000)
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bk.take(strconv.Itoa(i), now)
		i++
	}
}
