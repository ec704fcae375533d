package grip

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/grip/wsevents"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

// wsOriginReq is one WebSocket-over-HTTP request the test origin got.
type wsOriginReq struct {
	header http.Header
	events []wsevents.Event
}

// wsEnv is a proxy with a real hub in front of a scripted origin.
type wsEnv struct {
	t      *testing.T
	hub    *hub.Hub
	proxy  *Proxy
	server *httptest.Server
	reqs   chan wsOriginReq
	key    []byte
}

// wsAnswer is how the test origin answers a request: status, headers,
// events.
type wsAnswer struct {
	status int
	header http.Header
	events []wsevents.Event
	body   string // instead of events
}

// newWSEnv starts the origin (answering with answer) and the proxy.
func newWSEnv(t *testing.T, answer func(wsOriginReq) wsAnswer, tweak func(*Config)) *wsEnv {
	t.Helper()
	e := &wsEnv{t: t, reqs: make(chan wsOriginReq, 100), key: []byte("test key")}
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{OnCommit: b.OnCommit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.hub = hub.New(st, b, hub.Options{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		events, err := wsevents.Decode(body, wsevents.Limits{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := wsOriginReq{header: r.Header.Clone(), events: events}
		e.reqs <- req
		a := answer(req)
		for k, vs := range a.header {
			w.Header()[k] = vs
		}
		if a.status == 0 {
			a.status = http.StatusOK
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", wsevents.ContentType)
		}
		w.WriteHeader(a.status)
		if a.body != "" {
			_, _ = io.WriteString(w, a.body)
			return
		}
		_, _ = w.Write(wsevents.Encode(a.events...))
	}))
	t.Cleanup(origin.Close)
	cfg := Config{Origin: origin.URL, SigKey: e.key, Hub: e.hub}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = p
	e.server = httptest.NewServer(p)
	t.Cleanup(e.server.Close)
	return e
}

// dial opens a client WebSocket through the proxy.
func (e *wsEnv) dial(h http.Header) *websocket.Conn {
	e.t.Helper()
	c, err := e.tryDial(h)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func (e *wsEnv) tryDial(h http.Header) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.server.URL, "http")+"/chat", &websocket.DialOptions{HTTPHeader: h})
	if err != nil && resp != nil {
		b, _ := io.ReadAll(resp.Body)
		return nil, &wsDialError{status: resp.StatusCode, body: string(b), err: err}
	}
	return c, err
}

type wsDialError struct {
	status int
	body   string
	err    error
}

func (d *wsDialError) Error() string { return d.err.Error() }

// next is the origin's next request (within 10 s).
func (e *wsEnv) next() wsOriginReq {
	e.t.Helper()
	select {
	case r := <-e.reqs:
		return r
	case <-time.After(10 * time.Second):
		e.t.Fatal("the origin got no request")
		return wsOriginReq{}
	}
}

// nextWith waits for the origin's next request holding an event of type t,
// skipping others (pings, keep-alives).
func (e *wsEnv) nextWith(t wsevents.Type) wsOriginReq {
	e.t.Helper()
	for range 20 {
		r := e.next()
		for _, ev := range r.events {
			if ev.Type == t {
				return r
			}
		}
	}
	e.t.Fatalf("the origin got no %s", t)
	return wsOriginReq{}
}

