package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestCompactShape: compact=1 (and "compact":true on a WebSocket
// subscribe) sends the lean event shape on every live transport, and a
// compact subscriber resumes exactly as a full one does.
func TestCompactShape(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	pub := h.publish(t, `{"topic":"lean/a","data":{"n":1}}`)
	epoch := pub[0].Epoch
	h.publish(t, `{"topic":"lean/a","type":"update","key":"k","data":{"n":2}}`)

	// SSE, one topic: the id line carries the position, the data only the rest.
	s := h.openSSE(t, "topic=lean/a&after="+epoch+":0&compact=1", "", false)
	if ev := s.next(t, 10*time.Second); ev.ID != epoch+":1" || ev.Data != `{"data":{"n":1}}` {
		t.Fatalf("compact SSE event: %+v", ev)
	}
	if ev := s.next(t, 10*time.Second); ev.Event != "update" || ev.Data != `{"type":"update","key":"k","data":{"n":2}}` {
		t.Fatalf("compact SSE typed event: %+v", ev)
	}
	s.Close()
	// Resuming a compact stream from its last id gives what follows.
	h.publish(t, `{"topic":"lean/a","data":{"n":3}}`)
	s = h.openSSE(t, "topic=lean/a&compact=1", epoch+":2", false)
	if ev := s.next(t, 10*time.Second); ev.ID != epoch+":3" || ev.Data != `{"data":{"n":3}}` {
		t.Fatalf("resumed compact SSE: %+v", ev)
	}
	s.Close()

	// SSE, a pattern: each event names its topic.
	s = h.openSSE(t, "topic=lean/*&compact=1", "", false)
	h.publish(t, `{"topic":"lean/a","data":{"n":4}}`)
	for {
		ev := s.next(t, 10*time.Second)
		if ev.Data == "" {
			continue // the opening id
		}
		if ev.Data != `{"topic":"lean/a","data":{"n":4}}` {
			t.Fatalf("compact pattern SSE: %+v", ev)
		}
		break
	}
	s.Close()

	// NDJSON: no frame carries the id, so the line does.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.URL+"/events?topic=lean/a&wait=stream&after="+epoch+":2&compact=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line != `{"id":"`+epoch+`:3","data":{"n":3}}`+"\n" {
		t.Fatalf("compact NDJSON line %q: %v", line, err)
	}

	// WebSocket.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"lean/a","after":"`+epoch+`:2","compact":true}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"op":"subscribed"`) {
			continue
		}
		if want := `{"op":"event","sub":"s","id":"` + epoch + `:3","data":{"n":3}}`; string(b) != want {
			t.Fatalf("compact WebSocket event %s, want %s", b, want)
		}
		break
	}
	if a := h.do(t, "GET", "/events?topic=lean/a&compact=yes", nil, nil); a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), "compact=") {
		t.Fatalf("compact=yes: %s", a)
	}
}
