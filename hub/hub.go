// Package hub ties the log and the broker together behind the API every
// transport uses: Publish, Retrieve and Subscribe. Subscribe implements the
// one "catch-up then live" algorithm (see subscription.go), so no transport
// handles history, gaps, duplicates or resets itself.
package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/store"
)

// Limits of Retrieve.
const (
	DefaultCount = 10
	MaxCount     = 1000
)

// Options tune a Hub. Zero values take the defaults shown.
type Options struct {
	SubscriberBuffer int // live events queued per subscriber before it is cut off (1024)
	Logger           *slog.Logger
	// Coalesce gives topics a default coalescing window (see
	// SubscribeRequest.Coalesce) for the deliveries that wait anyway:
	// long-polls and webhooks. The first rule whose pattern matches wins.
	Coalesce []CoalesceRule
	// MaxPageBytes bounds the wire JSON of the events one catch-up read
	// of a live subscription delivers (DefaultMaxPageBytes); at least one
	// event always goes, so catching up always progresses.
	MaxPageBytes int
	// Retention is the store's, so that a pattern resume can tell a topic
	// whose old events expired (nothing wanted was lost) from one whose
	// wanted events may be gone. Unset, every such doubt is told as a
	// "trimmed" reset.
	Retention store.Retention
	// ResumeScan bounds the activity-index entries one pattern resume
	// examines (DefaultResumeScan), ResumeTopics the topics it reads by
	// time and then the topics it names in "resume-limit" resets
	// (DefaultResumeTopics). See resume.go.
	ResumeScan, ResumeTopics int
	// Now is the hub's clock (time.Now when nil); tests set it with the
	// store's.
	Now func() time.Time
	// Interest, when set, is told of the concrete topics every
	// subscription (Subscribe) and read (Retrieve, unless Quiet) names,
	// before any history is read: the one place where hubbub learns that
	// someone listens to a topic (package follow starts following outside
	// feeds there). Its error refuses the request, returned as is.
	Interest Interest
	// Entries renders a feed entry event (a one-entry Atom, RSS or JSON
	// Feed document) as normalised JSON, for requests that ask for
	// Entries; ok false leaves the event as it is. nil: none is rendered.
	Entries func(e *event.Event) (out *event.Event, ok bool)
}

// Interest is told when subscribers start and stop listening to topics
// (see Options.Interest). It is called on the request's goroutine.
type Interest interface {
	// Listen is called with the concrete topics of a subscription or read.
	// It may block (to fetch a feed for the first time) for as long as
	// ctx allows, and should bound itself. On success, release must be
	// called exactly once when the listening ends (at once for a read);
	// on error, nothing is to be released.
	Listen(ctx context.Context, topics []string) (release func(), err error)
}