func wsRead(t *testing.T, c *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// closeStatus reads until the connection closes and returns its status.
func wsCloseStatus(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

func wsText(s string) wsevents.Event { return wsevents.Event{Type: wsevents.Text, Content: []byte(s)} }

var wsOpenEvent = wsevents.Event{Type: wsevents.Open}

// gripOn is the answer header that turns GRIP on.
func wsGripOn(more ...string) http.Header {
	h := http.Header{"Sec-Websocket-Extensions": {"grip"}}
	for i := 0; i+1 < len(more); i += 2 {
		h.Set(more[i], more[i+1])
	}
	return h
}

func TestWSOpenRelayMetaAndSignature(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		switch ev := r.events; {
		case len(ev) > 0 && ev[0].Type == wsevents.Open:
			return wsAnswer{header: wsGripOn("Set-Meta-User", "alice", "X-Hello", "there"), events: []wsevents.Event{wsOpenEvent, wsText("m:welcome")}}
		default:
			var out []wsevents.Event
			for _, ev := range ev {
				if ev.Type == wsevents.Text {
					out = append(out, wsText("m:echo "+string(ev.Content)+" from "+r.header.Get("Meta-User")))
				}
			}
			return wsAnswer{header: wsGripOn(), events: out}
		}
	}, nil)
	c := e.dial(http.Header{"Meta-User": {"mallory"}, "Cookie": {"session=1"}})
	open := e.next()
	if got := open.header.Get("Meta-User"); got != "" {
		t.Fatalf("the client's own Meta-User reached the origin: %q", got)
	}
	cid := open.header.Get("Connection-Id")
	checks := map[string]string{
		"Content-Type":             wsevents.ContentType,
		"Accept":                   wsevents.ContentType,
		"Sec-Websocket-Extensions": "grip",
		"Cookie":                   "session=1",
	}
	for k, want := range checks {
		if got := open.header.Get(k); got != want {
			t.Errorf("OPEN request %s = %q, want %q", k, got, want)
		}
	}
	if cid == "" {
		t.Fatal("no Connection-Id")
	}
	if err := VerifySig(open.header.Get("Grip-Sig"), e.key, time.Now()); err != nil {
		t.Fatalf("OPEN Grip-Sig: %v", err)
	}
	if _, m := wsRead(t, c); m != "welcome" {
		t.Fatalf("first message %q, want the OPEN answer's welcome without its m: prefix", m)
	}
	wsSend(t, c, "hello")
	r := e.nextWith(wsevents.Text)
	if r.header.Get("Connection-Id") != cid || r.header.Get("Cookie") != "session=1" {
		t.Fatalf("later request: Connection-Id %q (want %q), Cookie %q", r.header.Get("Connection-Id"), cid, r.header.Get("Cookie"))
	}
	if err := VerifySig(r.header.Get("Grip-Sig"), e.key, time.Now()); err != nil {
		t.Fatalf("later Grip-Sig: %v", err)
	}
	if _, m := wsRead(t, c); m != "echo hello from alice" {
		t.Fatalf("answer %q, want the echo with the meta the origin set", m)
	}
}

func TestWSHandshakeHeaders(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: wsGripOn("Set-Meta-User", "alice", "X-Hello", "there", "Keep-Alive-Interval", "60"), events: []wsevents.Event{wsOpenEvent}}
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.server.URL, "http")+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.Header.Get("X-Hello") != "there" {
		t.Errorf("the origin's own header did not reach the client: %v", resp.Header)
	}
	for _, h := range []string{"Set-Meta-User", "Keep-Alive-Interval", "Sec-Websocket-Extensions", "Content-Type"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("handshake answer has %s: %q", h, v)
		}
	}
}

func TestWSRefused(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{status: http.StatusForbidden, header: http.Header{"Content-Type": {"text/plain"}}, body: "not you\n"}
	}, nil)
	_, err := e.tryDial(nil)
	var de *wsDialError
	if !errors.As(err, &de) || de.status != http.StatusForbidden || de.body != "not you\n" {
		t.Fatalf("dial = %v (%+v), want the origin's 403 and body", err, de)
	}
	// An answer without OPEN first is no acceptance.
	e2 := newWSEnv(t, func(r wsOriginReq) wsAnswer { return wsAnswer{events: []wsevents.Event{wsText("hi")}} }, nil)
	if _, err := e2.tryDial(nil); !errors.As(err, &de) || de.status != http.StatusBadGateway {
		t.Fatalf("dial = %v, want 502", err)
	}
}

func TestWSClientCloseAndDisconnect(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
		}
		return wsAnswer{}
	}, nil)
	c := e.dial(nil)
	e.next()
	wsSend(t, c, "last words")
	_ = c.Close(4000, "bye")
	var got []wsevents.Event
	for len(got) == 0 || got[len(got)-1].Type != wsevents.Close {
		got = append(got, e.next().events...)
	}
	if string(got[0].Content) != "last words" {
		t.Fatalf("events %q: want the message before the close", got)
	}
	code, reason, err := wsevents.ParseClose(got[len(got)-1].Content)
	if err != nil || code != 4000 || reason != "bye" {
		t.Fatalf("CLOSE %d %q %v, want 4000 bye", code, reason, err)
	}

	c2 := e.dial(nil)
	e.next()
	_ = c2.CloseNow() // no close frame
	r := e.nextWith(wsevents.Disconnect)
	if len(r.events) != 1 {
		t.Fatalf("DISCONNECT request has %q", r.events)
	}
}

