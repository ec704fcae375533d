package broker

import (
	"sync"

	"github.com/hubbub/hubbub/event"
)

// Bounds of the fan-out queue: the events handed to Publish or OnCommit
// that the fan-out goroutine has not finished offering to subscribers.
const (
	QueueEvents = 1 << 16  // events
	QueueBytes  = 64 << 20 // bytes of events (topics, data and other fields)
)

// fanout is the queue between the publishers and the one goroutine that
// offers events to subscribers. That goroutine runs while the queue is not
// empty and ends when it is, so an idle broker holds no goroutine. Being
// one goroutine taking batches first in, first out, it keeps each topic's
// events in the order they were queued.
type fanout struct {
	mu      sync.Mutex
	room    *sync.Cond // broadcast when a batch is done
	q       []batch
	events  int // events queued or being offered
	bytes   int // their size
	running bool
	queued  uint64 // the seq of the last batch (or drop) accepted
	done    uint64 // the seq of the last batch finished

	maxEvents, maxBytes int
	hook                func() // tests: run before each batch, outside any lock
}

// batch is one Publish or OnCommit call's events, or, when cut is set, the
// mark of dropped events: every subscriber that subscribed before the last
// of them was dropped is cut off, as it may have wanted one of them. Each
// batch and each drop takes the next seq; a subscriber gets only the
// batches with seqs above the one current when it subscribed (Sub.from):
// what was queued before is in the log before it subscribed.
type batch struct {
	seq    uint64
	events []*event.Event
	size   int
	cut    bool
}

// enqueue queues events for the fan-out goroutine, starting it if needed.
// When the queue is full, wait says what to do: wait for room, or drop the
// events and queue a cut marker (one for a run of drops). A batch larger
// than the whole queue is taken when the queue is empty. It reports
// whether the events were queued.
func (b *Broker) enqueue(events []*event.Event, wait bool) bool {
	size := 0
	for _, e := range events {
		size += eventSize(e)
	}
	f := &b.fan
	f.mu.Lock()
	defer f.mu.Unlock()
	full := func() bool {
		return f.events > 0 && (f.events+len(events) > f.maxEvents || f.bytes+size > f.maxBytes)
	}
	for wait && full() {
		f.room.Wait()
	}
	if full() {
		f.queued++
		if n := len(f.q); n > 0 && f.q[n-1].cut {
			f.q[n-1].seq = f.queued // one mark covers a run of drops
		} else {
			f.q = append(f.q, batch{seq: f.queued, cut: true})
		}
		return false
	}
	f.queued++
	f.q = append(f.q, batch{seq: f.queued, events: events, size: size})
	f.events += len(events)
	f.bytes += size
	if !f.running {
		f.running = true
		go b.run()
	}
	return true
}

// run is the fan-out goroutine: it offers the queued batches in order and
// ends when the queue is empty.
func (b *Broker) run() {
	f := &b.fan
	for {
		f.mu.Lock()
		if len(f.q) == 0 {
			f.running = false
			f.q = nil // give a burst's memory back
			f.mu.Unlock()
			return
		}
		bt := f.q[0]
		f.q[0] = batch{}
		f.q = f.q[1:]
		hook := f.hook
		f.mu.Unlock()
		if hook != nil {
			hook()
		}
		if bt.cut {
			b.cutAll(bt.seq)
		} else {
			b.deliver(bt.events, bt.seq)
		}
		f.mu.Lock()
		f.events -= len(bt.events)
		f.bytes -= bt.size
		f.done = bt.seq
		f.room.Broadcast()
		f.mu.Unlock()
	}
}

// Flush waits until every event queued before the call has been offered
// to the subscribers (tests, and callers that need to see delivery).
func (b *Broker) Flush() {
	f := &b.fan
	f.mu.Lock()
	defer f.mu.Unlock()
	for target := f.queued; f.done < target && f.running; {
		f.room.Wait()
	}
}

// eventSize is about how many bytes an event holds.
func eventSize(e *event.Event) int {
	n := 128 + len(e.Topic) + len(e.Epoch) + len(e.Type) + len(e.Key) + len(e.ContentType) +
		len(e.Data) + len(e.IdempotencyKey)
	for _, t := range e.Tags {
		n += 16 + len(t)
	}
	return n
}
