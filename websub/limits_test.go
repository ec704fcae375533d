package websub_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
)

// localhost returns u with its host 127.0.0.1 named localhost: another
// callback host for the per-host limits, on the same loopback address.
func localhost(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

// TestReservedTopicsRefused (audit finding 4): a subscription or
// unsubscription to a $sys/ topic, by name or by its BASE/topics/ URL, is
// refused whatever the Authorize hook says, and the callback never hears
// of it.
func TestReservedTopicsRefused(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.Authorize = func(*http.Request, string, string) (time.Time, int, string) { return time.Time{}, 0, "" } // an admin
	}).start()
	s := newSubscriber(t)
	base := e.srv.URL
	for _, mode := range []string{"subscribe", "unsubscribe"} {
		for _, topic := range []string{"$sys/stats/n1", base + "/topics/$sys/stats/n1", base + "/topics/%24sys/stats/n1"} {
			for _, verify := range []string{"sync", "async"} {
				code, body := e.post(url.Values{"hub.mode": {mode}, "hub.topic": {topic}, "hub.callback": {s.url("/steal")}, "hub.verify": {verify}})
				if code != http.StatusForbidden || !strings.Contains(body, "$sys/") {
					t.Errorf("%s %s (%s): %d %q", mode, topic, verify, code, body)
				}
			}
		}
	}
	select {
	case d := <-s.verifs:
		t.Fatalf("the callback got a verification: %v", d.query)
	default:
	}
	if n := e.records.Len(); n != 0 {
		t.Fatalf("%d subscriptions stored", n)
	}
}

// TestAuthorizeHook: the hook sees each mode with the local topic; its
// refusals are answered as given; its notAfter caps the lease sent for
// verification and the subscription's expiry.
func TestAuthorizeHook(t *testing.T) {
	type call struct{ mode, topic string }
	var mu sync.Mutex
	var calls []call
	var notAfter time.Time
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.Authorize = func(r *http.Request, mode, topic string) (time.Time, int, string) {
			mu.Lock()
			calls = append(calls, call{mode, topic})
			mu.Unlock()
			switch r.Header.Get("Authorization") {
			case "":
				return time.Time{}, http.StatusUnauthorized, "a token is needed"
			case "Bearer reader":
				if mode == websub.ModePublish {
					return time.Time{}, http.StatusForbidden, "this token cannot publish"
				}
				return notAfter, 0, ""
			}
			return time.Time{}, 0, ""
		}
	}).start()
	s := newSubscriber(t)
	send := func(auth string, v url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/hub", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	sub := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {e.srv.URL + "/topics/private/a"}, "hub.callback": {s.url("/cb")}, "hub.verify": {"sync"}, "hub.lease_seconds": {"86400"}}
	resp, _ := send("", sub)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("anonymous subscribe: %d %v", resp.StatusCode, resp.Header)
	}
	ping := url.Values{"hub.mode": {"publish"}, "hub.url": {"http://feed.example/x"}}
	if resp, _ := send("Bearer reader", ping); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ping with a reader token: %d", resp.StatusCode)
	}
	mu.Lock()
	want := []call{{"subscribe", "private/a"}, {"publish", "http://feed.example/x"}}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("hook calls %v, want %v", calls, want)
	}
	mu.Unlock()

	// A token good for another hour: the lease asked (a day) is capped.
	notAfter = e.clock.Now().Add(time.Hour)
	if resp, body := send("Bearer reader", sub); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, body)
	}
	q := (<-s.verifs).query
	if n, _ := strconv.Atoi(q.Get("hub.lease_seconds")); n > 3600 || n < 3590 {
		t.Fatalf("lease_seconds in the verification: %s", q.Get("hub.lease_seconds"))
	}
	got, ok, _ := e.records.Get(t.Context(), websub.SubscriptionID(sub.Get("hub.topic"), sub.Get("hub.callback")))
	if !ok || got.Expires.After(notAfter) {
		t.Fatalf("subscription %+v, want it to end by %v", got, notAfter)
	}
	// Credentials that have expired cannot start a lease.
	notAfter = e.clock.Now().Add(-time.Second)
	if resp, _ := send("Bearer reader", sub); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired credentials: %d", resp.StatusCode)
	}
}

