package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

// Updates to one key gathered within the window come out as the latest
// one; other keys and unkeyed events are kept, in order, and the cursor
// moves past everything gathered.
func TestCoalesce(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	ctx := context.Background()
	drafts := []event.Draft{
		{Topics: []string{"d"}, Type: "update", Key: "a", Data: []byte(`1`)},
		{Topics: []string{"d"}, Type: "update", Key: "b", Data: []byte(`1`)},
		{Topics: []string{"d"}, Data: []byte(`"plain"`)},
		{Topics: []string{"d"}, Type: "update", Key: "a", Data: []byte(`2`)},
		{Topics: []string{"d"}, Type: "update", Key: "a", Data: []byte(`3`)},
	}
	// All stored before the subscription reads them, so one window sees
	// them all whatever the machine's speed.
	if _, err := f.hub.Publish(ctx, drafts); err != nil {
		t.Fatal(err)
	}
	s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"d"}, Cursor: event.Cursor{"d": {}}, Coalesce: 20 * time.Millisecond})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msgs, err := s.Next(cctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Item.Key+":"+string(m.Item.Data))
	}
	want := []string{"b:1", `:"plain"`, "a:3"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if s.Cursor() != msgs[len(msgs)-1].Item.Position().String() || msgs[len(msgs)-1].Item.Seq != 5 {
		t.Fatalf("cursor %s", s.Cursor())
	}
}

func TestCoalesceRules(t *testing.T) {
	for _, bad := range []string{"docs/**", "docs/**=0s", "docs/**=forever", "=1s", "a/**/**=1s"} {
		if _, err := hub.ParseCoalesceRule(bad); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
	r1, _ := hub.ParseCoalesceRule("docs/**=2s")
	r2, _ := hub.ParseCoalesceRule("docs/big/*=5s")
	f := newHub(t, store.Retention{}, true, hub.Options{Coalesce: []hub.CoalesceRule{r2, r1}})
	if w := f.hub.CoalesceWindow([]string{"docs/a"}); w != 2*time.Second {
		t.Errorf("docs/a: %v", w)
	}
	if w := f.hub.CoalesceWindow([]string{"docs/a", "docs/big/x"}); w != 5*time.Second {
		t.Errorf("both: %v", w)
	}
	if w := f.hub.CoalesceWindow([]string{"chat"}); w != 0 {
		t.Errorf("chat: %v", w)
	}
}

// A publish's own coalesce window is honoured by subscriptions that ask
// for it (long-polls), and ignored by others.
func TestPublishCoalesce(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	ctx := context.Background()
	drafts := []event.Draft{
		{Topics: []string{"d"}, Type: "update", Key: "a", Data: []byte(`1`), Coalesce: 20 * time.Millisecond},
		{Topics: []string{"d"}, Type: "update", Key: "a", Data: []byte(`2`), Coalesce: 20 * time.Millisecond},
	}
	if _, err := f.hub.Publish(ctx, drafts); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		honour bool
		want   int
	}{{true, 1}, {false, 2}} {
		s := sub(t, f.hub, hub.SubscribeRequest{Topics: []string{"d"}, Cursor: event.Cursor{"d": {}}, EventCoalesce: c.honour})
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msgs, err := s.Next(cctx, nil)
		cancel()
		if err != nil || len(msgs) != c.want || string(msgs[len(msgs)-1].Item.Data) != "2" {
			t.Fatalf("EventCoalesce=%v: %v, %d messages, want %d ending with 2", c.honour, err, len(msgs), c.want)
		}
	}
	if _, err := f.hub.Publish(ctx, []event.Draft{{Topics: []string{"d"}, Coalesce: 2 * time.Hour}}); !event.IsValidation(err) {
		t.Fatalf("a window over the most: %v", err)
	}
}
