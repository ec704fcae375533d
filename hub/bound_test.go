package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

// countingLog counts the events the log hands out, to show what a bounded
// read costs.
type countingLog struct {
	store.Log
	events int
}

func (c *countingLog) Read(ctx context.Context, topic string, q store.Query) (store.Page, error) {
	p, err := c.Log.Read(ctx, topic, q)
	c.events += len(p.Events)
	return p, err
}

// publishBig stores n text events of size bytes in topic.
func publishBig(t *testing.T, h *hub.Hub, topic string, n, size int) {
	t.Helper()
	data := []byte(strings.Repeat("x", size))
	for range n {
		if _, err := h.Publish(context.Background(), []event.Draft{{Topics: []string{topic}, ContentType: "text/plain", Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
}

func wireSize(e *event.Event) int { return len(event.NewItem(e).JSON()) }

// Audit finding 7: a retrieve bounded by bytes returns at most that many
// (and always one event), and paging with its cursor returns everything,
// in order, once, over one topic or several.
func TestRetrieveMaxBytesPagesOn(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publishBig(t, f.hub, "big/a", 30, 8<<10)
	publishBig(t, f.hub, "big/b", 30, 8<<10)
	publishBig(t, f.hub, "big/b", 1, 100<<10) // alone over the bound
	const maxBytes = 64 << 10
	for _, topics := range [][]string{{"big/a"}, {"big/a", "big/b"}} {
		var cur event.Cursor
		got := map[string][]uint64{}
		for page := 0; ; page++ {
			if page > 100 {
				t.Fatalf("%v: paging does not end", topics)
			}
			res, err := f.hub.Retrieve(context.Background(), hub.RetrieveRequest{
				Topics: topics, Cursor: cur, After: true, Count: hub.MaxCount, MaxBytes: maxBytes,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) == 0 {
				break
			}
			total := 0
			for _, e := range res.Events {
				total += wireSize(e)
				got[e.Topic] = append(got[e.Topic], e.Seq)
			}
			if total > maxBytes && len(res.Events) > 1 {
				t.Fatalf("%v: a page of %d events holds %d bytes, over %d", topics, len(res.Events), total, maxBytes)
			}
			cur = res.Cursor
		}
		for _, topic := range topics {
			n := map[string]int{"big/a": 30, "big/b": 31}[topic]
			if len(got[topic]) != n {
				t.Fatalf("%v: paged through %d events of %s, want %d", topics, len(got[topic]), topic, n)
			}
			for i, s := range got[topic] {
				if s != uint64(i+1) {
					t.Fatalf("%v: %s seqs %v", topics, topic, got[topic])
				}
			}
		}
	}
	// The newest: those that fit, newest last, and the head as the cursor.
	res, err := f.hub.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"big/a"}, Count: hub.MaxCount, MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Events); n == 0 || n >= 30 || res.Events[n-1].Seq != 30 || res.Cursor["big/a"].Seq != 30 {
		t.Fatalf("newest within the bound: %d events, cursor %v", n, res.Cursor)
	}
}

// A bounded retrieve reads little more than it returns from the log.
func TestRetrieveMaxBytesReadsLittle(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publishBig(t, f.hub, "big/a", 200, 8<<10)
	cl := &countingLog{Log: f.log}
	h := hub.New(cl, f.broker, hub.Options{})
	res, err := h.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"big/a"}, After: true, Count: hub.MaxCount, MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) == 0 || cl.events > 2*len(res.Events)+32 {
		t.Fatalf("returned %d events and read %d", len(res.Events), cl.events)
	}
}

// A live subscriber catching up gets pages of at most MaxPageBytes (one
// event at least), and every event once, in order.
func TestCatchUpPagesBoundedByBytes(t *testing.T) {
	const maxBytes = 64 << 10
	f := newHub(t, store.Retention{}, true, hub.Options{MaxPageBytes: maxBytes})
	publishBig(t, f.hub, "big/a", 40, 8<<10)
	publishBig(t, f.hub, "big/a", 1, 100<<10)
	publishBig(t, f.hub, "big/a", 9, 8<<10)
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"big/a"}, Cursor: event.Cursor{"big/a": {}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	for len(seqs) < 50 {
		msgs, err := s.Next(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, m := range msgs {
			total += len(m.Item.JSON())
			seqs = append(seqs, m.Item.Seq)
		}
		if total > maxBytes && len(msgs) > 1 {
			t.Fatalf("a catch-up page of %d events holds %d bytes", len(msgs), total)
		}
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", seqs)
		}
	}
}

// With many topics, a bounded retrieve reads about what it returns, not
// the budget from every topic.
func TestRetrieveMaxBytesManyTopicsReadsLittle(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	var topics []string
	for i := range 20 {
		topic := "big/" + string(rune('a'+i))
		topics = append(topics, topic)
		publishBig(t, f.hub, topic, 12, 8<<10)
	}
	cl := &countingLog{Log: f.log}
	h := hub.New(cl, f.broker, hub.Options{})
	res, err := h.Retrieve(context.Background(), hub.RetrieveRequest{Topics: topics, After: true, Count: hub.MaxCount, MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// Topic a holds the oldest events: the answer is its first 7 or so.
	// Every other topic is read one event deep.
	if len(res.Events) == 0 || cl.events > 2*len(res.Events)+len(topics)+32 {
		t.Fatalf("returned %d events and read %d", len(res.Events), cl.events)
	}
}