// TestPerHostCap (audit finding 6): new subscriptions for callbacks on a
// host with MaxPerHost of them are refused (403) before any
// verification, across topics and ports; renewals and other hosts are not.
func TestPerHostCap(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.MaxPerHost = 3 }).start()
	s := newSubscriber(t)
	sync := func(topic, cb string) (int, string) {
		return e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {topic}, "hub.callback": {cb}, "hub.verify": {"sync"}})
	}
	for i := range 3 {
		if code, body := sync("t"+strconv.Itoa(i), s.url("/"+strconv.Itoa(i))); code != http.StatusNoContent {
			t.Fatalf("subscription %d: %d %s", i, code, body)
		}
	}
	verifs := len(s.verifs)
	for i := range 50 { // the attack: many more, each refused at once
		code, body := sync("flood", s.url("/f"+strconv.Itoa(i)))
		if code != http.StatusForbidden || !strings.Contains(body, "per host") {
			t.Fatalf("over the cap: %d %s", code, body)
		}
	}
	if n := len(s.verifs) - verifs; n != 0 {
		t.Fatalf("%d verification requests sent over the cap", n)
	}
	if code, _ := sync("t0", s.url("/0")); code != http.StatusNoContent {
		t.Fatalf("renewal: %d", code)
	}
	if code, _ := sync("t9", localhost(s.url("/other"))); code != http.StatusNoContent {
		t.Fatalf("another host: %d", code)
	}
	if n := e.records.Len(); n != 4 {
		t.Fatalf("%d subscriptions, want 4", n)
	}
}

// TestSubscribeRate (audit finding 6): one client gets its burst, then
// 429 with Retry-After; another client (ClientAddr) is not affected.
func TestSubscribeRate(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.SubscribeRate = 0.01 // burst 1
		o.ClientAddr = func(r *http.Request) string { return r.Header.Get("X-Client") }
	})
	send := func(client string) *http.Response {
		v := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {"http://cb.example/"}}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/hub", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Client", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := send("a"); r.StatusCode != http.StatusAccepted {
		t.Fatalf("first: %d", r.StatusCode)
	}
	for range 20 {
		r := send("a")
		if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.StatusCode != http.StatusTooManyRequests || ra < 1 {
			t.Fatalf("over the rate: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	if r := send("b"); r.StatusCode != http.StatusAccepted {
		t.Fatalf("another client: %d", r.StatusCode)
	}
}

// tarpit accepts connections and never answers. It counts the
// connections open at once.
type tarpit struct {
	ln         net.Listener
	open, most atomic.Int64
	total      atomic.Int64
	accepted   chan struct{} // one per connection accepted
	mu         sync.Mutex
	conns      []net.Conn
}

func newTarpit(t *testing.T) *tarpit {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tarpit{ln: ln, accepted: make(chan struct{}, 1000)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.total.Add(1)
			n := tp.open.Add(1)
			for m := tp.most.Load(); n > m && !tp.most.CompareAndSwap(m, n); m = tp.most.Load() {
			}
			tp.mu.Lock()
			tp.conns = append(tp.conns, c)
			tp.mu.Unlock()
			select {
			case tp.accepted <- struct{}{}:
			default:
			}
			go func() { // read until the client gives up, answer nothing
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						tp.open.Add(-1)
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		tp.mu.Lock()
		for _, c := range tp.conns {
			_ = c.Close()
		}
		tp.mu.Unlock()
	})
	return tp
}

func (tp *tarpit) url(path string) string { return "http://" + tp.ln.Addr().String() + path }

// TestTarpitDoesNotDelayVerification reproduces audit finding 6's
// starvation: 60 async subscriptions to a host that accepts and never
// answers, then one to another host. That verification arrives promptly
// (it used to wait 210 s), and the tarpit never held more than two
// connections.
func TestTarpitDoesNotDelayVerification(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	tp := newTarpit(t)
	for i := range 60 {
		if code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t/flood"}, "hub.callback": {tp.url("/t" + strconv.Itoa(i))}}); code != http.StatusAccepted {
			t.Fatalf("tarpit subscription %d: %d %s", i, code, body)
		}
	}
	// Wait until the tarpit holds its verifications, so they are ahead.
	for range 2 {
		select {
		case <-tp.accepted:
		case <-time.After(waitFor):
			t.Fatal("the tarpit got no verification")
		}
	}
	legit := newSubscriber(t)
	cb := localhost(legit.url("/legit"))
	start := time.Now()
	if code, _ := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t/legit"}, "hub.callback": {cb}}); code != http.StatusAccepted {
		t.Fatalf("legit subscription: %d", code)
	}
	select {
	case <-legit.verifs:
		t.Logf("legitimate verification arrived %v after its request", time.Since(start).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatalf("the legitimate verification did not arrive within 3s (tarpit: %d open, %d in all)", tp.open.Load(), tp.total.Load())
	}
	if m := tp.most.Load(); m > 2 {
		t.Fatalf("the tarpit held %d connections at once, want at most 2", m)
	}
	t.Logf("tarpit: at most %d connections at once, %d in all", tp.most.Load(), tp.total.Load())
}

