package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// memLog is a store.Log of one topic held in memory (Read only).
type memLog struct {
	store.Log
	epoch string
	evs   []*event.Event // seqs 1..n
	reads int
}

func (l *memLog) Read(_ context.Context, topic string, q store.Query) (store.Page, error) {
	l.reads++
	p := store.Page{Head: store.Head{Epoch: l.epoch, First: 1, Last: uint64(len(l.evs))}}
	for _, e := range l.evs {
		if e.Seq > q.After && (q.Before == 0 || e.Seq < q.Before) && len(p.Events) < q.Limit {
			p.Events = append(p.Events, e)
		}
	}
	return p, nil
}

type recorder struct {
	got  []string
	cuts int
}

func (r *recorder) CutOffPatterns() int { r.cuts++; return 0 }

func (r *recorder) Publish(evs []*event.Event) {
	for _, e := range evs {
		r.got = append(r.got, fmt.Sprintf("%s:%d", e.Epoch, e.Seq))
	}
}
func (r *recorder) HasSubscribers(string) bool { return true }
func (r *recorder) Topics() []string           { return []string{"t"} }

type noFeed struct{}

func (noFeed) Subscribe(context.Context) *goredis.PubSub { return nil }
func (noFeed) Channels() []string                        { return []string{"c"} }

func ev(epoch string, seq uint64) *event.Event {
	return &event.Event{Topic: "t", Epoch: epoch, Seq: seq}
}

// TestGapRepairAndEpochs: a gap is filled from the log before the message
// after it, repeats are dropped, and a new epoch passes as it is.
func TestGapRepairAndEpochs(t *testing.T) {
	log := &memLog{epoch: "A"}
	for i := uint64(1); i <= 6; i++ {
		log.evs = append(log.evs, ev("A", i))
	}
	rec := &recorder{}
	br := NewBridge(noFeed{}, log, rec, Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	br.accept(ctx, []*event.Event{ev("A", 1), ev("A", 2)})
	br.accept(ctx, []*event.Event{ev("A", 5), ev("A", 6)}) // 3, 4 lost
	br.accept(ctx, []*event.Event{ev("A", 4)})             // late repeat
	br.accept(ctx, []*event.Event{ev("B", 1)})             // Redis lost the log
	want := "[A:1 A:2 A:3 A:4 A:5 A:6 B:1]"
	if got := fmt.Sprint(rec.got); got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}
	if br.Stats.Repairs.Load() != 1 || log.reads != 1 {
		t.Fatalf("repairs %d, reads %d; want 1, 1", br.Stats.Repairs.Load(), log.reads)
	}
}

// TestResync: after a reconnect every topic with interest is re-read from
// its last delivered seq; a topic the log moved to a new epoch is delivered
// from that epoch's start.
func TestResync(t *testing.T) {
	log := &memLog{epoch: "A"}
	for i := uint64(1); i <= 3; i++ {
		log.evs = append(log.evs, ev("A", i))
	}
	rec := &recorder{}
	br := NewBridge(noFeed{}, log, rec, Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	br.accept(ctx, []*event.Event{ev("A", 1)})
	br.subscribed(ctx) // reconnected: 2 and 3 were missed
	log.epoch, log.evs = "B", []*event.Event{ev("B", 1), ev("B", 2)}
	br.subscribed(ctx)
	br.accept(ctx, []*event.Event{ev("B", 2)}) // already delivered by the resync
	br.accept(ctx, []*event.Event{ev("B", 3)})
	want := "[A:1 A:2 A:3 B:1 B:2 B:3]"
	if got := fmt.Sprint(rec.got); got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}
	// The first subscription is the start; the second, a reconnection,
	// asks pattern subscribers to resume.
	if rec.cuts != 1 {
		t.Fatalf("pattern subscribers cut off %d times, want once (not on the first subscription)", rec.cuts)
	}
}
