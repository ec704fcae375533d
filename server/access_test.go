package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/server"
)

const (
	testSecret = "0123456789abcdef0123456789abcdef"
	publishKey = "matrix-publish-key"
	adminKey   = "matrix-admin-key"
)

// startHub serves a real server.Handler on 127.0.0.1 with cfg's access
// settings over the defaults.
func startHub(t *testing.T, edit func(*config.Config)) *httptest.Server {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Heartbeat = time.Second
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = s.Close()
	})
	return srv
}

func mint(t *testing.T, c access.HubbubClaim, issued time.Time, ttl time.Duration) string {
	t.Helper()
	tok, err := access.Mint(testSecret, c, "tester", "", "", issued, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call makes one request with the credential (a bearer value, or none)
// and returns its status; streams are closed once their headers arrive.
func call(t *testing.T, method, u, cred string, body io.Reader, hdr ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		r.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wsDo opens a WebSocket with the credential, sends msg and returns the
// status its answer stands for: 200 for subscribed or published, else
// the status of the error op (0 when it has none).
func wsDo(t *testing.T, base, cred, host, msg string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}, Host: host}
	if cred != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+cred)
	}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("ws: no answer to %s: %v", msg, err)
		}
		var m struct {
			Op     string `json:"op"`
			Status int    `json:"status"`
			Code   string `json:"code"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Op {
		case "subscribed", "published":
			return 200
		case "error":
			if m.Status == 0 {
				t.Fatalf("ws error without status: %s", b)
			}
			return m.Status
		}
	}
}

// TestAccessMatrix is the whole access matrix: every kind of client
// against every way in, for a public and a private topic, through the
// real handler.
func TestAccessMatrix(t *testing.T) {
	srv := startHub(t, func(c *config.Config) {
		c.PublishKeys = []string{publishKey}
		c.AdminKey = adminKey
		c.JWTSecret = testSecret
		c.Private = []string{"priv/**", "http://feeds.example/priv/**"}
	})
	now := time.Now()
	covering := access.HubbubClaim{
		Subscribe: []string{"pub/**", "priv/**"},
		Publish:   []string{"pub/**", "priv/**", "http:/**"},
	}
	other := access.HubbubClaim{Subscribe: []string{"other/**"}, Publish: []string{"other/**"}}
	creds := []struct{ name, value string }{
		{"anonymous", ""},
		{"publish key", publishKey},
		{"covering token", mint(t, covering, now, time.Hour)},
		{"non-covering token", mint(t, other, now, time.Hour)},
		{"expired token", mint(t, covering, now.Add(-time.Hour), time.Minute)},
		{"admin", adminKey},
	}
	// Expected statuses, one per credential in the order above.
	var (
		publishing = []int{401, 200, 200, 403, 401, 200}
		pinging    = []int{401, 204, 204, 403, 401, 204} // a thin ping is answered 204 (the fetch runs later)
		readPublic = []int{200, 200, 200, 200, 200, 200}
		readPriv   = []int{401, 403, 200, 403, 401, 200}
		subPublic  = []int{202, 202, 202, 202, 202, 202}
		subPriv    = []int{401, 403, 202, 403, 401, 202}
		adminAPI   = []int{401, 403, 403, 403, 401, 200}
		sysTopic   = []int{403, 403, 403, 403, 401, 200}
	)
	base := srv.URL
	q := url.QueryEscape
	type way struct {
		name         string
		websub       bool // needs the WebSub hook
		public, priv []int
		do           func(cred, topic string) int
		topicMatters bool
	}
	ways := []way{
		{"publish", false, publishing, publishing, func(cred, topic string) int {
			return call(t, "POST", base+"/publish", cred, strings.NewReader(`{"topic":"`+topic+`","data":1}`), "Content-Type", "application/json")
		}, true},
		{"thin ping", true, pinging, pinging, func(cred, topic string) int {
			form := "hub.mode=publish&hub.url=" + q("http://feeds.example/"+topic)
			return call(t, "POST", base+"/hub", cred, strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
		}, true},
		{"SSE", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/events?topic="+q(topic), cred, nil, "Accept", "text/event-stream")
		}, true},
		{"long-poll", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/events?wait=poll&timeout=1ms&topic="+q(topic), cred, nil)
		}, true},
		{"stream", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/events?wait=stream&topic="+q(topic), cred, nil)
		}, true},
		{"retrieve", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/events?topic="+q(topic), cred, nil)
		}, true},
		{"documents", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/documents?topic="+q(topic), cred, nil)
		}, true},
		{"topics", false, readPublic, readPriv, func(cred, topic string) int {
			return call(t, "GET", base+"/topics/"+topic, cred, nil)
		}, true},
		{"WebSocket subscribe", false, readPublic, readPriv, func(cred, topic string) int {
			return wsDo(t, base, cred, "", `{"op":"subscribe","sub":"s","topic":"`+topic+`"}`)
		}, true},
		{"WebSocket publish", false, publishing, publishing, func(cred, topic string) int {
			return wsDo(t, base, cred, "", `{"op":"publish","topic":"`+topic+`","data":1}`)
		}, true},
		{"WebSub subscribe", true, subPublic, subPriv, func(cred, topic string) int {
			form := "hub.mode=subscribe&hub.topic=" + q(topic) + "&hub.callback=" + q("https://callback.example/cb")
			return call(t, "POST", base+"/hub", cred, strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
		}, true},
		{"admin API", false, adminAPI, adminAPI, func(cred, _ string) int {
			return call(t, "GET", base+"/api/stats", cred, nil)
		}, false},
		{"$sys", false, sysTopic, sysTopic, func(cred, _ string) int {
			return call(t, "GET", base+"/events?topic="+q("$sys/stats/n"), cred, nil)
		}, false},
	}
	for _, w := range ways {
		for _, vis := range []struct {
			name, topic string
			want        []int
		}{{"public", "pub/t", w.public}, {"private", "priv/t", w.priv}} {
			if !w.topicMatters && vis.name == "private" {
				continue
			}
			t.Run(w.name+"/"+vis.name, func(t *testing.T) {
				for i, c := range creds {
					if got := w.do(c.value, vis.topic); got != vis.want[i] {
						t.Errorf("%s: %d, want %d", c.name, got, vis.want[i])
					}
				}
			})
		}
	}
}

// TestProxiedLoopbackIsNotLocal is the regression test of audit finding 2
// and newcomer problem 1: with no keys, a request that a reverse proxy on
// the same host forwards (peer 127.0.0.1, X-Forwarded-For set) may not
// publish, administer or read $sys/.
func TestProxiedLoopbackIsNotLocal(t *testing.T) {
	srv := startHub(t, nil)
	xff := []string{"X-Forwarded-For", "198.51.100.77"}
	body := func() io.Reader { return strings.NewReader(`{"topic":"via/proxy","data":1}`) }
	if got := call(t, "POST", srv.URL+"/publish", "", body(), append(xff, "Content-Type", "application/json")...); got != 403 {
		t.Errorf("proxied publish: %d, want 403", got)
	}
	if got := call(t, "GET", srv.URL+"/api/stats", "", nil, xff...); got != 401 {
		t.Errorf("proxied /api/stats: %d, want 401", got)
	}
	if got := call(t, "GET", srv.URL+"/events?topic="+url.QueryEscape("$sys/stats/n"), "", nil, xff...); got != 403 {
		t.Errorf("proxied $sys read: %d, want 403", got)
	}
	// A direct local client still may (the default stays usable).
	if got := call(t, "POST", srv.URL+"/publish", "", body(), "Content-Type", "application/json"); got != 200 {
		t.Errorf("local publish: %d, want 200", got)
	}
	if got := call(t, "GET", srv.URL+"/api/stats", "", nil); got != 200 {
		t.Errorf("local /api/stats: %d, want 200", got)
	}
	// With the proxy trusted, a client it names as local is local again,
	// and one it names as remote is not, whatever it claims itself.
	trusted := startHub(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	if got := call(t, "GET", trusted.URL+"/api/stats", "", nil, "X-Forwarded-For", "127.0.0.1, 198.51.100.77"); got != 401 {
		t.Errorf("trusted proxy, remote client: %d, want 401", got)
	}
	if got := call(t, "GET", trusted.URL+"/api/stats", "", nil, "X-Forwarded-For", "127.0.0.1"); got != 200 {
		t.Errorf("trusted proxy, local client: %d, want 200", got)
	}
}

// TestRebindingHostIsNotLocal is the regression test of audit finding 5's
// Host part: a DNS-rebinding page reaches 127.0.0.1 with its own name as
// Host, over HTTP and WebSocket, and gets nothing a local client gets.
func TestRebindingHostIsNotLocal(t *testing.T) {
	srv := startHub(t, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	host := "attacker.example:" + port
	if got := call(t, "POST", srv.URL+"/publish", "", strings.NewReader(`{"topic":"r","data":1}`), "Host", host, "Content-Type", "application/json"); got != 403 {
		t.Errorf("rebinding publish: %d, want 403", got)
	}
	if got := call(t, "GET", srv.URL+"/api/stats", "", nil, "Host", host); got != 401 {
		t.Errorf("rebinding /api/stats: %d, want 401", got)
	}
	if got := wsDo(t, srv.URL, "", host, `{"op":"publish","topic":"ws/rebind","data":"x"}`); got != 403 {
		t.Errorf("rebinding WebSocket publish: %d, want 403", got)
	}
	if got := wsDo(t, srv.URL, "", host, `{"op":"subscribe","sub":"s","topic":"$sys/stats/*"}`); got != 403 {
		t.Errorf("rebinding WebSocket $sys: %d, want 403", got)
	}
	// The same requests with a loopback Host are local.
	if got := wsDo(t, srv.URL, "", "localhost:"+port, `{"op":"publish","topic":"ws/local","data":"x"}`); got != 200 {
		t.Errorf("local WebSocket publish: %d, want 200", got)
	}
}

// TestThinPingNeedsKey is the regression test of newcomer problem 2: with
// a publish key set, an anonymous thin ping is refused.
func TestThinPingNeedsKey(t *testing.T) {
	srv := startHub(t, func(c *config.Config) { c.PublishKeys = []string{publishKey} })
	form := "hub.mode=publish&hub.url=" + url.QueryEscape("http://feeds.example/secret.txt")
	if got := call(t, "POST", srv.URL+"/hub", "", strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded"); got != 401 {
		t.Errorf("anonymous thin ping: %d, want 401", got)
	}
}

// TestPrivateTopicsNeedToken is the regression test of newcomer problem
// 3: a hub can keep topics from anonymous readers, on every way in.
func TestPrivateTopicsNeedToken(t *testing.T) {
	srv := startHub(t, func(c *config.Config) {
		c.JWTSecret = testSecret
		c.SubscribeAuth = "required"
		c.AdminKey = adminKey // else this local client would be an admin
	})
	for _, u := range []string{"/events?topic=a", "/events?topic=a&wait=poll&timeout=1ms", "/documents?topic=a", "/topics/a"} {
		if got := call(t, "GET", srv.URL+u, "", nil); got != 401 {
			t.Errorf("anonymous %s: %d, want 401", u, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?topic=a", nil)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
	}
	tok := mint(t, access.HubbubClaim{Subscribe: []string{"a"}}, time.Now(), time.Hour)
	if got := call(t, "GET", srv.URL+"/events?topic=a&access_token="+tok, "", nil); got != 200 {
		t.Errorf("token in the query: %d, want 200", got)
	}
}

// readUntil reads lines from r until one contains want, or fails at the
// deadline.
func readUntil(t *testing.T, body io.Reader, want string) {
	t.Helper()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), want) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("the stream ended without %q", want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no %q within 20s", want)
	}
}

// TestShortLivedTokenEndsStreams: an SSE stream and an NDJSON stream of a
// private topic end when their token expires, each with its notice.
func TestShortLivedTokenEndsStreams(t *testing.T) {
	srv := startHub(t, func(c *config.Config) {
		c.JWTSecret = testSecret
		c.Private = []string{"priv/**"}
		c.AdminKey = adminKey // else this local client would be an admin
	})
	short := func() string {
		return mint(t, access.HubbubClaim{Subscribe: []string{"priv/**"}}, time.Now(), 2*time.Second)
	}
	for _, c := range []struct{ name, path, accept, want string }{
		{"SSE", "/events?topic=priv/a", "text/event-stream", "event: auth-expired"},
		{"stream", "/events?wait=stream&topic=priv/a", "", `"error":"auth_expired"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+c.path, nil)
			r.Header.Set("Authorization", "Bearer "+short())
			if c.accept != "" {
				r.Header.Set("Accept", c.accept)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			readUntil(t, resp.Body, c.want)
			// Then the hub closes the stream.
			if _, err := io.Copy(io.Discard, resp.Body); err != nil && ctx.Err() != nil {
				t.Fatal("the stream stayed open after auth-expired")
			}
		})
	}
	// A long-poll asking to wait 100 s answers by the token's expiry: well
	// before the client's 30 s deadline.
	t.Run("long-poll", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?wait=poll&timeout=100&topic=priv/a", nil)
		r.Header.Set("Authorization", "Bearer "+short())
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("the poll did not end with its token: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// wsConn is a small WebSocket client for the expiry tests.
type wsConn struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, base string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsConn{t, c}
}

func (w *wsConn) send(format string, a ...any) {
	w.t.Helper()
	if err := w.c.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, format, a...)); err != nil {
		w.t.Fatal(err)
	}
}

