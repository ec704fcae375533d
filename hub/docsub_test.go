package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

func TestDocumentSubscription(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	ctx := context.Background()
	put := func(typ, key, color string) store.Result {
		t.Helper()
		d := event.Draft{Topics: []string{"docs"}, Type: typ, Key: key}
		if color != "" {
			d.Data = []byte(`{"color":"` + color + `"}`)
		}
		res, err := f.hub.Publish(ctx, []event.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	a1 := put("create", "a", "red")
	put("create", "b", "blue")
	b2 := put("update", "b", "blue")
	put("create", "c", "red")
	put("delete", "c", "")
	put("create", "r", "red")   // not held, matches: initial create
	put("create", "g", "green") // not held, no match
	put("update", "a", "red")   // a changed since the client's copy

	red, err := filter.ParseJSON([]byte(`{"where":{"color":"red"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := sub(t, f.hub, hub.SubscribeRequest{
		Topics: []string{"docs"},
		Filter: red,
		Documents: &hub.DocumentsSpec{Initial: true, Held: map[string]time.Time{
			"a": a1.Time, "b": b2.Time, "c": a1.Time, "x": a1.Time,
		}},
	})
	got, _ := collect(t, s, 4)
	want := map[string]string{"a": "update", "c": "delete", "x": "delete", "r": "create"}
	for _, it := range got {
		if want[it.Key] != it.Type {
			t.Errorf("opening diff: %s %s, want %q", it.Key, it.Type, want[it.Key])
		}
		delete(want, it.Key)
	}
	if len(want) != 0 {
		t.Fatalf("opening diff lacks %v", want)
	}
	// Live: a held document's update comes through even when it stops
	// matching; a new matching document comes; a new other one does not.
	put("update", "b", "green")
	put("create", "n", "green")
	put("create", "m", "red")
	got, _ = collect(t, s, 2)
	if got[0].Key != "b" || got[1].Key != "m" {
		t.Fatalf("live: %s %s, want b then m", got[0].Key, got[1].Key)
	}
	if _, err := f.hub.Subscribe(ctx, hub.SubscribeRequest{Topics: []string{"a", "b"}, Documents: &hub.DocumentsSpec{}}); !event.IsValidation(err) {
		t.Fatalf("two topics with documents: %v", err)
	}
}
