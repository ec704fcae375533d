// Package broker fans stored events out to the live subscribers inside one
// node. It is fed, in seq order per topic, by the store's commit listener
// (store.CommitListener); it never blocks that path. A subscriber whose
// queue is full is cut off rather than allowed to slow the others: it
// resumes from the log with its cursor.
//
// The broker knows nothing of history, cursors or resets: package hub joins
// it with the log ("catch-up then live").
package broker

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
)

// ErrSlow is what a cut-off subscriber's Take returns once its queue is
// drained: it fell more than its limit behind.
var ErrSlow = errors.New("subscriber fell too far behind and was cut off")

// ErrClosed is returned by Take after Close.
var ErrClosed = errors.New("subscription closed")

// Stats are running totals, safe to read at any time.
type Stats struct {
	Published   atomic.Uint64 // events handed to Publish
	Enqueued    atomic.Uint64 // (event, subscriber) deliveries queued
	CutOff      atomic.Uint64 // subscribers cut off for being slow
	Subscribers atomic.Int64  // live subscriptions now
}

// Broker is the in-node fan-out. The zero value is not usable; use New.
type Broker struct {
	mu       sync.RWMutex
	exact    map[string]map[*Sub]struct{}
	patterns map[*Sub][]*event.Pattern
	filters  *filter.Set
	taps     []func([]*event.Event) // see Tap

	Stats Stats
}

// New returns an empty broker.
func New() *Broker {
	return &Broker{
		exact:    make(map[string]map[*Sub]struct{}),
		patterns: make(map[*Sub][]*event.Pattern),
		filters:  filter.NewSet(),
	}
}

// Spec says what a subscriber wants.
type Spec struct {
	Topics   []string         // concrete topics
	Patterns []*event.Pattern // topic patterns, matched against every event
	// Filter, when not nil, lets through only the events it matches. Each
	// distinct filter (by Key) is evaluated once per event however many
	// subscribers share it, and geo filters are indexed.
	Filter *filter.Filter
	// Limit is how many events may wait in the queue (at least 1); one
	// more and the subscriber is cut off.
	Limit int
	// Label names the subscriber's kind (its transport) for statistics.
	Label string
}

// Subscribe registers a subscriber. Events published after Subscribe
// returns are queued for it. The caller must Close the Sub.
func (b *Broker) Subscribe(spec Spec) *Sub {
	limit := max(spec.Limit, 1)
	topics := spec.Topics
	patterns := spec.Patterns
	s := &Sub{b: b, limit: limit, notify: make(chan struct{}, 1), topics: topics, cut: make(chan struct{}), label: spec.Label}
	if spec.Filter != nil && !spec.Filter.IsZero() {
		s.filter = b.filters.Add(spec.Filter)
	}
	b.mu.Lock()
	for _, t := range topics {
		set := b.exact[t]
		if set == nil {
			set = make(map[*Sub]struct{})
			b.exact[t] = set
		}
		set[s] = struct{}{}
	}
	if len(patterns) > 0 {
		b.patterns[s] = patterns
	}
	b.mu.Unlock()
	b.Stats.Subscribers.Add(1)
	return s
}

// Publish hands events to their subscribers. It never blocks on a
// subscriber and allocates nothing per subscriber beyond queue growth.
//
// Callers must give each topic's events in seq order and without gaps, and
// calls must not overlap for the same topic: the store's commit listener
// guarantees both on one node, and a cross-node broker must fill gaps from
// the log before it calls Publish. Filtered subscribers rely on this: an
// event they do not get was filtered out, not lost.
func (b *Broker) Publish(events []*event.Event) {
	b.Stats.Published.Add(uint64(len(events)))
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n uint64
	for _, e := range events {
		it := event.NewItem(e)
		var res *filter.Result // evaluated on first need, once per event
		offer := func(s *Sub) {
			if s.filter != nil {
				if res == nil {
					res = b.filters.Eval(e)
				}
				if !res.Matches(s.filter) {
					return
				}
			}
			s.push(it)
			n++
		}
		for s := range b.exact[e.Topic] {
			offer(s)
		}
		for s, pats := range b.patterns {
			for _, p := range pats {
				if p.Match(e.Topic) {
					offer(s)
					break
				}
			}
		}
	}
	b.Stats.Enqueued.Add(n)
	for _, tap := range b.taps {
		tap(events)
	}
}