// expect reads until a message with the op (and sub, when not empty)
// arrives, within 20 s.
func (w *wsConn) expect(op, sub string) map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, b, err := w.c.Read(ctx)
		if err != nil {
			w.t.Fatalf("waiting for %s %s: %v", op, sub, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			w.t.Fatal(err)
		}
		if m["op"] == op && (sub == "" || m["sub"] == sub) {
			return m
		}
	}
}

// next reads the next message, within 20 s.
func (w *wsConn) next() map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// TestWebSocketTokenExpiry: a subscription that needed a token ends with
// an error op (401, "token expired") when the token expires; a refresh in
// time keeps it alive; a refresh that no longer covers it ends it (403).
func TestWebSocketTokenExpiry(t *testing.T) {
	srv := startHub(t, func(c *config.Config) {
		c.JWTSecret = testSecret
		c.Private = []string{"priv/**"}
		c.PublishKeys = []string{publishKey}
		c.AdminKey = adminKey // else these local clients would be admins
	})
	short := mint(t, access.HubbubClaim{Subscribe: []string{"priv/**"}}, time.Now(), 2*time.Second)
	long := mint(t, access.HubbubClaim{Subscribe: []string{"priv/**"}}, time.Now(), time.Hour)
	narrow := mint(t, access.HubbubClaim{Subscribe: []string{"other/**"}}, time.Now(), time.Hour)

	witness, refreshed, narrowed := dialWS(t, srv.URL), dialWS(t, srv.URL), dialWS(t, srv.URL)
	for _, c := range []*wsConn{witness, refreshed, narrowed} {
		c.send(`{"op":"auth","token":%q}`, short)
		c.expect("authenticated", "")
		c.send(`{"op":"subscribe","sub":"p","topic":"priv/a"}`)
		c.send(`{"op":"subscribe","sub":"pub","topic":"pub/a"}`) // needs no token
		c.expect("subscribed", "p")
		c.expect("subscribed", "pub")
	}
	refreshed.send(`{"op":"refresh","token":%q}`, long)
	refreshed.expect("authenticated", "")
	narrowed.send(`{"op":"refresh","token":%q}`, narrow)
	if m := narrowed.expect("error", "p"); m["status"] != float64(403) {
		t.Errorf("narrowed: %v, want status 403", m)
	}
	// The witness, not refreshed, loses its private subscription at expiry.
	m := witness.expect("error", "p")
	if m["status"] != float64(401) || m["message"] != "token expired" {
		t.Errorf("witness: %v, want 401 token expired", m)
	}
	// Now past the short token's expiry: the refreshed connection still
	// gets events of both subscriptions; the others only of the public one.
	pub := func(topic string) {
		if got := call(t, "POST", srv.URL+"/publish", publishKey, strings.NewReader(`{"topic":"`+topic+`","data":1}`), "Content-Type", "application/json"); got != 200 {
			t.Fatalf("publish: %d", got)
		}
	}
	pub("priv/a")
	pub("pub/a")
	if ev := refreshed.expect("event", ""); ev["sub"] != "p" {
		t.Errorf("refreshed: first event of %v, want p", ev["sub"])
	}
	for _, c := range []*wsConn{witness, narrowed} {
		if ev := c.expect("event", ""); ev["sub"] != "pub" {
			t.Errorf("expired subscription still delivered: %v", ev)
		}
	}
	// An invalid token changes nothing and says why.
	refreshed.send(`{"op":"refresh","token":"junk"}`)
	if m := refreshed.expect("error", ""); m["status"] != float64(401) {
		t.Errorf("junk refresh: %v", m)
	}
}

