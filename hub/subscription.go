package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/store"
)

// readPage is how many events one catch-up read asks the log for at most;
// Options.MaxPageBytes bounds it by bytes too.
const readPage = 256

// SubscribeRequest says what a live subscriber wants and where it stands.
type SubscribeRequest struct {
	// Topics are concrete topics and patterns. Topics that the Cursor
	// names and a pattern matches are resumed like concrete ones.
	Topics []string
	// Cursor holds the positions to resume from. Topics it does not name
	// start at their head (live only), less Last events.
	Cursor event.Cursor
	// Watermark is the cursor's watermark (event.ParseWatermarked), or
	// zero. With patterns, it makes the resume complete: every matching
	// topic the cursor does not name gets its events after Watermark (see
	// resume.go). Without one, such topics start live, as they always did.
	Watermark time.Time
	// Last asks, for topics without a position, for up to this many of
	// their newest stored events before live ones.
	Last int
	// Buffer bounds the live queue (0: the hub's SubscriberBuffer).
	Buffer int
	// Filter, when set, passes only the events it matches, from history
	// and live alike. The cursor still moves over events it skips in
	// history.
	Filter *filter.Filter
	// Fields, when set, projects each event's JSON data to these paths.
	Fields *filter.Projection
	// Documents, when set, makes this a document subscription of its one
	// topic (see DocumentsSpec); Cursor and Last are then not used.
	Documents *DocumentsSpec
	// Transport names the subscriber's transport, for statistics.
	Transport string
	// EventCoalesce makes the subscription honour the coalescing window a
	// publish asked for (event.Draft.Coalesce), as long-polls do.
	EventCoalesce bool
	// Entries asks for feed entries as normalised JSON (Options.Entries).
	Entries bool
	// Coalesce, when positive, merges updates to one document: once a
	// batch holds an event with a key, Next waits this long for more, then
	// passes on only the latest event of each (topic, key) it gathered.
	// The cursor moves past the versions left out.
	Coalesce time.Duration
}

// Message is one thing delivered to a subscriber: an event, or a reset
// notice that comes before the events that follow it.
type Message struct {
	Item  *event.Item
	Reset *Reset
	// Cursor is the subscription's whole cursor after this message, set
	// only for subscriptions with several topics or a pattern. For a
	// one-topic subscription it is "": the cursor is the item's own id (or
	// the reset's Cursor).
	Cursor string
}

// Subscription delivers a subscriber's events: first what the log holds
// after its cursor, then live events, each seq of each topic exactly once
// and in order. Live events that arrive out of step (a gap) are filled in
// from the log first. Next and Cursor are for one goroutine; Close may be
// called from any.
type Subscription struct {
	h       *Hub
	live    *broker.Sub
	single  string             // the one concrete topic, or ""
	filter  *filter.Filter     // nil: every event
	fields  *filter.Projection // nil: data as published
	projKey string
	entries bool      // feed entries as normalised JSON (Options.Entries)
	release func()    // ends the listening (Options.Interest); nil: none
	once    sync.Once // release runs once
	docs    *docState // set for document subscriptions
	// liveFiltered: the broker leaves out events the filter does not
	// match, so a jump in seq is not a gap.
	liveFiltered bool
	coalesce     time.Duration
	eventWindows bool          // honour events' own Coalesce
	backoff      time.Duration // after a failed log read; reset by a good one
	largest      int           // the largest wire JSON catch-up has delivered, sizing its reads
	acc          []Message     // coalescing: what Next has gathered

	pos      event.Cursor // position after the last delivered message, per topic
	catching []string     // topics that must be read from the log before live items
	inCatch  map[string]bool
	pending  []Message
	out      []Message
	liveBuf  []*event.Item

	// Pattern resume (resume.go).
	patterns  []*event.Pattern
	listed    map[string]bool      // topics the request names: always in the cursor
	watermark time.Time            // the cursor's watermark; zero: none
	times     map[string]time.Time // the time of the event at pos[t], where known
}