// Refusal is an error that tells the client why its request was refused
// and with which HTTP status (a 4xx); transports answer it as it is.
type Refusal struct {
	Status int
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// DefaultMaxPageBytes is Options.MaxPageBytes when it is zero.
const DefaultMaxPageBytes = 16 << 20

// CoalesceRule sets the coalescing window of the topics a pattern matches.
type CoalesceRule struct {
	Pattern *event.Pattern
	Window  time.Duration
}

// ParseCoalesceRule reads "PATTERN=DURATION", e.g. "docs/**=2s".
func ParseCoalesceRule(s string) (CoalesceRule, error) {
	pat, win, ok := strings.Cut(s, "=")
	if !ok {
		return CoalesceRule{}, fmt.Errorf("coalesce rule %q: want PATTERN=DURATION, e.g. docs/**=2s", s)
	}
	p, err := event.CompilePattern(pat)
	if err != nil {
		return CoalesceRule{}, fmt.Errorf("coalesce rule %q: %w", s, err)
	}
	d, err := time.ParseDuration(win)
	if err != nil || d <= 0 || d > time.Hour {
		return CoalesceRule{}, fmt.Errorf("coalesce rule %q: the window must be a duration from 1ms to 1h", s)
	}
	return CoalesceRule{Pattern: p, Window: d}, nil
}

// CoalesceWindow is the configured coalescing window for topics: the
// largest of their rules' windows (0 when none applies).
func (h *Hub) CoalesceWindow(topics []string) time.Duration {
	var w time.Duration
	for _, t := range topics {
		for _, r := range h.opts.Coalesce {
			if r.Pattern.Match(t) {
				w = max(w, r.Window)
				break
			}
		}
	}
	return w
}

// Hub is the core of hubbub. It is safe for concurrent use.
type Hub struct {
	log    store.Log
	broker *broker.Broker
	opts   Options
	logger *slog.Logger
}

// New returns a hub over a log and the broker that log's commit listener
// feeds (store.Config.OnCommit = b.OnCommit). The caller keeps ownership of
// both and closes them after the hub is no longer used.
func New(log store.Log, b *broker.Broker, opts Options) *Hub {
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPageBytes <= 0 {
		opts.MaxPageBytes = DefaultMaxPageBytes
	}
	if opts.ResumeScan <= 0 {
		opts.ResumeScan = DefaultResumeScan
	}
	if opts.ResumeTopics <= 0 {
		opts.ResumeTopics = DefaultResumeTopics
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Hub{log: log, broker: b, opts: opts, logger: opts.Logger}
}

// Broker returns the hub's broker (for its statistics).
func (h *Hub) Broker() *broker.Broker { return h.broker }

// Log returns the hub's log.
func (h *Hub) Log() store.Log { return h.log }

// Publish validates drafts and appends them to the log. It returns when the
// events are durable, with one result per (draft, topic) pair in order. A
// bad draft fails the whole call with an event.ValidationError before
// anything is stored.
func (h *Hub) Publish(ctx context.Context, drafts []event.Draft) ([]store.Result, error) {
	if len(drafts) == 0 {
		return nil, event.Invalid("nothing to publish")
	}
	for i := range drafts {
		if err := drafts[i].Validate(); err != nil {
			if len(drafts) > 1 {
				return nil, event.Invalid("event %d: %v", i, err)
			}
			return nil, err
		}
	}
	res, err := h.log.Append(ctx, drafts)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	return res, nil
}

// Reset tells a subscriber that events between its cursor and Cursor are
// gone (Reason "trimmed": removed by retention) or that the log it had a
// position in no longer exists (Reason "epoch", or "unknown-position" for a
// cursor ahead of the log). Delivery goes on from Cursor, the earliest
// position still held.
type Reset struct {
	Topic  string         `json:"topic"`
	Reason string         `json:"reason"`
	Cursor event.Position `json:"-"`
}

// Reset reasons.
const (
	ResetTrimmed = "trimmed"
	ResetEpoch   = "epoch"
	ResetUnknown = "unknown-position"
)

// checkPosition compares a cursor position with a topic's head. It returns
// where reading should start and, when the cursor cannot be honoured
// exactly, the Reset that says so.
func checkPosition(topic string, p event.Position, head store.Head) (event.Position, *Reset) {
	earliest := event.Position{Epoch: head.Epoch, Seq: head.First - 1}
	switch {
	case p.Epoch != "" && p.Epoch != head.Epoch:
		return earliest, &Reset{Topic: topic, Reason: ResetEpoch, Cursor: earliest}
	case p.Seq > head.Last:
		return earliest, &Reset{Topic: topic, Reason: ResetUnknown, Cursor: earliest}
	case p.Seq < head.First-1:
		return earliest, &Reset{Topic: topic, Reason: ResetTrimmed, Cursor: earliest}
	}
	return event.Position{Epoch: head.Epoch, Seq: p.Seq}, nil
}

// RetrieveRequest asks for stored events without waiting.
type RetrieveRequest struct {
	Topics []string     // concrete topics
	Cursor event.Cursor // with After: positions to read after
	// After set: the oldest Count events after the cursor's positions
	// (topics missing from it: from their start). Unset: the newest Count.
	After  bool
	Before event.Cursor // optional upper bounds (exclusive), per topic
	Count  int          // 1..MaxCount; 0 means DefaultCount
	// Filter keeps only matching events; at most MaxScan events of each
	// topic are examined per call, and the cursor moves over those
	// examined, so paging with it goes on where the scan stopped.
	Filter *filter.Filter
	// Fields projects the JSON data of the events returned.
	Fields *filter.Projection
	// MaxBytes, when positive, bounds the answer like Count does: events
	// are kept while the sum of their Size stays within it, the oldest
	// with After, else the newest, and the cursor is placed as for Count,
	// so paging on loses nothing. The first event is always kept (an
	// event alone may be larger), so paging always progresses. Each
	// topic's log is read only until MaxBytes of it are in hand.
	MaxBytes int
	// Size is an event's bytes in the answer (before projection, which
	// only shrinks it); nil means the length of its wire JSON.
	Size func(*event.Event) int
	// Entries asks for feed entries as normalised JSON (Options.Entries).
	Entries bool
	// Quiet reads without telling Options.Interest: the hub's own reads
	// (webhook deliveries), which are no sign of a listener.
	Quiet bool
}

// MaxScan bounds how many stored events one filtered Retrieve examines per
// topic.
const MaxScan = 10000

// RetrieveResult holds events oldest first (by time across topics, by seq
// within one), the cursor after them and any resets.
type RetrieveResult struct {
	Events []*event.Event
	Cursor event.Cursor
	Resets []Reset
}

// Retrieve reads history. With several topics, events are merged by time
// and the Count newest (or, with After, oldest) are kept; the cursor
// advances only over what is returned, so paging with it loses nothing.
func (h *Hub) Retrieve(ctx context.Context, req RetrieveRequest) (RetrieveResult, error) {
	count := req.Count
	if count <= 0 {
		count = DefaultCount
	}
	if count > MaxCount {
		return RetrieveResult{}, event.Invalid("count is more than %d", MaxCount)
	}
	if h.opts.Interest != nil && !req.Quiet {
		release, err := h.opts.Interest.Listen(ctx, req.Topics)
		if err != nil {
			return RetrieveResult{}, err
		}
		release()
	}
	out := RetrieveResult{Cursor: make(event.Cursor, len(req.Topics))}
	var budget *byteBudget
	if req.MaxBytes > 0 {
		budget = newByteBudget(req.MaxBytes, req.Size)
	}
	// For forward reads: per topic, how many events matched and the last
	// seq examined, to place the cursor once the merge has cut the list.
	matched := make(map[string]int, len(req.Topics))
	scannedTo := make(map[string]uint64, len(req.Topics))
	for _, t := range req.Topics {
		q := store.Query{Limit: count, Newest: !req.After}
		if b, ok := req.Before[t]; ok {
			q.Before = b.Seq
		}
		var start event.Position
		if req.After {
			head, err := h.log.Head(ctx, t)
			if err != nil {
				return RetrieveResult{}, fmt.Errorf("head of %q: %w", t, err)
			}
			var reset *Reset
			start, reset = req.Cursor[t], nil
			if _, given := req.Cursor[t]; given {
				start, reset = checkPosition(t, start, head)
			} else {
				start = event.Position{Epoch: head.Epoch, Seq: head.First - 1}
			}
			if reset != nil {
				out.Resets = append(out.Resets, *reset)
			}
			q.After = start.Seq
		}
		events, head, last, err := h.readFiltered(ctx, t, q, req.Filter, budget)
		if err != nil {
			return RetrieveResult{}, err
		}
		out.Events = append(out.Events, events...)
		matched[t], scannedTo[t] = len(events), last
		if budget != nil && len(req.Topics) > 1 {
			// Keep only what fits so far: the topics still to read need
			// not be read past the first event left out.
			sortByTime(out.Events)
			out.Events = budget.trim(out.Events, !req.After)
		}
		if !req.After {
			// The cursor after "the newest N" is the head, or, when reading
			// before a bound, the newest event returned.
			start = event.Position{Epoch: head.Epoch, Seq: head.Last}
			if q.Before != 0 {
				start.Seq = min(q.Before-1, head.Last)
				if len(events) > 0 {
					start.Seq = events[len(events)-1].Seq
				}
			}
		}
		out.Cursor[t] = start
	}
	if len(req.Topics) > 1 {
		sortByTime(out.Events)
		if len(out.Events) > count {
			if req.After {
				out.Events = out.Events[:count]
			} else {
				out.Events = out.Events[len(out.Events)-count:]
			}
		}
	}
	if budget != nil {
		out.Events = budget.cut(out.Events, !req.After)
	}
	if req.After {
		// A topic whose matches all made it into the answer moves past
		// everything examined; one cut short by the merge stops after the
		// last event returned (or stays put), so paging loses nothing.
		returned := make(map[string]int, len(req.Topics))
		for _, e := range out.Events {
			out.Cursor[e.Topic] = e.Position()
			returned[e.Topic]++
		}
		for _, t := range req.Topics {
			if returned[t] == matched[t] && scannedTo[t] > out.Cursor[t].Seq {
				out.Cursor[t] = event.Position{Epoch: out.Cursor[t].Epoch, Seq: scannedTo[t]}
			}
		}
	}
	if req.Entries && h.opts.Entries != nil {
		for i, e := range out.Events {
			if n, ok := h.opts.Entries(e); ok {
				out.Events[i] = n
			}
		}
	}
	if req.Fields != nil {
		for i, e := range out.Events {
			cp := *e
			if d, err := req.Fields.ApplyEvent(e); err == nil {
				cp.Data = d
			}
			out.Events[i] = &cp
		}
	}
	return out, nil
}

// sortByTime orders events from several topics by time, then topic, then
// seq.
func sortByTime(events []*event.Event) {
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Seq < b.Seq
	})
}

