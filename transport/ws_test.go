package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/transport"
)

type testHub struct {
	hub *hub.Hub
	srv *httptest.Server
}

func newTestHub(t *testing.T, ret store.Retention, canPublish bool) testHub {
	return newTestHubOpts(t, ret, canPublish, hub.Options{}, transport.Options{})
}

func newTestHubOpts(t testing.TB, ret store.Retention, canPublish bool, ho hub.Options, to transport.Options) testHub {
	t.Helper()
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{Retention: ret, OnCommit: b.Publish})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(st, b, ho)
	if to.Heartbeat == 0 {
		to.Heartbeat = time.Second
	}
	if !canPublish && to.Access == nil {
		// A publish key that the tests never send: publishing needs it.
		pol, err := access.New(context.Background(), access.Options{PublishKeys: []string{"unsent"}})
		if err != nil {
			t.Fatal(err)
		}
		to.Access = pol
	}
	th := transport.New(h, to)
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", th.WebSocket)
	mux.HandleFunc("/events", th.Events)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); _ = st.Close() })
	return testHub{hub: h, srv: srv}
}

type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func (th testHub) dial(t *testing.T) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(th.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(1 << 20)
	return &wsClient{t: t, c: c}
}

func (w *wsClient) send(msg string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		w.t.Fatal(err)
	}
}

// recv returns the next message as a map, failing after a deadline.
func (w *wsClient) recv() map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatalf("bad JSON %s: %v", b, err)
	}
	return m
}

// expect reads the next message and checks its op and string fields.
func (w *wsClient) expect(op string, fields map[string]any) map[string]any {
	w.t.Helper()
	m := w.recv()
	if m["op"] != op {
		w.t.Fatalf("got %v, want op %q", m, op)
	}
	for k, v := range fields {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			w.t.Fatalf("got %v, want %s=%v", m, k, v)
		}
	}
	return m
}

func TestWSSubscribePublishEcho(t *testing.T) {
	th := newTestHub(t, store.Retention{}, true)
	c := th.dial(t)
	c.send(`{"op":"subscribe","sub":"s1","topic":"chat/1"}`)
	c.expect("subscribed", map[string]any{"sub": "s1", "cursor": "0"})
	c.send(`{"op":"publish","topic":"chat/1","data":{"text":"hi"},"client_id":"c-1"}`)
	// The ack and the echo may come in either order: they are written by
	// different goroutines.
	got := map[string]map[string]any{}
	for range 2 {
		m := c.recv()
		got[m["op"].(string)] = m
	}
	ack, ev := got["published"], got["event"]
	if ack == nil || ev == nil {
		t.Fatalf("want published and event, got %v", got)
	}
	if ack["client_id"] != "c-1" || ack["seq"] != float64(1) || ack["id"] != ev["id"] {
		t.Fatalf("ack %v vs event %v", ack, ev)
	}
	if ev["sub"] != "s1" || ev["topic"] != "chat/1" || ev["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("event %v", ev)
	}
	// Publishing the same client_id again stores nothing new.
	c.send(`{"op":"publish","topic":"chat/1","data":{"text":"hi"},"client_id":"c-1"}`)
	c.expect("published", map[string]any{"seq": 1, "id": ack["id"]})
	c.send(`{"op":"ping"}`)
	c.expect("pong", nil) // no second event came before it
}

