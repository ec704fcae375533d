// Package broker fans stored events out to the live subscribers inside one
// node. It is fed, in seq order per topic, by the store's commit listener
// (OnCommit) or by the cross-node bridge (Publish). Both only queue the
// events: one fan-out goroutine offers them to subscribers, first in, first
// out, so nothing a subscriber controls (its patterns, its filter, how many
// there are) runs on the store's commit path or delays a publish's
// acknowledgement. A subscriber whose queue is full is cut off rather than
// allowed to slow the others: it resumes from the log with its cursor.
//
// Pattern subscriptions are indexed in a segment trie, so offering an event
// costs about the number of patterns that (nearly) match its topic, not the
// number of pattern subscriptions.
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
	Published   atomic.Uint64 // events handed to Publish or OnCommit
	Enqueued    atomic.Uint64 // (event, subscriber) deliveries queued
	CutOff      atomic.Uint64 // subscribers cut off for being slow
	Subscribers atomic.Int64  // live subscriptions now
	Overflows   atomic.Uint64 // batches OnCommit dropped as the fan-out queue was full
}

// Broker is the in-node fan-out. The zero value is not usable; use New.
type Broker struct {
	mu       sync.RWMutex
	exact    map[string]map[*Sub]struct{}
	patterns trie              // a walk also needs walkMu
	subs     map[*Sub]struct{} // every live subscription
	filters  *filter.Set
	taps     atomic.Pointer[[]func([]*event.Event)] // see Tap

	walkMu sync.Mutex // the scratch state of trie walks, and Sub.stamp
	stamp  uint64     // counts events offered; under walkMu

	fan fanout

	Stats Stats
}

// New returns an empty broker.
func New() *Broker {
	b := &Broker{
		exact:   make(map[string]map[*Sub]struct{}),
		subs:    make(map[*Sub]struct{}),
		filters: filter.NewSet(),
	}
	b.fan.room = sync.NewCond(&b.fan.mu)
	b.fan.maxEvents, b.fan.maxBytes = QueueEvents, QueueBytes
	return b
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
// returns are queued for it, and none published before, even those the
// fan-out has not reached yet (they were in the log before Subscribe
// returned). The caller must Close the Sub.
func (b *Broker) Subscribe(spec Spec) *Sub {
	limit := max(spec.Limit, 1)
	topics := spec.Topics
	patterns := spec.Patterns
	s := &Sub{b: b, limit: limit, notify: make(chan struct{}, 1), topics: topics, patterns: patterns,
		cut: make(chan struct{}), label: spec.Label}
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
	for _, p := range patterns {
		b.patterns.add(p, s)
	}
	b.subs[s] = struct{}{}
	b.fan.mu.Lock()
	s.from = b.fan.queued
	b.fan.mu.Unlock()
	b.mu.Unlock()
	b.Stats.Subscribers.Add(1)
	return s
}

// Publish queues events for the subscribers and returns; when the fan-out
// queue is full (QueueEvents, QueueBytes) it first waits for room, which the
// fan-out goroutine makes without waiting on any subscriber. It is for
// callers with a goroutine of their own, like the cross-node bridge, that
// would rather slow down than drop.
//
// Callers must give each topic's events in seq order and without gaps, and
// calls must not overlap for the same topic: the store's commit listener
// guarantees both on one node, and a cross-node broker must fill gaps from
// the log before it calls Publish. Filtered subscribers rely on this: an
// event they do not get was filtered out, not lost.
func (b *Broker) Publish(events []*event.Event) {
	b.accept(events, true)
}

// OnCommit is Publish for the store's commit listener (store.CommitListener):
// it never waits. When the fan-out queue is full it drops the events for
// the subscribers (the taps still see them) and queues a mark at which the
// fan-out goroutine cuts off every live subscriber, as each may have wanted
// one of them: they resume from the log, where the events are, with their
// cursors. Memory stays bounded and acknowledgements never wait on
// subscribers; the price of a fan-out that falls QueueEvents behind is a
// round of reconnections, not a stalled store.
func (b *Broker) OnCommit(events []*event.Event) {
	if !b.accept(events, false) {
		b.Stats.Overflows.Add(1)
	}
}

func (b *Broker) accept(events []*event.Event, wait bool) bool {
	b.Stats.Published.Add(uint64(len(events)))
	if taps := b.taps.Load(); taps != nil {
		for _, tap := range *taps {
			tap(events)
		}
	}
	if len(events) == 0 {
		return true
	}
	return b.enqueue(events, wait)
}

// deliver offers events to their subscribers: those naming the topic and
// those with a matching pattern, each once per event however many of its
// patterns match. It never blocks on a subscriber and allocates nothing per
// subscriber beyond queue growth. Only the fan-out goroutine calls it.
func (b *Broker) deliver(events []*event.Event, seq uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	b.walkMu.Lock()
	defer b.walkMu.Unlock()
	var n uint64
	for _, e := range events {
		b.stamp++
		var it *event.Item
		var res *filter.Result // evaluated on first need, once per event
		offer := func(s *Sub) {
			if s.stamp == b.stamp || s.from >= seq {
				return // offered already, or queued before s subscribed
			}
			s.stamp = b.stamp
			if s.filter != nil {
				if res == nil {
					res = b.filters.Eval(e)
				}
				if !res.Matches(s.filter) {
					return
				}
			}
			if it == nil {
				it = event.NewItem(e)
			}
			s.push(it)
			n++
		}
		for s := range b.exact[e.Topic] {
			offer(s)
		}
		if !b.patterns.empty() {
			for _, nd := range b.patterns.walk(e.Topic) {
				for s := range nd.subs {
					offer(s)
				}
			}
		}
	}
	b.Stats.Enqueued.Add(n)
}

// cutAll cuts off every live subscriber that subscribed before the drop
// marked seq (see OnCommit and batch).
func (b *Broker) cutAll(seq uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if s.from < seq {
			s.cutOff()
		}
	}
}

