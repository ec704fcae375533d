package grip

// WebSocket-over-HTTP edge cases and bounds: the extension header, control
// fuzzing, message size, retries, shutdown, keep-alive requests, meta,
// subprotocols, bad handshakes, binary and pings (ws_test.go has the
// environment and the main flows).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/grip/wsevents"
	"github.com/hubbub/hubbub/transport"
)

func TestWSGripExtension(t *testing.T) {
	cases := []struct {
		in     string
		ok     bool
		prefix string
		has    bool
	}{
		{"grip", true, "", false},
		{`grip; message-prefix=""`, true, "", true},
		{`grip; message-prefix="x:"`, true, "x:", true},
		{"grip; message-prefix=m", true, "m", true},
		{"permessage-deflate, grip", true, "", false},
		{"gripx", false, "", false},
		{"", false, "", false},
	}
	for _, c := range cases {
		params, ok := gripExtension(http.Header{"Sec-Websocket-Extensions": {c.in}})
		p, has := params["message-prefix"]
		if ok != c.ok || has != c.has || p != c.prefix {
			t.Errorf("gripExtension(%q) = %v %v, want ok %v prefix %q (%v)", c.in, params, ok, c.ok, c.prefix, c.has)
		}
	}
}

// FuzzWSControl feeds the origin's control messages and extension header
// to their parsers: never a panic.
func FuzzWSControl(f *testing.F) {
	for _, s := range []string{`{"type":"subscribe","channel":"a"}`, `{"type":"keep-alive","content":"x","timeout":5,"mode":"interval"}`,
		`{"type":"keep-alive","content-bin":"AAE=","message-type":"ping","timeout":-1}`, `grip; message-prefix="\"`, "null", `{"timeout":1e99}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c wsControl
		if json.Unmarshal(b, &c) == nil {
			if ka, err := parseKeepAlive(c); err == nil && ka != nil && (ka.every < wsMinKeepAliveTimeout || ka.every > wsMaxKeepAliveTimeout) {
				t.Fatalf("keep-alive every %v out of bounds", ka.every)
			}
		}
		gripExtension(http.Header{"Sec-Websocket-Extensions": {string(b)}})
	})
}

// wsRecObserver records the limits hit.
type wsRecObserver struct {
	nopObserver
	mu     sync.Mutex
	limits []string
}

func (o *wsRecObserver) Limited(l string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.limits = append(o.limits, l)
}

func (o *wsRecObserver) has(l string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, x := range o.limits {
		if x == l {
			return true
		}
	}
	return false
}

func TestWSMessageTooBig(t *testing.T) {
	obs := &wsRecObserver{}
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
	}, func(c *Config) { c.Observer = obs })
	c := e.dial(nil)
	e.next()
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", wsMaxMessage+1)))
	if code, _ := wsCloseStatus(t, c); code != websocket.StatusMessageTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
	r := e.nextWith(wsevents.Close)
	if code, _, _ := wsevents.ParseClose(r.events[len(r.events)-1].Content); code != 1009 {
		t.Fatalf("the origin heard CLOSE %d, want 1009", code)
	}
	if !obs.has(LimitWSMessage) {
		t.Fatal("the message size limit was not counted")
	}
}

// wsFlakyTransport fails the fail-th request to the origin as if it could
// not connect, once.
type wsFlakyTransport struct {
	mu   sync.Mutex
	n    int
	fail int
}

func (f *wsFlakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	if n == f.fail {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestWSRetriesAnUnreachableOrigin(t *testing.T) {
	flaky := &wsFlakyTransport{fail: 2}
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
		}
		return wsAnswer{events: []wsevents.Event{wsText("m:got " + string(r.events[0].Content))}}
	}, func(c *Config) { c.Transport = flaky })
	c := e.dial(nil)
	wsSend(t, c, "x") // its first request fails to connect, the retry 1 s later succeeds
	if _, m := wsRead(t, c); m != "got x" {
		t.Fatalf("got %q", m)
	}
}

func TestWSShutdown(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
	}, nil)
	base, cancelBase := context.WithCancelCause(context.Background())
	stop := func() { cancelBase(transport.ErrShutdown) } // as the server does
	srv := httptest.NewUnstartedServer(e.proxy)
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(srv.Close)
	e.server = srv
	c := e.dial(nil)
	e.next()
	stop()
	if code, _ := wsCloseStatus(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("close %d at shutdown, want 1001", code)
	}
	r := e.nextWith(wsevents.Close)
	if code, _, _ := wsevents.ParseClose(r.events[len(r.events)-1].Content); code != 1001 {
		t.Fatalf("the origin heard CLOSE %d, want 1001", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.proxy.WaitWebSockets(ctx)
	if ctx.Err() != nil {
		t.Fatal("WaitWebSockets did not return")
	}
}

// TestWSKeepAliveRequest sends the empty request Keep-Alive-Interval asks
// for (the loop waits at least 20 s for it, so it is called directly).
func TestWSKeepAliveRequest(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: http.Header{"Set-Meta-User": {"alice"}}}
	}, nil)
	origin, err := ParseOrigin(e.proxy.cfg.Origin)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wsConn{p: e.proxy, r: httptest.NewRequest(http.MethodGet, "/chat", nil), origin: origin, cid: "c1", ctx: context.Background()}
	wc.mu.Lock()
	wc.readHeaders(http.Header{"Keep-Alive-Interval": {"1"}, "Set-Meta-User": {"alice"}})
	interval := wc.keepAlive
	wc.mu.Unlock()
	if interval != wsMinKeepAlive {
		t.Fatalf("Keep-Alive-Interval 1 gave %v, want the floor %v", interval, wsMinKeepAlive)
	}
	resp, body, err := wc.post(context.Background(), nil)
	if err != nil || resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("empty request: %v %v %q", resp, err, body)
	}
	r := e.next()
	if len(r.events) != 0 || r.header.Get("Connection-Id") != "c1" || r.header.Get("Meta-User") != "alice" {
		t.Fatalf("keep-alive request: events %q, headers %v", r.events, r.header)
	}
}

func TestWSMetaRules(t *testing.T) {
	e := newWSEnv(t, func(wsOriginReq) wsAnswer { return wsAnswer{} }, nil)
	wc := &wsConn{p: e.proxy}
	wc.setMeta("User", "alice")
	wc.setMeta("user", "bob") // names are case-insensitive: replaced
	if len(wc.meta) != 1 || wc.meta[0] != [2]string{"user", "bob"} {
		t.Fatalf("meta %v", wc.meta)
	}
	wc.setMeta("USER", "") // empty: removed
	if len(wc.meta) != 0 {
		t.Fatalf("meta %v after removing", wc.meta)
	}
	for i := range wsMaxMeta + 5 {
		wc.setMeta(fmt.Sprintf("F%d", i), "v")
	}
	if len(wc.meta) != wsMaxMeta {
		t.Fatalf("%d meta fields kept, want the bound %d", len(wc.meta), wsMaxMeta)
	}
	wc.setMeta("Big", strings.Repeat("x", wsMaxMetaBytes))
	for _, kv := range wc.meta {
		if kv[0] == "Big" {
			t.Fatal("a field over the byte bound was kept")
		}
	}
}

func TestWSSubprotocol(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if got := r.header.Get("Sec-Websocket-Protocol"); got != "v1,v2" { // as the client sent it
			t.Errorf("the origin got Sec-WebSocket-Protocol %q", got)
		}
		return wsAnswer{header: http.Header{"Sec-Websocket-Protocol": {"v2"}}, events: []wsevents.Event{wsOpenEvent}}
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.server.URL, "http")+"/x", &websocket.DialOptions{Subprotocols: []string{"v1", "v2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "v2" {
		t.Fatalf("subprotocol %q, want the origin's choice v2", c.Subprotocol())
	}
}

func TestWSBadHandshakeNeverReachesOrigin(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		t.Errorf("the origin got %q for a bad handshake", r.events)
		return wsAnswer{}
	}, nil)
	for _, c := range []struct {
		version, key string
		want         int
	}{{"13", "", http.StatusBadRequest}, {"8", "dGhlIHNhbXBsZSBub25jZQ==", http.StatusUpgradeRequired}} {
		req, _ := http.NewRequest(http.MethodGet, e.server.URL+"/chat", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", c.version)
		if c.key != "" {
			req.Header.Set("Sec-WebSocket-Key", c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("version %q key %q: %d, want %d", c.version, c.key, resp.StatusCode, c.want)
		}
	}
}

func TestWSBinaryAndPings(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
		}
		var out []wsevents.Event
		for _, ev := range r.events {
			if ev.Type == wsevents.Binary {
				out = append(out, wsevents.Event{Type: wsevents.Binary, Content: append([]byte("m:"), ev.Content...)})
			}
		}
		return wsAnswer{events: out}
	}, nil)
	c := e.dial(nil)
	e.next()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Reading in the background lets the client see the pong.
	got := make(chan string, 1)
	go func() {
		typ, b, err := c.Read(ctx)
		if err == nil && typ == websocket.MessageBinary {
			got <- string(b)
		}
		close(got)
	}()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v (hubbub answers it)", err)
	}
	e.nextWith(wsevents.Ping) // and passes it on
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 0xff}); err != nil {
		t.Fatal(err)
	}
	r := e.nextWith(wsevents.Binary)
	if ev := r.events[len(r.events)-1]; !bytes.Equal(ev.Content, []byte{0, 0xff}) {
		t.Fatalf("origin got %q", ev.Content)
	}
	if m := <-got; m != "\x00\xff" {
		t.Fatalf("client got %q, want the binary echo without its prefix", m)
	}
}
