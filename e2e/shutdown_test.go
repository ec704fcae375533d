package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A graceful stop ends long-lived requests as clients can act on (newcomer
// report 6): a long-poll gets its usual answer, no events and the cursor to
// poll with next (not an empty 200), and a WebSocket gets close 1001
// (going away), not a dropped connection.
func TestShutdownEndsPollsAndSocketsCleanly(t *testing.T) {
	h := startHub(t, t.TempDir())
	h.publish(t, `{"topic":"shut/a","data":1}`)

	type pollAnswer struct {
		status int
		body   []byte
		err    error
	}
	polled := make(chan pollAnswer, 1)
	go func() {
		resp, err := streamc.Get(h.URL + "/events?topic=shut/quiet&wait=poll&timeout=60")
		if err != nil {
			polled <- pollAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		polled <- pollAnswer{resp.StatusCode, b, err}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"shut/b"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `"subscribed"`) {
		t.Fatalf("subscribe: %s %v", msg, err)
	}
	sse := h.openSSE(t, "topic=shut/c", "", true)
	h.waitMetric(t, `hubbub_connections{transport="poll"}`, 20*time.Second, func(v float64) bool { return v == 1 })
	closed := make(chan error, 1) // the client reads, as a browser does, so it answers the close
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()

	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	a := <-polled
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("long-poll at shutdown: %d %q %v", a.status, a.body, a.err)
	}
	var resp struct {
		Events []json.RawMessage `json:"events"`
		Cursor string            `json:"cursor"`
	}
	if err := json.Unmarshal(a.body, &resp); err != nil || resp.Events == nil || resp.Cursor == "" {
		t.Fatalf("long-poll at shutdown answered %q (%v), want no events and a cursor", a.body, err)
	}
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket at shutdown: %v (status %d), want close 1001", err, websocket.CloseStatus(err))
	}
	// An SSE stream is told why it ends (a comment, so EventSource just
	// reconnects with Last-Event-ID), then ends.
	if _, err := sse.tryNext(10 * time.Second); err == nil || errors.Is(err, errTimeout) {
		t.Fatalf("SSE stream at shutdown: %v, want its end", err)
	}
	if raw := sse.raw.String(); !strings.Contains(raw, "\n: the server is shutting down; reconnect with Last-Event-ID\n") {
		t.Fatalf("SSE stream at shutdown ended without saying so: %q", raw)
	}
}

// With --shutdown-delay, a SIGTERM first turns /readyz unready while the
// hub keeps serving (publishes are stored, open streams deliver), so a load
// balancer stops sending new clients before streams end; then it stops.
func TestShutdownDelayDrainsReadyFirst(t *testing.T) {
	h := startHub(t, t.TempDir(), "--shutdown-delay", "20s", "--shutdown-timeout", "5s")
	if a := h.do(t, "GET", "/readyz", nil, nil); a.Status != http.StatusOK {
		t.Fatalf("/readyz before the stop: %s", a)
	}
	sse := h.openSSE(t, "topic=drain/a", "", true)
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitLog(t, "draining", 10*time.Second)
	a := h.do(t, "GET", "/readyz", nil, nil)
	if a.Status != http.StatusServiceUnavailable || !strings.Contains(string(a.Body), "shutting down") {
		t.Fatalf("/readyz while draining: %s", a)
	}
	if a := h.do(t, "GET", "/healthz", nil, nil); a.Status != http.StatusOK {
		t.Fatalf("/healthz while draining: %s", a)
	}
	h.publish(t, `{"topic":"drain/a","data":"still served"}`)
	if ev := sse.next(t, 10*time.Second); !strings.Contains(ev.Data, "still served") {
		t.Fatalf("event while draining: %+v", ev)
	}
	select {
	case <-h.done:
		t.Fatalf("the hub exited during its 20 s drain (%v)", h.waitErr)
	default:
	}
}
