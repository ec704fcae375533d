package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func dialWS(t *testing.T, ctx context.Context, h *hubProc) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// TestConnsPerIPLimit: with --max-conns-per-ip 2, a third SSE stream from
// the same address gets 429 with Retry-After, a WebSocket is closed with
// 1008, and ending a stream admits another.
func TestConnsPerIPLimit(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--max-conns-per-ip", "2")
	s1 := h.openSSE(t, "topic=lim/a", "", false)
	s2 := h.openSSE(t, "topic=lim/a", "", false)
	defer s2.Close()

	if s, a := h.trySSE(t, "topic=lim/a", "", false); s != nil || a.Status != http.StatusTooManyRequests ||
		a.Header.Get("Retry-After") == "" || !strings.Contains(string(a.Body), "too many connections from your address") {
		t.Fatalf("third stream: %s (Retry-After %q), want 429 with a reason", a, a.Header.Get("Retry-After"))
	}
	// Plain requests count too while the streams hold both slots.
	if a := h.do(t, http.MethodGet, "/healthz", nil, nil); a.Status != http.StatusTooManyRequests {
		t.Fatalf("GET /healthz with two streams open: %s, want 429", a)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, h)
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many connections from your address" {
		t.Fatalf("WebSocket over the limit: %v, want close 1008", err)
	}

	s1.Close() // its slot frees when the hub notices the stream is gone
	var s3 *sseStream
	deadline := time.Now().Add(10 * time.Second)
	for s3 == nil {
		var a answer
		if s3, a = h.trySSE(t, "topic=lim/a", "", false); s3 == nil {
			if a.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
				t.Fatalf("after closing a stream: %s", a)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	s3.Close()
	s2.Close()
	// Wait for the hub to notice both streams are gone: until then a
	// scrape of /metrics is itself over the limit.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, err := h.try(http.MethodGet, "/healthz", nil, nil)
		if err == nil && a.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held 10s after closing the streams: %v %v", a, err)
		}
	}
	h.waitMetric(t, `hubbub_limit_rejections_total{limit="conns_per_ip"}`, 10*time.Second, func(v float64) bool { return v >= 3 })
}

// TestReadTimeoutClosesSlowBodies (finding 9): a body trickled one byte at
// a time is cut off at --read-timeout and its connection closed, long
// before the whole body is sent, on every route that reads a body.
func TestReadTimeoutClosesSlowBodies(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--read-timeout", "300ms")
	addr := strings.TrimPrefix(h.URL, "http://")
	const bodyLen = 1000
	for _, path := range []string{"/publish", "/hub", "/upstream/x"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", path, addr, bodyLen)
		answerc := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(conn) // until the hub closes the connection
			answerc <- string(b)
		}()
		tick := time.NewTicker(20 * time.Millisecond)
		sent, got := 0, ""
	trickle:
		for ; sent < bodyLen; sent++ {
			select {
			case got = <-answerc:
				break trickle
			case <-tick.C:
				if _, err := conn.Write([]byte("a")); err != nil {
					got = <-answerc
					break trickle
				}
			}
		}
		tick.Stop()
		if sent == bodyLen {
			t.Fatalf("%s: the hub read the whole slow body", path)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 4") {
			t.Fatalf("%s: answer %q, want a 4xx", path, got)
		}
		t.Logf("%s: closed after %d of %d bytes: %q", path, sent, bodyLen, got)
	}
	// Counted are the bodies a handler was reading when time ran out: the
	// upstream callback answered 410 without reading (the server then
	// gave up discarding the rest at the same deadline).
	h.waitMetric(t, `hubbub_limit_rejections_total{limit="read_timeout"}`, 10*time.Second, func(v float64) bool { return v >= 2 })
}

// TestStreamsOutliveReadTimeout: the read timeout is for bodies only; an
// SSE stream and a WebSocket open for many read timeouts still deliver.
func TestStreamsOutliveReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 200 * time.Millisecond
	h := startHub(t, "", "--read-timeout", readTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := h.openSSE(t, "topic=lim/live", "", false)
	c := dialWS(t, ctx, h)
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"lim/live"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"subscribed"`) {
		t.Fatalf("subscribe: %s %v", b, err)
	}
	// Let five read timeouts pass: that is what is being tested, not a
	// wait for something to happen.
	time.Sleep(5 * readTimeout)
	h.publish(t, `{"topic":"lim/live","data":1}`)
	if ev := decodeData(t, s.next(t, 10*time.Second)); ev.Seq != 1 {
		t.Fatalf("SSE: seq %d", ev.Seq)
	}
	_, b, err := c.Read(ctx)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil || m["op"] != "event" {
		t.Fatalf("WebSocket after the read timeout: %s %v", b, err)
	}
}

// TestPublishRateLimit: with --publish-rate, the burst passes and the next
// publish gets 429 with Retry-After; a WebSocket publish draws on the same
// bucket (the client address, without a bearer key).
func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--publish-rate", "0.01") // one per 100 s, bursts of one
	h.publish(t, `{"topic":"lim/r","data":1}`)
	a := h.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(`{"topic":"lim/r","data":2}`))
	if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") == "" || !strings.Contains(string(a.Body), "publish rate limit") {
		t.Fatalf("second publish: %s (Retry-After %q), want 429", a, a.Header.Get("Retry-After"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, h)
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"publish","topic":"lim/r","data":3,"client_id":"w"}`)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(b), `"rate_limited"`) {
		t.Fatalf("WebSocket publish over the rate: %s %v", b, err)
	}
	if got := h.metric(t, `hubbub_limit_rejections_total{limit="publish_rate"}`); got != 2 {
		t.Fatalf("publish_rate rejections = %v, want 2", got)
	}
}