// CutOffPatterns cuts off every live subscriber that has a pattern, as if it
// had fallen behind: each resumes from the log with its cursor, which finds
// every matching topic (see hub). A cross-node broker calls it when its feed
// was interrupted, since it can re-read only the topics it knows, not
// topics first written meanwhile. It returns how many were cut off.
func (b *Broker) CutOffPatterns() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for s := range b.subs {
		if len(s.patterns) > 0 {
			s.cutOff()
			n++
		}
	}
	return n
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
	if b.patterns.empty() {
		return false
	}
	b.walkMu.Lock()
	defer b.walkMu.Unlock()
	for _, nd := range b.patterns.walk(topic) {
		if len(nd.subs) > 0 {
			return true
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
	for _, p := range s.patterns {
		b.patterns.remove(p, s)
	}
	delete(b.subs, s)
	b.mu.Unlock()
	if s.filter != nil {
		b.filters.Release(s.filter)
	}
	b.Stats.Subscribers.Add(-1)
}

// Sub is one live subscription's queue. Take and Ready are for one reader
// goroutine; push comes from the broker.
type Sub struct {
	b        *Broker
	limit    int
	notify   chan struct{}
	topics   []string         // guarded by b.mu
	patterns []*event.Pattern // as subscribed
	filter   *filter.Handle   // nil: every event
	stamp    uint64           // b.stamp when last offered an event; under b.walkMu
	from     uint64           // the fan-out seq when s subscribed (see batch)

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
		s.mu.Unlock()
		s.cutOff()
	} else {
		s.q = append(s.q, it)
		s.mu.Unlock()
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// cutOff drops the queue and makes Take return ErrSlow; the subscriber
// must resume from the log. It does nothing to a closed or cut-off Sub.
func (s *Sub) cutOff() {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = ErrSlow
	s.q = nil
	close(s.cut)
	s.mu.Unlock()
	s.b.Stats.CutOff.Add(1)
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
