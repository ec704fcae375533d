package hub_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

func publishTagged(t *testing.T, h *hub.Hub, topic string, tags ...string) {
	t.Helper()
	for i, tag := range tags {
		d := event.Draft{Topics: []string{topic}, Tags: []string{tag}, Data: fmt.Appendf(nil, `{"i":%d,"tag":%q,"secret":"x"}`, i, tag)}
		if _, err := h.Publish(context.Background(), []event.Draft{d}); err != nil {
			t.Fatal(err)
		}
	}
}

// A filtered subscription gets matching events from history and live, in
// order, and a live jump over filtered-out events is not taken for a gap.
func TestFilteredSubscription(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publishTagged(t, f.hub, "p", "dog", "kitten", "dog", "kitten") // seqs 1..4
	flt, err := filter.ParseJSON([]byte(`{"tags":{"any":["kitten"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	proj, _ := filter.ParseFields([]string{"tag"})
	req := hub.SubscribeRequest{Topics: []string{"p"}, Cursor: event.Cursor{"p": {}}, Filter: flt, Fields: proj}
	s1 := sub(t, f.hub, req)
	got, _ := collect(t, s1, 2)
	if got[0].Seq != 2 || got[1].Seq != 4 {
		t.Fatalf("history: seqs %v, want [2 4]", seqs(got))
	}
	if string(got[0].Data) != `{"tag":"kitten"}` {
		t.Fatalf("projection: data %s", got[0].Data)
	}
	s2 := sub(t, f.hub, req)
	collect(t, s2, 2)
	publishTagged(t, f.hub, "p", "dog", "dog", "kitten") // 5, 6, 7
	a, _ := collect(t, s1, 1)
	b, _ := collect(t, s2, 1)
	if a[0].Seq != 7 || b[0].Seq != 7 {
		t.Fatalf("live: %v %v, want 7", seqs(a), seqs(b))
	}
	if a[0] != b[0] {
		t.Error("two subscribers with the same projection did not share the projected item")
	}
	if c := s1.Cursor(); c != a[0].Position().String() {
		t.Errorf("cursor %s", c)
	}
}

func TestFilteredRetrieve(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publishTagged(t, f.hub, "p", "dog", "kitten", "dog", "kitten", "dog", "dog") // kittens at 2, 4
	flt, _ := filter.ParseJSON([]byte(`{"tags":{"any":["kitten"]}}`))
	ctx := context.Background()
	r, err := f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"p"}, Filter: flt, Count: 1})
	if err != nil || len(r.Events) != 1 || r.Events[0].Seq != 4 {
		t.Fatalf("newest kitten: %v %+v", err, r.Events)
	}
	r, err = f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"p"}, Filter: flt, After: true, Cursor: event.Cursor{"p": {}}, Count: 5})
	if err != nil || len(r.Events) != 2 || r.Cursor["p"].Seq != 6 {
		t.Fatalf("kittens after start: %v %d events, cursor %v (want 2 events, cursor at 6: past the dogs examined)", err, len(r.Events), r.Cursor)
	}
	// Two topics, cut by count: the cut topic's cursor must not pass its
	// events.
	publishTagged(t, f.hub, "q", "kitten", "kitten")
	r, err = f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"p", "q"}, Filter: flt, After: true, Cursor: event.Cursor{"p": {}, "q": {}}, Count: 2})
	if err != nil || len(r.Events) != 2 {
		t.Fatalf("two topics: %v %+v", err, r)
	}
	total := 0
	for range 5 {
		total += len(r.Events)
		if len(r.Events) == 0 {
			break
		}
		r, err = f.hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{"p", "q"}, Filter: flt, After: true, Cursor: r.Cursor, Count: 2})
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != 4 {
		t.Fatalf("paging two topics found %d kittens, want 4", total)
	}
}