func TestWSOriginCloseAndDisconnect(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		switch r.events[0].Type {
		case wsevents.Open:
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
		case wsevents.Text:
			if string(r.events[0].Content) == "drop" {
				return wsAnswer{events: []wsevents.Event{{Type: wsevents.Disconnect}}}
			}
			return wsAnswer{events: []wsevents.Event{wsText("m:going"), wsevents.CloseEvent(4002, "done")}}
		}
		return wsAnswer{}
	}, nil)
	c := e.dial(nil)
	wsSend(t, c, "close me")
	if _, m := wsRead(t, c); m != "going" {
		t.Fatalf("got %q before the close", m)
	}
	if code, reason := wsCloseStatus(t, c); code != 4002 || reason != "done" {
		t.Fatalf("close %d %q, want 4002 done", code, reason)
	}
	c2 := e.dial(nil)
	wsSend(t, c2, "drop")
	if code, _ := wsCloseStatus(t, c2); code != -1 {
		t.Fatalf("after DISCONNECT the client got close code %d, want the connection dropped", code)
	}
}

func TestWSPublishes(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent,
				wsText(`c:{"type":"subscribe","channel":"room"}`), wsText("m:ready")}}
		}
		if r.events[0].Type == wsevents.Text && string(r.events[0].Content) == "leave" {
			return wsAnswer{events: []wsevents.Event{wsText(`c:{"type":"unsubscribe","channel":"room"}`), wsText("m:left")}}
		}
		if r.events[0].Type == wsevents.Text && string(r.events[0].Content) == "ping?" {
			return wsAnswer{events: []wsevents.Event{wsText("m:pong")}}
		}
		return wsAnswer{}
	}, nil)
	c := e.dial(nil)
	if _, m := wsRead(t, c); m != "ready" {
		t.Fatalf("got %q", m)
	}
	wsPublishItem(t, e.hub, Item{Channel: "room", Formats: Formats{WSMessage: &WSMessage{Content: wsPtr("from grip")}}})
	wsPublishItem(t, e.hub, Item{Channel: "room", Formats: Formats{WSMessage: &WSMessage{ContentBin: []byte{0, 1, 2}}}})
	wsPublishItem(t, e.hub, Item{Channel: "room", Formats: Formats{HTTPStream: &HTTPStream{Content: wsPtr("not for websockets")}}})
	if _, err := e.hub.Publish(context.Background(), []event.Draft{{Topics: []string{"room"}, Data: []byte(`{"plain":true}`)}}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ websocket.MessageType
		msg string
	}{{websocket.MessageText, "from grip"}, {websocket.MessageBinary, "\x00\x01\x02"}, {websocket.MessageText, `{"plain":true}`}}
	for _, w := range want {
		if typ, m := wsRead(t, c); typ != w.typ || m != w.msg {
			t.Fatalf("got %v %q, want %v %q", typ, m, w.typ, w.msg)
		}
	}
	wsPublishItem(t, e.hub, Item{Channel: "room", Formats: Formats{WSMessage: &WSMessage{Action: ActionClose, Code: 4100, Reason: "room closed"}}})
	if code, reason := wsCloseStatus(t, c); code != 4100 || reason != "room closed" {
		t.Fatalf("close %d %q, want 4100 room closed", code, reason)
	}
	// The origin hears the close the client answered.
	r := e.nextWith(wsevents.Close)
	if code, _, _ := wsevents.ParseClose(r.events[len(r.events)-1].Content); code != 4100 {
		t.Fatalf("origin got CLOSE %d", code)
	}

	// Unsubscribe: nothing more arrives from the channel.
	c2 := e.dial(nil)
	wsRead(t, c2)
	wsSend(t, c2, "leave")
	if _, m := wsRead(t, c2); m != "left" {
		t.Fatalf("got %q", m)
	}
	wsPublishItem(t, e.hub, Item{Channel: "room", Formats: Formats{WSMessage: &WSMessage{Content: wsPtr("too late")}}})
	wsSend(t, c2, "ping?") // the origin's answer is a barrier: the publish came first
	if _, m := wsRead(t, c2); m != "pong" {
		t.Fatalf("got %q after unsubscribe, want only the origin's pong", m)
	}
}

func TestWSWithoutGrip(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{events: []wsevents.Event{wsOpenEvent}}
		}
		return wsAnswer{events: []wsevents.Event{wsText(`c:{"type":"subscribe","channel":"room"}`), wsText("plain")}}
	}, nil)
	c := e.dial(nil)
	wsSend(t, c, "x")
	for _, want := range []string{`c:{"type":"subscribe","channel":"room"}`, "plain"} {
		if _, m := wsRead(t, c); m != want {
			t.Fatalf("got %q, want %q: without the grip extension messages pass unchanged", m, want)
		}
	}
}