// TestWebSubSysRefused is the regression test of audit finding 4: with an
// admin key, an anonymous WebSub subscription to a $sys/ topic is refused
// (by name and by the hub's own topic URL for it).
func TestWebSubSysRefused(t *testing.T) {
	srv := startHub(t, func(c *config.Config) { c.AdminKey = adminKey })
	for _, topic := range []string{"$sys/stats/n", srv.URL + "/topics/$sys/stats/n"} {
		form := "hub.mode=subscribe&hub.verify=sync&hub.topic=" + url.QueryEscape(topic) + "&hub.callback=" + url.QueryEscape("https://callback.example/steal")
		if got := call(t, "POST", srv.URL+"/hub", "", strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded"); got != 403 && got != 401 {
			t.Errorf("anonymous WebSub subscription to %s: %d, want 401 or 403", topic, got)
		}
	}
}

// TestPublishRateFollowsTheToken: --publish-rate buckets are per token
// subject, also for a WebSocket that authenticated with an auth op after
// an anonymous upgrade; two subjects on one address do not share one.
func TestPublishRateFollowsTheToken(t *testing.T) {
	srv := startHub(t, func(c *config.Config) {
		c.JWTSecret = testSecret
		c.PublishRate = 0.01 // a burst of one, then one in 100 s
	})
	for _, sub := range []string{"alice", "bob"} {
		tok, err := access.Mint(testSecret, access.HubbubClaim{Publish: []string{"chat/*"}}, sub, "", "", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		w := dialWS(t, srv.URL)
		w.send(`{"op":"auth","token":%q}`, tok)
		w.expect("authenticated", "")
		w.send(`{"op":"publish","topic":"chat/a","data":1,"client_id":"%s-1"}`, sub)
		if m := w.next(); m["op"] != "published" {
			t.Fatalf("%s's first publish: %v", sub, m)
		}
		w.send(`{"op":"publish","topic":"chat/a","data":2,"client_id":"%s-2"}`, sub)
		if m := w.next(); m["op"] != "error" || m["code"] != "rate_limited" {
			t.Fatalf("%s's second publish: %v, want rate_limited", sub, m)
		}
	}
}
