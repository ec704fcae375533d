package websub

import (
	"context"
	"fmt"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// Backlog is how far webhook delivery is behind, over every subscription
// the records hold (in Redis mode: the whole deployment's).
type Backlog struct {
	Subscriptions int // live (unexpired) subscriptions
	Failing       int // of which in StateFailing
	Suspended     int // of which in StateSuspended (not counted in Behind or Events)
	Behind        int // of which with events pending
	// Events counts the events in the logs after each subscription's
	// cursor, summed. For a filtered subscription it is an upper bound
	// (the filter may skip some); events retention removed are not
	// counted (they are dropped, see Observer.Dropped).
	Events uint64
	// Oldest is the time of the oldest event pending for any
	// subscription; zero when none is.
	Oldest time.Time
	// At is when the measurement ended, Took how long it took.
	At   time.Time
	Took time.Duration
}

// MeasureBacklog reads every subscription's position against its topic's
// head. It costs one List per 500 subscriptions, one Head per distinct
// topic and one Read of one event per topic that has events pending; it
// changes nothing.
func (h *Hub) MeasureBacklog(ctx context.Context) (Backlog, error) {
	start := h.now()
	var b Backlog
	type topicState struct {
		head  store.Head
		first uint64 // lowest pending seq over its subscriptions (0: none)
	}
	topics := map[string]*topicState{}
	after := ""
	for range 1 << 24 { // bounded: pages of listPage records
		subs, err := h.o.Records.List(ctx, after, listPage)
		if err != nil {
			return Backlog{}, fmt.Errorf("websub: backlog: %w", err)
		}
		for _, s := range subs {
			if s.Expired(start) {
				continue
			}
			b.Subscriptions++
			switch s.State {
			case StateFailing:
				b.Failing++
			case StateSuspended:
				b.Suspended++
				continue // nothing is being delivered to it
			}
			ts := topics[s.LogTopic]
			if ts == nil {
				head, err := h.o.Log.Head(ctx, s.LogTopic)
				if err != nil {
					return Backlog{}, fmt.Errorf("websub: backlog: head of %s: %w", s.LogTopic, err)
				}
				ts = &topicState{head: head}
				topics[s.LogTopic] = ts
			}
			first, n := pending(ts.head, s.Cursor)
			if n == 0 {
				continue
			}
			b.Behind++
			b.Events += n
			if ts.first == 0 || first < ts.first {
				ts.first = first
			}
		}
		if len(subs) < listPage {
			break
		}
		after = subs[len(subs)-1].ID
	}
	for topic, ts := range topics {
		if ts.first == 0 {
			continue
		}
		p, err := h.o.Log.Read(ctx, topic, store.Query{After: ts.first - 1, Limit: 1})
		if err != nil {
			return Backlog{}, fmt.Errorf("websub: backlog: read %s: %w", topic, err)
		}
		if len(p.Events) > 0 && (b.Oldest.IsZero() || p.Events[0].Time.Before(b.Oldest)) {
			b.Oldest = p.Events[0].Time
		}
	}
	b.At = h.now()
	b.Took = b.At.Sub(start)
	return b, nil
}

// pending is the first seq still to deliver from cursor in a log with
// head, and how many events from there on the log holds (0, 0 when none).
// A cursor of another epoch (the log was recreated) has all of it to go.
func pending(head store.Head, cursor event.Position) (first, n uint64) {
	if head.Last < head.First {
		return 0, 0 // nothing held
	}
	from := head.First
	if cursor.Epoch == "" || cursor.Epoch == head.Epoch {
		from = max(cursor.Seq+1, head.First)
	}
	if from > head.Last {
		return 0, 0
	}
	return from, head.Last - from + 1
}