// TestSlowHostDoesNotDelayDeliveries: deliveries to a host that never
// answers its POSTs take at most PerHostConcurrency workers; another
// host's delivery goes out meanwhile, even with few workers.
func TestSlowHostDoesNotDelayDeliveries(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.DeliverConcurrency = 2
		o.PerHostConcurrency = 1
	}).start()
	slow, fast := newSubscriber(t), newSubscriber(t)
	release := make(chan struct{})
	var inFlight, most atomic.Int64
	slow.set(nil, func(int, delivery) (int, http.Header) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
		return 200, nil
	})
	t.Cleanup(func() { close(release) })
	for i := range 6 {
		if err := e.subscribe("t", slow.url("/"+strconv.Itoa(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.subscribe("t", localhost(fast.url("/")), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
		select {
		case d := <-fast.posts:
			if string(d.body) != strconv.Itoa(i) {
				t.Fatalf("fast got %q", d.body)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("delivery %d to the other host did not arrive within 3s", i)
		}
	}
	if m := most.Load(); m > 1 {
		t.Fatalf("%d deliveries in flight to the slow host at once, want at most 1", m)
	}
}

// TestVerificationErrorsArePlain (audit finding 12): a failed sync
// verification says what failed in plain words, without network details.
func TestVerificationErrorsArePlain(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.HTTPTimeout = time.Second }).start()
	s := newSubscriber(t)
	tp := newTarpit(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/x"
	_ = closed.Close()
	for _, tc := range []struct {
		name, callback string
		verify         func(string) (int, string)
		want           string
	}{
		{"404", s.url("/a"), func(string) (int, string) { return 404, "" }, "callback answered 404"},
		{"wrong echo", s.url("/b"), func(string) (int, string) { return 200, "nope" }, "callback did not echo the challenge"},
		{"silent", tp.url("/c"), nil, "callback did not answer within 1s"},
		{"closed port", closedURL, nil, "callback could not be reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.set(tc.verify, nil)
			code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {tc.callback}, "hub.verify": {"sync"}})
			body = strings.TrimSpace(body)
			if code != http.StatusConflict || body != "websub: verification failed: "+tc.want {
				t.Fatalf("%d %q, want 409 %q", code, body, tc.want)
			}
		})
	}
}

// TestCallbackPortsAndGuard (audit finding 12): without
// AllowPrivate, callbacks on ports below 1024 other than 80 and 443 are
// refused at request time, and a refused address is reported as
// unreachable, without the guard's words or the address.
func TestCallbackPortsAndGuard(t *testing.T) {
	// Not started: sync verifications run inline, async ones stay queued.
	e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.AllowPrivate = false })
	for _, tc := range []struct {
		callback string
		code     int
	}{
		{"http://cb.example:25/x", http.StatusBadRequest},
		{"http://cb.example:22/x", http.StatusBadRequest},
		{"http://cb.example:1023/x", http.StatusBadRequest},
		{"http://cb.example:0/x", http.StatusBadRequest},
		{"http://cb.example/x", http.StatusAccepted},
		{"http://cb.example:80/x", http.StatusAccepted},
		{"https://cb.example:443/x", http.StatusAccepted},
		{"http://cb.example:1024/x", http.StatusAccepted},
		{"http://cb.example:8080/x", http.StatusAccepted},
	} {
		code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {tc.callback}, "hub.verify": {"async"}})
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.callback, code, body, tc.code)
		}
	}
	s := newSubscriber(t)
	code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {s.url("/")}, "hub.verify": {"sync"}})
	if code != http.StatusConflict || strings.TrimSpace(body) != "websub: verification failed: callback could not be reached (this hub calls no loopback or private address unless started with --allow-private-callbacks)" {
		t.Fatalf("loopback callback: %d %q", code, body)
	}
}