// HasSubscribers reports whether any live subscription wants topic, by name
// or by pattern (whatever its filter). A cross-node broker uses it to keep
// state only for topics with local interest.
func (b *Broker) HasSubscribers(topic string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if len(b.exact[topic]) > 0 {
		return true
	}
	for _, pats := range b.patterns {
		for _, p := range pats {
			if p.Match(topic) {
				return true
			}
		}
	}
	return false
}

// Topics returns the concrete topics some live subscription names, in no
// particular order (topics only a pattern matches are not listed).
func (b *Broker) Topics() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]string, 0, len(b.exact))
	for t := range b.exact {
		out = append(out, t)
	}
	return out
}

// Watch adds a concrete topic to a live subscription (used when a cursor
// names a topic that a pattern matched before a reconnect).
func (b *Broker) watch(s *Sub, topic string) {
	b.mu.Lock()
	set := b.exact[topic]
	if set == nil {
		set = make(map[*Sub]struct{})
		b.exact[topic] = set
	}
	set[s] = struct{}{}
	s.topics = append(s.topics, topic)
	b.mu.Unlock()
}

func (b *Broker) remove(s *Sub) {
	b.mu.Lock()
	for _, t := range s.topics {
		if set := b.exact[t]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(b.exact, t)
			}
		}
	}
	delete(b.patterns, s)
	b.mu.Unlock()
	if s.filter != nil {
		b.filters.Release(s.filter)
	}
	b.Stats.Subscribers.Add(-1)
}

// Sub is one live subscription's queue. Take and Ready are for one reader
// goroutine; push comes from the broker.
type Sub struct {
	b      *Broker
	limit  int
	notify chan struct{}
	topics []string       // guarded by b.mu
	filter *filter.Handle // nil: every event

	mu     sync.Mutex
	q      []*event.Item
	err    error // ErrSlow or ErrClosed once set; q is then dropped
	closed atomic.Bool
	cut    chan struct{} // closed when the subscriber is cut off
	label  string        // Spec.Label
}

func (s *Sub) push(it *event.Item) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if len(s.q) >= s.limit {
		s.err = ErrSlow
		s.q = nil
		close(s.cut)
		s.mu.Unlock()
		s.b.Stats.CutOff.Add(1)
	} else {
		s.q = append(s.q, it)
		s.mu.Unlock()
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// CutOff is closed when the subscriber is cut off for falling behind, so a
// transport blocked writing to a stalled client can drop it at once.
func (s *Sub) CutOff() <-chan struct{} { return s.cut }

// Watch adds a concrete topic to the subscription.
func (s *Sub) Watch(topic string) { s.b.watch(s, topic) }

// Ready is signalled when items (or a cut-off) may be waiting. A signal may
// be spurious; Take tells.
func (s *Sub) Ready() <-chan struct{} { return s.notify }

// Take moves every queued item onto buf and returns it. When the queue is
// empty and the subscriber was cut off or closed it returns that error.
// Items queued before a cut-off are dropped with it: the subscriber must
// resume from the log.
func (s *Sub) Take(buf []*event.Item) ([]*event.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return buf, s.err
	}
	buf = append(buf, s.q...)
	if cap(s.q) > 256 {
		s.q = nil // give a burst's memory back
	} else {
		clear(s.q)
		s.q = s.q[:0]
	}
	return buf, nil
}

// Close unregisters the subscription. It is safe to call more than once.
func (s *Sub) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.b.remove(s)
	s.mu.Lock()
	if s.err == nil {
		s.err = ErrClosed
	}
	s.q = nil
	s.mu.Unlock()
}