// Subscribe starts a subscription. It registers with the broker before
// reading any history, so nothing published meanwhile can fall between the
// two. With patterns it first takes the store's watermark, and with a
// cursor that has one it finds the matching topics that had events since
// (resume.go); the reads this costs happen here, before it returns. The
// caller must Close it.
func (h *Hub) Subscribe(ctx context.Context, req SubscribeRequest) (*Subscription, error) {
	if len(req.Topics) == 0 {
		return nil, event.Invalid("no topic given")
	}
	var concrete []string
	var patterns []*event.Pattern
	seen := make(map[string]bool, len(req.Topics))
	for _, t := range req.Topics {
		if seen[t] {
			continue
		}
		seen[t] = true
		if event.IsPattern(t) {
			p, err := event.CompilePattern(t)
			if err != nil {
				return nil, err
			}
			patterns = append(patterns, p)
			continue
		}
		if err := event.ValidateTopic(t); err != nil {
			return nil, err
		}
		concrete = append(concrete, t)
	}
	var release func()
	if h.opts.Interest != nil && len(concrete) > 0 {
		var err error
		if release, err = h.opts.Interest.Listen(ctx, concrete); err != nil {
			return nil, err
		}
	}
	s := &Subscription{h: h, pos: make(event.Cursor, len(concrete)), inCatch: map[string]bool{}, patterns: patterns, release: release}
	s.entries = req.Entries && h.opts.Entries != nil
	if req.Filter != nil && !req.Filter.IsZero() {
		s.filter = req.Filter
	}
	if req.Fields != nil {
		s.fields, s.projKey = req.Fields, "fields:"+req.Fields.Key()
	}
	s.coalesce = max(req.Coalesce, 0)
	s.eventWindows = req.EventCoalesce
	if len(concrete) == 1 && len(patterns) == 0 {
		s.single = concrete[0]
	}
	// Topics the cursor names that a pattern matches are resumed too.
	named := len(concrete)
	s.listed = make(map[string]bool, named)
	for _, t := range concrete {
		s.listed[t] = true
	}
	// A pattern subscription's cursor carries a watermark: taken before
	// registering, so that whatever becomes readable later (and so reaches
	// the broker after it) is later than it.
	ai, _ := h.log.(store.ActivityIndex)
	if ai != nil && len(patterns) > 0 && req.Documents == nil {
		w, err := ai.Watermark(ctx)
		if err != nil {
			s.end()
			return nil, fmt.Errorf("watermark: %w", err)
		}
		s.watermark, s.times = w, make(map[string]time.Time)
	}
	for t := range req.Cursor {
		if seen[t] {
			continue
		}
		for _, p := range patterns {
			if p.Match(t) {
				concrete = append(concrete, t)
				seen[t] = true
				break
			}
		}
	}
	slices.Sort(concrete[named:]) // map order made this part random
	buf := req.Buffer
	if buf <= 0 {
		buf = h.opts.SubscriberBuffer
	}
	brokerFilter := s.filter
	if req.Documents != nil {
		if s.single == "" {
			s.end()
			return nil, event.Invalid("a document subscription names exactly one topic")
		}
		// Updates to held documents must come through even when they no
		// longer match, so the subscription filters for itself.
		brokerFilter = nil
	}
	s.liveFiltered = brokerFilter != nil
	s.live = h.broker.Subscribe(broker.Spec{Topics: concrete, Patterns: patterns, Filter: brokerFilter, Limit: buf, Label: req.Transport})
	if req.Documents != nil {
		head, err := h.log.Head(ctx, s.single)
		if err == nil {
			s.pos[s.single] = event.Position{Epoch: head.Epoch, Seq: head.Last}
			err = s.startDocuments(ctx, s.single, req.Documents, head)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	for _, t := range concrete {
		head, err := h.log.Head(ctx, t)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("head of %q: %w", t, err)
		}
		if p, ok := req.Cursor[t]; ok {
			start, reset := checkPosition(t, p, head)
			if reset != nil {
				s.pending = append(s.pending, s.resetMessage(reset, start))
			}
			s.pos[t] = start
			s.catch(t)
			continue
		}
		held := head.Last + 1 - head.First
		n := min(uint64(max(req.Last, 0)), held)
		s.pos[t] = event.Position{Epoch: head.Epoch, Seq: head.Last - n}
		if n > 0 {
			s.catch(t)
		}
	}
	if !s.watermark.IsZero() && !req.Watermark.IsZero() {
		if err := s.resume(ctx, ai, req.Watermark); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// catch puts topic t among those to read from the log before live items.
func (s *Subscription) catch(t string) {
	if !s.inCatch[t] {
		s.inCatch[t] = true
		s.catching = append(s.catching, t)
	}
}

// Single returns the subscription's one concrete topic, or "" when it has
// several topics or a pattern.
func (s *Subscription) Single() string { return s.single }

// Cursor returns the cursor after everything delivered so far.
func (s *Subscription) Cursor() string {
	if s.single != "" {
		return s.pos.Encode(s.single)
	}
	return s.encode()
}

// CutOff is closed when the subscription is cut off for falling behind
// (Next then returns broker.ErrSlow once its messages are taken).
func (s *Subscription) CutOff() <-chan struct{} { return s.live.CutOff() }

// Close ends the subscription. Safe to call more than once.
func (s *Subscription) Close() {
	if s.live != nil {
		s.live.Close()
	}
	s.end()
}

// end tells Options.Interest that the listening ended, once.
func (s *Subscription) end() {
	if s.release != nil {
		s.once.Do(s.release)
	}
}

// Next blocks until at least one message is ready, tick fires, ctx is done,
// or the subscription ends, and returns every message ready now, in order.
// On a tick it returns no messages and no error (transports use it for
// heartbeats and time-outs; tick may be nil). The returned slice is valid
// until the next call. Errors: ctx's error, broker.ErrSlow when the
// subscriber fell behind its buffer and must reconnect with its cursor, or a
// log error.
func (s *Subscription) Next(ctx context.Context, tick <-chan time.Time) ([]Message, error) {
	msgs, err := s.next(ctx, tick)
	if err != nil || !hasKeyed(msgs) {
		return msgs, err
	}
	window := s.coalesce
	if s.eventWindows {
		for _, m := range msgs {
			if m.Item != nil && m.Item.Key != "" {
				window = max(window, m.Item.Coalesce)
			}
		}
	}
	if window <= 0 {
		return msgs, nil
	}
	// Gather what comes within the window, then keep the latest version
	// of each document. Messages are copied out: next reuses its slices.
	s.acc = append(s.acc[:0], msgs...)
	timer := time.NewTimer(window)
	defer timer.Stop()
	// History comes at once, so gathering stops at a page's worth of
	// bytes too: the rest comes with the next call.
	for used := msgBytes(msgs); used < s.h.opts.MaxPageBytes; {
		more, err := s.next(ctx, timer.C)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			break // deliver what was gathered; the error comes next time
		}
		if more == nil {
			break // the window closed
		}
		s.acc = append(s.acc, more...)
		used += msgBytes(more)
	}
	s.acc = coalesce(s.acc)
	return s.acc, nil
}

// msgBytes is the wire JSON size of the events in msgs.
func msgBytes(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		if m.Item != nil {
			n += len(m.Item.JSON())
		}
	}
	return n
}

func hasKeyed(msgs []Message) bool {
	for _, m := range msgs {
		if m.Item != nil && m.Item.Key != "" {
			return true
		}
	}
	return false
}

// coalesce keeps, of the keyed events in msgs, only the last one for each
// (topic, key), in place; other messages stay. Order is kept.
func coalesce(msgs []Message) []Message {
	return keepLatest(msgs, func(m Message) *event.Event {
		if m.Item == nil {
			return nil // a reset
		}
		return m.Item.Event
	})
}

// CoalesceEvents keeps, of the keyed events, only the last one for each
// (topic, key), in place; unkeyed events stay. Order is kept. Webhook
// delivery uses it for topics with a coalescing window.
func CoalesceEvents(events []*event.Event) []*event.Event {
	return keepLatest(events, func(e *event.Event) *event.Event { return e })
}

// keepLatest is the one coalescing rule: of the elements whose event has a
// key, keep the last per (topic, key); keep the others; keep the order.
func keepLatest[T any](xs []T, ev func(T) *event.Event) []T {
	type docID struct{ topic, key string }
	last := make(map[docID]int, len(xs))
	for i, x := range xs {
		if e := ev(x); e != nil && e.Key != "" {
			last[docID{e.Topic, e.Key}] = i
		}
	}
	out := xs[:0]
	for i, x := range xs {
		if e := ev(x); e != nil && e.Key != "" && last[docID{e.Topic, e.Key}] != i {
			continue
		}
		out = append(out, x)
	}
	clear(xs[len(out):])
	return out
}

// next is Next without coalescing.
func (s *Subscription) next(ctx context.Context, tick <-chan time.Time) ([]Message, error) {
	for {
		// A reset goes out together with the events that follow it, so a
		// long-poll gets both in one answer.
		if len(s.catching) > 0 && !s.pendingHasEvent() {
			if err := s.catchUp(ctx, s.catching[0]); err != nil {
				if retry, done := s.readFailed(ctx, tick, err); !retry {
					return nil, done
				}
			}
			continue
		}
		if len(s.pending) > 0 {
			s.out, s.pending = s.pending, s.out[:0]
			return s.out, nil
		}
		if len(s.catching) > 0 {
			if err := s.catchUp(ctx, s.catching[0]); err != nil {
				if retry, done := s.readFailed(ctx, tick, err); !retry {
					return nil, done
				}
			}
			continue
		}
		var err error
		s.liveBuf, err = s.live.Take(s.liveBuf[:0])
		if err != nil {
			return nil, err
		}
		if len(s.liveBuf) > 0 {
			for _, it := range s.liveBuf {
				s.onLive(it)
			}
			clear(s.liveBuf)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.live.Ready():
		case <-tick:
			return nil, nil
		}
	}
}

// readFailed handles a failed log read: the store may be down for a while
// (Redis restarting), and a live subscription must stay open through it.
// It waits with backoff (from 50 ms to 2 s) before the read is tried
// again, and returns retry=true then; a tick while waiting ends Next with
// no messages (heartbeats go on), and ctx ending ends it with ctx's error.
// Messages already gathered go out first, so nothing waits on the store.
func (s *Subscription) readFailed(ctx context.Context, tick <-chan time.Time, err error) (retry bool, nextErr error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	s.backoff = min(max(2*s.backoff, 50*time.Millisecond), 2*time.Second)
	s.h.logger.Warn("subscription: log read failed; retrying", "err", err, "in", s.backoff)
	t := time.NewTimer(s.backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-tick:
		return false, nil
	case <-t.C:
		return true, nil
	}
}

func (s *Subscription) pendingHasEvent() bool {
	for _, m := range s.pending {
		if m.Item != nil {
			return true
		}
	}
	return false
}

// catchUp reads one page of topic t from the log after its position: at
// most readPage events, and events whose wire JSON adds up to at most
// Options.MaxPageBytes (at least one). The read itself asks for as many
// events of the largest size seen so far as fit (16 before any is seen),
// so a log of large events is not read 256 at a time. When the page is
// short and wholly delivered, the topic has caught up and leaves
// s.catching.
func (s *Subscription) catchUp(ctx context.Context, t string) error {
	p := s.pos[t]
	maxBytes := s.h.opts.MaxPageBytes
	limit := readPage
	if s.largest > 0 {
		limit = min(limit, maxBytes/s.largest+1)
	} else {
		limit = min(limit, 16)
	}
	// A topic only a pattern names may leave the cursor once the time of
	// the event at its position is known (see droppable): read that event
	// too, if it is still held.
	q := store.Query{After: p.Seq, Limit: limit}
	learn := s.times != nil && !s.listed[t] && p.Seq > 0
	if learn {
		if _, ok := s.times[t]; ok {
			learn = false
		}
	}
	if learn {
		q.After, q.Limit = p.Seq-1, limit+1
	}
	page, err := s.h.log.Read(ctx, t, q)
	if err != nil {
		return fmt.Errorf("read %q: %w", t, err)
	}
	if learn && len(page.Events) > 0 && page.Events[0].Seq == p.Seq && page.Head.Epoch == p.Epoch {
		s.times[t] = page.Events[0].Time
	}
	if learn && len(page.Events) > 0 && page.Events[0].Seq <= p.Seq {
		page.Events = page.Events[1:]
	}
	s.backoff = 0
	start, reset := checkPosition(t, p, page.Head)
	if reset != nil {
		// The log changed under the cursor (trimmed, or a new epoch): say
		// so, then read again from the earliest position still held.
		s.pos[t] = start
		s.pending = append(s.pending, s.resetMessage(reset, start))
		return nil
	}
	s.pos[t] = start // adopts the epoch of a topic created since
	used, done := 0, 0
	for _, e := range page.Events {
		if s.filter != nil && s.docs == nil && !s.filter.Match(e) {
			s.pos[t] = e.Position() // passed over, not lost
			s.noteTime(e)
			done++
			continue
		}
		// Sized before projection, which only shrinks the data.
		it := event.NewItem(e)
		size := len(it.JSON())
		s.largest = max(s.largest, size)
		if used > 0 && used+size > maxBytes {
			break // the rest is read again next time
		}
		done++
		n := len(s.pending)
		s.deliver(it)
		if len(s.pending) > n {
			used += size
		}
	}
	if done == len(page.Events) && len(page.Events) < limit {
		s.catching = slices.DeleteFunc(s.catching, func(x string) bool { return x == t })
		delete(s.inCatch, t)
	}
	return nil
}

// onLive handles one event from the broker.
func (s *Subscription) onLive(it *event.Item) {
	p, known := s.pos[it.Topic]
	switch {
	case !known && !s.watermark.IsZero() && !it.Time.After(s.watermark):
		// From before the watermark: it was readable when this
		// subscription began, so it is either not wanted or already
		// delivered under a cursor that let the topic go (resume.go).
		return
	case !known:
		// A topic a pattern matched for the first time: it starts here.
		s.pos[it.Topic] = event.Position{Epoch: it.Epoch, Seq: it.Seq - 1}
	case s.inCatch[it.Topic]:
		return // the log read will cover it
	case p.Epoch != "" && it.Epoch != p.Epoch:
		// The topic's log was replaced: catch up, which tells of the reset.
		s.catch(it.Topic)
		return
	case it.Seq <= p.Seq:
		return // already delivered from the log
	case it.Seq != p.Seq+1 && !s.liveFiltered:
		// Something was missed: fill the gap from the log first. (When the
		// broker filters, it leaves out what does not match, and it gets
		// every event of a topic in order, so a jump is not a gap.)
		s.catch(it.Topic)
		return
	}
	s.deliver(it)
}

func (s *Subscription) deliver(it *event.Item) {
	s.pos[it.Topic] = it.Position()
	s.noteTime(it.Event)
	if s.docs != nil && !s.docWants(it.Event) {
		return
	}
	if s.entries {
		it = it.Derive("entries", func(e *event.Event) *event.Event {
			if n, ok := s.h.opts.Entries(e); ok {
				return n
			}
			return e
		})
	}
	if s.fields != nil {
		// Subscribers sharing a projection share its encodings too.
		it = it.Derive(s.projKey, func(e *event.Event) *event.Event {
			if d, err := s.fields.ApplyEvent(e); err == nil {
				e.Data = d
			}
			return e
		})
	}
	m := Message{Item: it}
	if s.single == "" {
		m.Cursor = s.encode()
	}
	s.pending = append(s.pending, m)
}

func (s *Subscription) resetMessage(r *Reset, start event.Position) Message {
	s.pos[r.Topic] = start
	if s.times != nil {
		delete(s.times, r.Topic) // the event there, if any, is unknown
	}
	m := Message{Reset: r}
	if s.single == "" {
		m.Cursor = s.encode()
	}
	return m
}
