package websub_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/websub"
)

// On a topic with a coalescing window, a burst of updates to one document
// reaches a webhook as one delivery holding only its latest version, with
// other documents' latest versions, in log order.
func TestCoalescedDelivery(t *testing.T) {
	rule, err := hub.ParseCoalesceRule("docs/**=300ms")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.Hub = hub.New(o.Log, broker.New(), hub.Options{Coalesce: []hub.CoalesceRule{rule}})
	}).start()
	s := newSubscriber(t)
	if err := e.subscribe("docs/board", s.url("/"), url.Values{"hub.batch": {"10"}}); err != nil {
		t.Fatal(err)
	}
	// One publish call: every update is stored before the window, opened
	// by the first one, closes.
	drafts := []event.Draft{
		{Topics: []string{"docs/board"}, Type: "update", Key: "a", Data: []byte(`1`)},
		{Topics: []string{"docs/board"}, Type: "update", Key: "b", Data: []byte(`1`)},
		{Topics: []string{"docs/board"}, Type: "update", Key: "a", Data: []byte(`2`)},
		{Topics: []string{"docs/board"}, Type: "update", Key: "a", Data: []byte(`3`)},
	}
	start := time.Now()
	if _, err := e.hub.Publish(t.Context(), drafts); err != nil {
		t.Fatal(err)
	}
	d := s.next()
	t.Logf("delivered %v after the publish (window 300ms)", time.Since(start))
	var batch []event.Wire
	if err := json.Unmarshal(d.body, &batch); err != nil {
		t.Fatalf("body %q: %v", d.body, err)
	}
	if len(batch) != 2 || batch[0].Key != "b" || batch[1].Key != "a" || string(batch[1].Data) != "3" {
		t.Fatalf("delivered %s, want b then a=3", d.body)
	}
	s.none()
}

// A publish that asks for coalescing (coalesce_ms) is delivered once its
// window has passed, as the latest version of each document.
func TestPublishCoalescedDelivery(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("cards", s.url("/"), url.Values{"hub.batch": {"10"}}); err != nil {
		t.Fatal(err)
	}
	w := 200 * time.Millisecond
	drafts := []event.Draft{
		{Topics: []string{"cards"}, Type: "update", Key: "c1", Data: []byte(`1`), Coalesce: w},
		{Topics: []string{"cards"}, Type: "update", Key: "c1", Data: []byte(`2`), Coalesce: w},
		{Topics: []string{"cards"}, Type: "update", Key: "c1", Data: []byte(`3`), Coalesce: w},
	}
	if _, err := e.hub.Publish(t.Context(), drafts); err != nil {
		t.Fatal(err)
	}
	d := s.next()
	var batch []event.Wire
	if err := json.Unmarshal(d.body, &batch); err != nil || len(batch) != 1 || string(batch[0].Data) != "3" {
		t.Fatalf("delivered %s (%v), want only c1=3", d.body, err)
	}
	s.none()
}
