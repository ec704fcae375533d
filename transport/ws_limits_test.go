package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/transport"
)

// limitObserver counts Observer.Limited calls.
type limitObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *limitObserver) Connected(string, int) {}
func (o *limitObserver) Delivered(string, int) {}
func (o *limitObserver) SlowDisconnect(string) {}
func (o *limitObserver) Limited(l string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[l]++
}

func (o *limitObserver) get(l string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[l]
}

func topicList(prefix string, n int) string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf("%s%06d/*", prefix, i)
	}
	b, _ := json.Marshal(ts)
	return string(b)
}

// Finding 3: one subscribe with 50,000 patterns is refused with an error
// and registers nothing with the broker, so publishes pay nothing for it.
func TestWSSubscribeTopicCaps(t *testing.T) {
	obs := &limitObserver{}
	// A long heartbeat: reading a 50,000-topic frame under -race on a busy
	// machine can take longer than the usual test heartbeat, and the
	// server's pong would then be read too late.
	th := newTestHubOpts(t, store.Retention{}, false, hub.Options{}, transport.Options{Observer: obs, Heartbeat: time.Minute})
	c := th.dial(t)
	c.send(`{"op":"subscribe","sub":"big","topics":` + topicList("p", 50000) + `}`)
	m := c.expect("error", map[string]any{"sub": "big", "code": "bad_request"})
	if !strings.Contains(m["message"].(string), "more than 256 topics") {
		t.Fatalf("message %q", m["message"])
	}
	c.send(`{"op":"ping"}`)
	c.expect("pong", nil)
	if n := th.hub.Broker().Stats.Subscribers.Load(); n != 0 {
		t.Fatalf("%d live subscriptions after a refused subscribe", n)
	}

	// Four subscriptions of 256 patterns fill the connection's 1024; the
	// fifth, even of one topic, is refused.
	for i := range 4 {
		sub := fmt.Sprint("s", i)
		c.send(`{"op":"subscribe","sub":"` + sub + `","topics":` + topicList(sub+"-", 256) + `}`)
		c.expect("subscribed", map[string]any{"sub": sub})
	}
	c.send(`{"op":"subscribe","sub":"one-more","topic":"t"}`)
	m = c.expect("error", map[string]any{"sub": "one-more", "code": "bad_request"})
	if !strings.Contains(m["message"].(string), "at most 1024 topics and patterns per connection") {
		t.Fatalf("message %q", m["message"])
	}
	// Unsubscribing frees room.
	c.send(`{"op":"unsubscribe","sub":"s0"}`)
	c.expect("unsubscribed", map[string]any{"sub": "s0"})
	c.send(`{"op":"subscribe","sub":"one-more","topic":"t"}`)
	c.expect("subscribed", map[string]any{"sub": "one-more"})
	if got := obs.get(transport.LimitWSTopics); got != 2 {
		t.Fatalf("ws_topics refusals = %d, want 2", got)
	}
}

func TestWSHeldDocumentsCap(t *testing.T) {
	obs := &limitObserver{}
	th := newTestHubOpts(t, store.Retention{}, false, hub.Options{}, transport.Options{Observer: obs})
	c := th.dial(t)
	held := func(n int) string {
		docs := make(map[string]int64, n)
		for i := range n {
			docs[fmt.Sprint("k", i)] = 1
		}
		b, _ := json.Marshal(docs)
		return string(b)
	}
	c.send(`{"op":"subscribe","sub":"d","topic":"docs/a","documents":` + held(1001) + `}`)
	m := c.expect("error", map[string]any{"sub": "d", "code": "bad_request"})
	if !strings.Contains(m["message"].(string), "more than 1000 documents") {
		t.Fatalf("message %q", m["message"])
	}
	c.send(`{"op":"subscribe","sub":"d","topic":"docs/a","documents":` + held(1000) + `}`)
	c.expect("subscribed", map[string]any{"sub": "d"})
	if got := obs.get(transport.LimitWSDocuments); got != 1 {
		t.Fatalf("ws_documents refusals = %d, want 1", got)
	}
}

// A client sending faster than the frame rate gets an error op and the
// connection is closed with 1008. The refill is one message in 1000 s, so
// exactly the burst is served.
func TestWSFrameRate(t *testing.T) {
	obs := &limitObserver{}
	th := newTestHubOpts(t, store.Retention{}, false, hub.Options{},
		transport.Options{Observer: obs, WSFrameRate: 0.001, WSFrameBurst: 5})
	c := th.dial(t)
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.c.Write(ctx, websocket.MessageText, []byte(`{"op":"ping"}`))
		cancel()
		if err != nil {
			break // closed already
		}
	}
	for range 5 {
		c.expect("pong", nil)
	}
	m := c.expect("error", map[string]any{"code": "rate_limited"})
	if !strings.Contains(m["message"].(string), "messages a second") {
		t.Fatalf("message %q", m["message"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		t.Fatalf("after the error: %v, want close 1008", err)
	}
	if got := obs.get(transport.LimitWSFrameRate); got != 1 {
		t.Fatalf("ws_frame_rate refusals = %d, want 1", got)
	}
}

// A WebSocket publish asks AllowPublish with the upgrade request; refused,
// it gets a rate_limited error op with the wait in whole seconds.
func TestWSPublishRate(t *testing.T) {
	var mu sync.Mutex
	allowed := 2
	th := newTestHubOpts(t, store.Retention{}, true, hub.Options{}, transport.Options{
		AllowPublish: func(r *http.Request, _ access.Identity) (time.Duration, bool) {
			mu.Lock()
			defer mu.Unlock()
			if r.URL.Path != "/ws" {
				t.Errorf("AllowPublish got %s, want the upgrade request", r.URL.Path)
			}
			if allowed == 0 {
				return 1500 * time.Millisecond, false
			}
			allowed--
			return 0, true
		},
	})
	c := th.dial(t)
	for i := range 2 {
		c.send(fmt.Sprintf(`{"op":"publish","topic":"t","data":%d,"client_id":"c%d"}`, i, i))
		c.expect("published", map[string]any{"client_id": fmt.Sprint("c", i)})
	}
	c.send(`{"op":"publish","topic":"t","data":3,"client_id":"c3"}`)
	c.expect("error", map[string]any{"client_id": "c3", "code": "rate_limited", "retry_after": 2})
	if head, err := th.hub.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"t"}}); err != nil || len(head.Events) != 2 {
		t.Fatalf("stored %v, %v; want the two allowed", head, err)
	}
}
