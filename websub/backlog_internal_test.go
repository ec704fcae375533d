package websub

import (
	"testing"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

func TestPending(t *testing.T) {
	h := store.Head{Epoch: "e", First: 4, Last: 10}
	for _, c := range []struct {
		name     string
		head     store.Head
		cursor   event.Position
		first, n uint64
	}{
		{"caught up", h, event.Position{Epoch: "e", Seq: 10}, 0, 0},
		{"behind", h, event.Position{Epoch: "e", Seq: 7}, 8, 3},
		{"behind what retention kept", h, event.Position{Epoch: "e", Seq: 1}, 4, 7},
		{"no epoch yet", h, event.Position{Seq: 9}, 10, 1},
		{"another epoch", h, event.Position{Epoch: "old", Seq: 20}, 4, 7},
		{"past the end", h, event.Position{Epoch: "e", Seq: 12}, 0, 0},
		{"empty log", store.Head{Epoch: "e", First: 11, Last: 10}, event.Position{Epoch: "x", Seq: 3}, 0, 0},
		{"never written", store.Head{First: 1}, event.Position{}, 0, 0},
	} {
		first, n := pending(c.head, c.cursor)
		if first != c.first || n != c.n {
			t.Errorf("%s: pending = %d, %d; want %d, %d", c.name, first, n, c.first, c.n)
		}
	}
}