// readFiltered reads q from topic t, keeping only events f matches (all
// when f is nil) and reading on until q.Limit of them are found, the range
// ends, MaxScan events were examined, or (with a budget) the events kept
// reach the budget. It returns the events oldest first, the head, and, for
// forward reads, the seq of the last event examined (0 when none).
func (h *Hub) readFiltered(ctx context.Context, t string, q store.Query, f *filter.Filter, b *byteBudget) ([]*event.Event, store.Head, uint64, error) {
	if f != nil && f.IsZero() {
		f = nil
	}
	want := q.Limit
	var out []*event.Event
	var head store.Head
	var last uint64
	used := 0
	for scanned, pages := 0, 0; ; pages++ {
		switch {
		case f != nil:
			q.Limit = MaxCount
		default:
			q.Limit = want - len(out)
		}
		if b != nil {
			// Read no more than the budget is likely to take: as many of
			// the largest event seen as fit (32 before any is seen). Once
			// another topic has filled the answer, few of this one's may
			// fit: read 1, 2, 4... so that at most twice what is kept is
			// read.
			n := 32
			if b.largest > 0 {
				n = (b.max-used)/b.largest + 1
			}
			if !b.limit.IsZero() {
				n = min(n, 1<<min(pages, 16))
			}
			q.Limit = max(1, min(q.Limit, n))
		}
		page, err := h.log.Read(ctx, t, q)
		if err != nil {
			return nil, head, 0, fmt.Errorf("read %q: %w", t, err)
		}
		head = page.Head
		evs := page.Events
		if f == nil && b == nil {
			if len(evs) > 0 && !q.Newest {
				last = evs[len(evs)-1].Seq
			}
			return evs, head, last, nil
		}
		full := false
		take := func(e *event.Event) {
			out = append(out, e)
			if b != nil {
				used += b.size(e)
			}
			full = len(out) == want || b != nil && used >= b.max
		}
		if q.Newest {
			// Newest first, so the newest matches are kept.
			for i := len(evs) - 1; i >= 0 && !full; i-- {
				if b != nil && b.beyond(evs[i]) {
					full = true
					break
				}
				if f == nil || f.Match(evs[i]) {
					take(evs[i])
				}
			}
		} else {
			for _, e := range evs {
				if full {
					break
				}
				if b != nil && b.beyond(e) {
					full = true
					break
				}
				last = e.Seq
				if f == nil || f.Match(e) {
					take(e)
				}
			}
		}
		scanned += len(evs)
		if full || len(evs) < q.Limit || f != nil && scanned >= MaxScan {
			break
		}
		if q.Newest {
			q.Before = evs[0].Seq
		} else {
			q.After = evs[len(evs)-1].Seq
		}
	}
	if q.Newest {
		slices.Reverse(out)
	}
	return out, head, last, nil
}

