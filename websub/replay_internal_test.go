package websub

import (
	"testing"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

func TestStartCursor(t *testing.T) {
	h := store.Head{Epoch: "e", First: 4, Last: 10} // events 4..10 held
	for _, c := range []struct {
		name     string
		head     store.Head
		backfill int
		after    string
		want     event.Position
	}{
		{"live", h, 0, "", event.Position{Epoch: "e", Seq: 10}},
		{"never written", store.Head{First: 1}, 5, "", event.Position{}},
		{"backfill", h, 3, "", event.Position{Epoch: "e", Seq: 7}},
		{"backfill past retention", h, 50, "", event.Position{Epoch: "e", Seq: 3}},
		{"backfill past seq 0", store.Head{Epoch: "e", First: 1, Last: 2}, 5, "", event.Position{Epoch: "e", Seq: 0}},
		{"after", h, 0, "e:5", event.Position{Epoch: "e", Seq: 5}},
		{"after, bare seq", h, 0, "8", event.Position{Epoch: "e", Seq: 8}},
		{"after, trimmed", h, 0, "e:1", event.Position{Epoch: "e", Seq: 3}},
		{"after, past the end", h, 0, "e:99", event.Position{Epoch: "e", Seq: 10}},
		{"after, another epoch", h, 0, "old:7", event.Position{Epoch: "e", Seq: 3}},
		{"all trimmed", store.Head{Epoch: "e", First: 11, Last: 10}, 5, "", event.Position{Epoch: "e", Seq: 10}},
	} {
		if got := startCursor(c.head, c.backfill, c.after); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