func TestWSMessagePrefixParam(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: http.Header{"Sec-Websocket-Extensions": {`grip; message-prefix=""`}},
			events: []wsevents.Event{wsOpenEvent, wsText("as is")}}
	}, nil)
	c := e.dial(nil)
	if _, m := wsRead(t, c); m != "as is" {
		t.Fatalf("got %q with an empty message prefix", m)
	}
}

func TestWSDetach(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		if r.events[0].Type == wsevents.Open {
			return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent,
				wsText(`c:{"type":"subscribe","channel":"news"}`), wsText("m:detaching"), wsText(`c:{"type":"detach"}`), wsText("m:dropped")}}
		}
		return wsAnswer{events: []wsevents.Event{wsText("m:should not happen")}}
	}, nil)
	c := e.dial(nil)
	e.next()
	if _, m := wsRead(t, c); m != "detaching" {
		t.Fatalf("got %q", m)
	}
	wsSend(t, c, "anyone?")
	wsPublishItem(t, e.hub, Item{Channel: "news", Formats: Formats{WSMessage: &WSMessage{Content: wsPtr("still delivered")}}})
	if _, m := wsRead(t, c); m != "still delivered" {
		t.Fatalf("got %q", m)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	wsWaitFor(t, func() bool { return e.proxy.WebSockets() == 0 })
	select {
	case r := <-e.reqs:
		t.Fatalf("a detached connection sent the origin %q", r.events)
	default:
	}
}

func TestWSKeepAlive(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent,
			wsText(`c:{"type":"keep-alive","content":"{\"type\":\"ka\"}","timeout":1}`)}}
	}, nil)
	c := e.dial(nil)
	if _, m := wsRead(t, c); m != `{"type":"ka"}` {
		t.Fatalf("keep-alive %q", m)
	}
}

func TestWSConnectionLimit(t *testing.T) {
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
	}, func(c *Config) { c.MaxWebSockets = 1 })
	c := e.dial(nil)
	var de *wsDialError
	if _, err := e.tryDial(nil); !errors.As(err, &de) || de.status != http.StatusServiceUnavailable || !strings.Contains(de.body, "at most 1") {
		t.Fatalf("second dial = %v %+v, want 503 naming the limit", err, de)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	e.nextWith(wsevents.Close)
	wsWaitFor(t, func() bool { return e.proxy.WebSockets() == 0 })
	c3, err := e.tryDial(nil)
	if err != nil {
		t.Fatalf("dial after the first closed: %v", err)
	}
	_ = c3.CloseNow()
}

func TestWSOriginFailsMidway(t *testing.T) {
	var mu sync.Mutex
	fail := false
	e := newWSEnv(t, func(r wsOriginReq) wsAnswer {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return wsAnswer{status: http.StatusInternalServerError, body: "boom"}
		}
		return wsAnswer{header: wsGripOn(), events: []wsevents.Event{wsOpenEvent}}
	}, nil)
	c := e.dial(nil)
	mu.Lock()
	fail = true
	mu.Unlock()
	wsSend(t, c, "x")
	if code, _ := wsCloseStatus(t, c); code != websocket.StatusInternalError {
		t.Fatalf("close %d, want 1011 when the origin fails", code)
	}
}

func TestWSCloseCodes(t *testing.T) {
	for in, want := range map[uint16]websocket.StatusCode{0: 1000, 999: 1000, 1000: 1000, 1005: 1000, 1015: 1000, 4000: 4000, 5000: 1000, 3000: 3000} {
		if got := clientCloseCode(in); got != want {
			t.Errorf("clientCloseCode(%d) = %d, want %d", in, got, want)
		}
	}
	c := wsevents.CloseEvent(1001, "")
	if binary.BigEndian.Uint16(c.Content) != 1001 {
		t.Fatal("CloseEvent")
	}
}

func wsPublishItem(t *testing.T, h *hub.Hub, it Item) {
	t.Helper()
	d, err := it.Draft()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(context.Background(), []event.Draft{d}); err != nil {
		t.Fatal(err)
	}
}

func wsPtr(s string) *string { return &s }

// waitFor polls cond (bounded) until it holds.
func wsWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