// byteBudget bounds an answer by the bytes of its events.
type byteBudget struct {
	max   int
	sizef func(*event.Event) int
	sizes map[*event.Event]int // each event is sized once
	// largest is the largest size seen, to size reads.
	largest int
	// Once trim has left an event out, events past its time (after it,
	// or before it for newest) cannot make the answer: reads stop there.
	limit  time.Time
	newest bool
}

// beyond reports whether e lies past the first event trim left out.
func (b *byteBudget) beyond(e *event.Event) bool {
	switch {
	case b.limit.IsZero():
		return false
	case b.newest:
		return e.Time.Before(b.limit)
	}
	return e.Time.After(b.limit)
}

// trim is cut for events sorted by time, in place, remembering the time
// of the first event left out; the slots of those left out are cleared so
// they can be freed.
func (b *byteBudget) trim(events []*event.Event, newest bool) []*event.Event {
	kept := b.cut(events, newest)
	if len(kept) == len(events) {
		return events
	}
	b.newest = newest
	if newest {
		b.limit = events[len(events)-len(kept)-1].Time
		n := copy(events, kept)
		clear(events[n:])
		return events[:n]
	}
	b.limit = events[len(kept)].Time
	clear(events[len(kept):])
	return kept
}

func newByteBudget(max int, size func(*event.Event) int) *byteBudget {
	if size == nil {
		size = func(e *event.Event) int { return len(event.NewItem(e).JSON()) }
	}
	return &byteBudget{max: max, sizef: size, sizes: make(map[*event.Event]int)}
}

func (b *byteBudget) size(e *event.Event) int {
	n, ok := b.sizes[e]
	if !ok {
		n = b.sizef(e)
		b.sizes[e] = n
		b.largest = max(b.largest, n)
	}
	return n
}

// cut keeps of events (oldest first) the oldest, or with newest the
// newest, whose sizes add up to at most b.max, and always one.
func (b *byteBudget) cut(events []*event.Event, newest bool) []*event.Event {
	used := 0
	for i := range events {
		j := i
		if newest {
			j = len(events) - 1 - i
		}
		used += b.size(events[j])
		if used > b.max && i > 0 {
			if newest {
				return events[j+1:]
			}
			return events[:j]
		}
	}
	return events
}