func TestWSResumeAndReset(t *testing.T) {
	th := newTestHub(t, store.Retention{MaxEvents: 3}, true)
	var ids []string
	for i := range 6 {
		res, err := th.hub.Publish(context.Background(), []event.Draft{{Topics: []string{"a"}, Data: fmt.Appendf(nil, "%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res[0].Position().String())
	}
	c := th.dial(t)
	c.send(fmt.Sprintf(`{"op":"subscribe","sub":"x","topic":"a","after":%q}`, ids[4]))
	c.expect("subscribed", nil)
	c.expect("event", map[string]any{"sub": "x", "seq": 6})
	c.send(fmt.Sprintf(`{"op":"subscribe","sub":"y","topic":"a","after":%q}`, ids[0]))
	c.expect("subscribed", nil)
	c.expect("reset", map[string]any{"sub": "y", "reason": "trimmed", "cursor": ids[2]})
	for _, seq := range []int{4, 5, 6} {
		c.expect("event", map[string]any{"sub": "y", "seq": seq})
	}
}

func TestWSUnsubscribe(t *testing.T) {
	th := newTestHub(t, store.Retention{}, true)
	c := th.dial(t)
	c.send(`{"op":"subscribe","sub":"a","topic":"t"}`)
	c.expect("subscribed", nil)
	c.send(`{"op":"subscribe","sub":"b","topic":"t"}`)
	c.expect("subscribed", nil)
	c.send(`{"op":"unsubscribe","sub":"a"}`)
	c.expect("unsubscribed", map[string]any{"sub": "a"})
	if _, err := th.hub.Publish(context.Background(), []event.Draft{{Topics: []string{"t"}}}); err != nil {
		t.Fatal(err)
	}
	// Nothing of "a" may follow its "unsubscribed".
	c.expect("event", map[string]any{"sub": "b"})
	c.send(`{"op":"ping"}`)
	c.expect("pong", nil)
}

func TestWSErrors(t *testing.T) {
	th := newTestHub(t, store.Retention{}, false)
	c := th.dial(t)
	cases := []struct{ msg, code string }{
		{`not json`, "bad_request"},
		{`{"op":"dance"}`, "bad_request"},
		{`{"op":"subscribe","topic":"t"}`, "bad_request"},
		{`{"op":"subscribe","sub":"s"}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":""}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","after":"zz"}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","filter":{"tags":{"any":[]}}}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","filter":{"nope":1}}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","documents":{"a":true}}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","coalesce_ms":-1}`, "bad_request"},
		{`{"op":"subscribe","sub":"s","topic":"t","bogus":1}`, "bad_request"},
		{`{"op":"unsubscribe","sub":"nope"}`, "not_found"},
		{`{"op":"publish","topic":"t","data":1}`, "unauthorized"},
	}
	for _, tc := range cases {
		c.send(tc.msg)
		m := c.expect("error", map[string]any{"code": tc.code})
		if m["message"] == "" {
			t.Errorf("%s: no message", tc.msg)
		}
	}
	c.send(`{"op":"subscribe","sub":"s","topic":"t"}`)
	c.expect("subscribed", nil)
	c.send(`{"op":"subscribe","sub":"s","topic":"u"}`)
	c.expect("error", map[string]any{"code": "conflict", "sub": "s"})
}

func TestWSDocuments(t *testing.T) {
	th := newTestHub(t, store.Retention{}, true)
	ctx := context.Background()
	var first string
	for i, d := range []event.Draft{
		{Topics: []string{"board"}, Type: "create", Key: "card-1", Data: []byte(`{"v":1}`)},
		{Topics: []string{"board"}, Type: "update", Key: "card-1", Data: []byte(`{"v":2}`)},
		{Topics: []string{"board"}, Type: "create", Key: "card-2", Data: []byte(`{"v":1}`)},
	} {
		res, err := th.hub.Publish(ctx, []event.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res[0].Time.Format(event.TimeFormat)
		}
	}
	c := th.dial(t)
	// card-1 held at its first version (by time string), card-2 current (a
	// far-future millisecond mtime), card-9 unknown.
	c.send(fmt.Sprintf(`{"op":"subscribe","sub":"d","topic":"board","documents":{"card-1":%q,"card-2":%d,"card-9":0}}`,
		first, time.Now().Add(time.Hour).UnixMilli()))
	c.expect("subscribed", nil)
	got := map[string]string{}
	for range 2 {
		m := c.expect("event", map[string]any{"sub": "d"})
		got[m["key"].(string)] = m["type"].(string)
	}
	if got["card-1"] != "update" || got["card-9"] != "delete" || len(got) != 2 {
		t.Fatalf("opening diff %v", got)
	}
	c.send(`{"op":"subscribe","sub":"e","topic":"board","documents":{"k":"yesterday"}}`)
	c.expect("error", map[string]any{"sub": "e", "code": "bad_request"})
}

func TestWSMalformed(t *testing.T) {
	th := newTestHubOpts(t, store.Retention{}, true, hub.Options{}, transport.Options{MaxBody: 4096})
	c := th.dial(t)
	c.send(`{"op":"subscribe","sub":"ok","topic":"t"}`)
	c.expect("subscribed", nil)
	for _, msg := range []string{
		`{"op":"subscribe","sub":7,"topic":"t"}`,
		`{"op":"subscribe","sub":"x","topics":"t"}`,
		`{"op":"publish","topic":"t","data":{"a":1},"client_id":5}`,
		`[1,2,3]`,
		`{"op":"subscribe"`,
	} {
		c.send(msg)
		c.expect("error", map[string]any{"code": "bad_request"})
	}
	// The first subscription still works.
	c.send(`{"op":"publish","topic":"t","data":1,"client_id":"p"}`)
	seen := map[string]bool{}
	for range 2 {
		seen[c.recv()["op"].(string)] = true
	}
	if !seen["event"] || !seen["published"] {
		t.Fatalf("after bad frames: %v", seen)
	}
	// A frame over the limit closes the connection with "message too big".
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.c.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","pad":"`+strings.Repeat("x", 8192)+`"}`))
	for {
		if _, _, err := c.c.Read(ctx); err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusMessageTooBig {
				t.Fatalf("oversized frame: %v (status %d), want close 1009", err, st)
			}
			break
		}
	}
}

// A client that stops reading is closed with 4001 as soon as its queue
// overflows; another connection on the same topic misses nothing.
func TestWSSlowClientClosed(t *testing.T) {
	th := newTestHubOpts(t, store.Retention{}, true, hub.Options{SubscriberBuffer: 32}, transport.Options{})
	slow, fast := th.dial(t), th.dial(t)
	slow.send(`{"op":"subscribe","sub":"s","topic":"big"}`)
	slow.expect("subscribed", nil)
	fast.send(`{"op":"subscribe","sub":"f","topic":"big"}`)
	fast.expect("subscribed", nil)
	// Events of 64 KiB until the slow client is cut off: the socket buffers
	// (with receive autotuning, up to tens of MiB) and the queue of 32 fill
	// up for a client that never reads. Bounded at 2,400 events (150 MiB).
	data := []byte(strings.Repeat("x", 64<<10))
	const maxEvents, batch = 2400, 8
	got := make(chan int, maxEvents)
	readCtx, stopReading := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	defer func() { stopReading(); <-readerDone }()
	go func() {
		defer close(readerDone)
		for i := 1; i <= maxEvents; i++ {
			_, b, err := fast.c.Read(readCtx)
			if err != nil {
				if readCtx.Err() == nil {
					t.Errorf("fast: read: %v", err)
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil || m["seq"] != float64(i) {
				t.Errorf("fast got %s at %d", b, i)
				return
			}
			got <- i
		}
	}()
	// A stall, not a slow machine, fails the test: the fast client must
	// make progress at least every 30s (with -race on a busy 2-core box the
	// whole run can take minutes).
	const stall = 30 * time.Second
	for i := 0; i < maxEvents && th.hub.Broker().Stats.CutOff.Load() == 0; i += batch {
		drafts := make([]event.Draft, batch)
		for j := range drafts {
			drafts[j] = event.Draft{Topics: []string{"big"}, ContentType: "text/plain", Data: data}
		}
		if _, err := th.hub.Publish(context.Background(), drafts); err != nil {
			t.Fatal(err)
		}
		// Keep fast within its queue: wait until it has this batch.
		for seen := 0; seen < i+batch; {
			select {
			case seen = <-got:
			case <-time.After(stall):
				t.Fatalf("fast client stuck at %d for %v", seen, stall)
			}
		}
	}
	// The slow client is cut off when its queue overflows; on a machine so
	// busy that this takes longer than the transport's 30s write timeout,
	// the blocked write closes it first. Either way it must end (below),
	// and the fast client must not be cut.
	if n := th.hub.Broker().Stats.CutOff.Load(); n > 1 {
		t.Fatalf("cut-offs: %d, want at most 1 (slow only)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// It is closed: with 4001 when the close frame can get through, or, as
	// here where a data frame is stuck half-written, by dropping the
	// connection. Either way it ends instead of holding a goroutine.
	for {
		if _, _, err := slow.c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the slow client's connection was not closed")
			}
			if st := websocket.CloseStatus(err); st != -1 && st != transport.CloseSlow {
				t.Fatalf("slow client closed with %d, want %d", st, transport.CloseSlow)
			}
			return
		}
	}
}
