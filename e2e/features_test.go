package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestFiltersOverHTTP: the filter query parameters reach the live and
// retrieve paths of the real server, and a bad filter is a 400.
func TestFiltersOverHTTP(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	h.publish(t, `[{"topic":"f/a","tags":["dog"],"data":{"n":1,"who":"rex"}},{"topic":"f/a","tags":["kitten"],"data":{"n":2,"who":"tom"}}]`)
	er, a := h.getEvents(t, "topic=f/a&tag=kitten&fields=n")
	if a.Status != http.StatusOK || len(er.Events) != 1 || er.Events[0].Seq != 2 || string(er.Events[0].Data) != `{"n":2}` {
		t.Fatalf("retrieve tag=kitten fields=n: %s", a)
	}
	s := h.openSSE(t, "topic=f/a&where.who=tom&after="+strings.Split(er.Cursor, ":")[0]+":0", "", false)
	defer s.Close()
	ev := decodeData(t, s.next(t, 10*time.Second))
	if ev.Seq != 2 {
		t.Fatalf("SSE where.who=tom from the start: seq %d, want 2", ev.Seq)
	}
	h.publish(t, `[{"topic":"f/a","data":{"who":"rex"}},{"topic":"f/a","data":{"who":"tom","n":4}}]`)
	if ev := decodeData(t, s.next(t, 10*time.Second)); ev.Seq != 4 {
		t.Fatalf("SSE live: seq %d, want 4 (3 does not match)", ev.Seq)
	}
	for _, q := range []string{"topic=f/a&near=1,2", "topic=f/a&filter={", "topic=f/a&coalesce_ms=-5"} {
		if a := h.do(t, http.MethodGet, "/events?"+q, nil, nil); a.Status != http.StatusBadRequest || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %s, want a plain 400", q, a)
		}
	}
}

// TestWebSocketAndDocuments: /ws is served by the binary; a publish over
// it reaches a subscriber on it and shows in GET /documents.
func TestWebSocketAndDocuments(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer c.CloseNow()
	send := func(s string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() map[string]any {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}
	send(`{"op":"subscribe","sub":"b","topic":"board/1","filter":{"where":{"list":"todo"}}}`)
	if m := recv(); m["op"] != "subscribed" {
		t.Fatalf("subscribe: %v", m)
	}
	send(`{"op":"publish","topic":"board/1","type":"create","key":"card-1","data":{"list":"done"},"client_id":"x1"}`)
	send(`{"op":"publish","topic":"board/1","type":"create","key":"card-2","data":{"list":"todo"},"client_id":"x2"}`)
	acks, events := 0, []map[string]any{}
	for acks < 2 || len(events) < 1 {
		m := recv()
		switch m["op"] {
		case "published":
			acks++
		case "event":
			events = append(events, m)
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	if events[0]["key"] != "card-2" {
		t.Fatalf("filtered event: %v, want card-2 only", events[0])
	}
	a := h.do(t, http.MethodGet, "/documents?topic=board/1", nil, nil)
	var docs struct {
		Documents []wireEvent `json:"documents"`
	}
	if err := json.Unmarshal(a.Body, &docs); err != nil || a.Status != http.StatusOK || len(docs.Documents) != 2 || docs.Documents[0].Key != "card-1" {
		t.Fatalf("GET /documents: %s", a)
	}
}
