// Package cluster joins several hubbub nodes that share one Redis: the
// Bridge carries every stored event from Redis Pub/Sub into this node's
// broker, in seq order and without gaps, and the Registry keeps the list of
// live nodes from their heartbeats.
//
// # Fan-out
//
// The Redis store publishes each script call's events on one of a fixed set
// of channels (store/redis: Channel, FanoutChannels). Every node subscribes
// to all of them, so it sees every topic's events, pattern subscriptions
// included, in the order Redis ran the scripts. A node's own events come by
// the same path (the store's commit listener is not used in Redis mode): one
// path, one order, so each seq reaches the broker once, and gap repair is the
// exception rather than the rule when several nodes write one topic.
//
// Per topic the Bridge remembers the epoch and the last seq it handed to the
// broker. A message whose first seq is not last+1 is a gap: the missing
// range is read from the log (store.Log.Read) and delivered before it. A
// message of another epoch is delivered as it is (the hub's Subscription
// turns an epoch change into a reset). When the Pub/Sub connection is lost
// and comes back, nothing tells what was missed, so every topic with local
// interest is re-read from its last delivered seq to the head. A topic with
// local interest but no remembered state (no event of it was seen since its
// subscribers came) is given the newest page (256 events) of its log;
// subscribers drop what they already have.
//
// Gaps are repaired only for topics with local subscribers; others are
// handed to the broker as they come (nobody here receives them, but the
// broker's taps see every event).
//
// State is kept for topics with local subscribers and for topics seen in the
// last StateIdle; the rest is forgotten, so memory follows local interest.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// Feed is the source of published events: the Redis store.
type Feed interface {
	// Subscribe returns a Pub/Sub connection subscribed to every channel
	// of Channels; the client re-subscribes after reconnecting.
	Subscribe(ctx context.Context) *goredis.PubSub
	// Channels lists the channels events are published on.
	Channels() []string
}

// Target is where the Bridge delivers: the node's broker.
type Target interface {
	// Publish takes each topic's events in seq order without gaps (an
	// epoch change aside); calls never overlap.
	Publish(events []*event.Event)
	// HasSubscribers reports local interest in topic.
	HasSubscribers(topic string) bool
	// Topics lists the concrete topics with local subscribers.
	Topics() []string
	// CutOffPatterns makes every live pattern subscriber reconnect and
	// resume from the log with its cursor; it returns how many.
	CutOffPatterns() int
}

// Tuning.
const (
	pageSize       = 256             // events per log read
	maxPages       = 4096            // bound on one repair (about a million events)
	receiveTimeout = time.Second     // idle wait before a ping
	staleAfter     = 5 * time.Second // no answer to pings for this long: reconnect
	readTimeout    = 5 * time.Second // one repair's deadline
	housekeeping   = 500 * time.Millisecond
	maxBackoff     = time.Second
	// StateIdle is how long the state of a topic without local
	// subscribers is kept after its last event.
	StateIdle = 30 * time.Second
)

// Stats are running totals, safe to read at any time.
type Stats struct {
	Messages  atomic.Uint64 // Pub/Sub messages received
	Repairs   atomic.Uint64 // gaps filled from the log
	Resyncs   atomic.Uint64 // (re)subscriptions after which interested topics were re-read
	Corrupt   atomic.Uint64 // messages that could not be decoded
	Connected atomic.Bool   // subscribed to every channel now
}

// Options tune NewBridge.
type Options struct {
	Logger *slog.Logger                             // slog.Default when nil
	Decode func(msg []byte) ([]*event.Event, error) // decodes one message (required)
}

// Bridge feeds a Target from a Feed, repairing gaps from a log. Run it
// once; everything else is internal to its goroutine.
type Bridge struct {
	feed   Feed
	log    store.Log
	target Target
	logger *slog.Logger
	decode func([]byte) ([]*event.Event, error)
	nchan  int

	topics map[string]*topicState // owned by Run's goroutine
	lastHK time.Time

	ready     chan struct{}
	readyOnce sync.Once

	Stats Stats
}

// topicState is what the Bridge knows of one topic.
type topicState struct {
	epoch string
	last  uint64    // last seq handed to the target
	seen  time.Time // last message or repair
	// broken: events may be missing and the log must be re-read from
	// last before anything else of the topic is delivered.
	broken bool
	// fresh: no event of the topic was seen; the newest page is delivered.
	fresh bool
}

// NewBridge returns a Bridge; start it with Run.
func NewBridge(feed Feed, log store.Log, target Target, opts Options) *Bridge {
	l := opts.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Bridge{
		feed: feed, log: log, target: target, logger: l, decode: opts.Decode,
		nchan:  len(feed.Channels()),
		topics: make(map[string]*topicState),
		ready:  make(chan struct{}),
	}
}

// Ready is closed once the Bridge has first subscribed to every channel;
// events stored after that reach the target.
func (br *Bridge) Ready() <-chan struct{} { return br.ready }

// Run receives and delivers until ctx is done, reconnecting (with backoff)
// whenever the connection is lost. It returns when ctx is done.
func (br *Bridge) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps := br.feed.Subscribe(ctx)
		err := br.receive(ctx, ps)
		_ = ps.Close()
		br.lost(err)
		if ctx.Err() != nil {
			return
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (br *Bridge) lost(err error) {
	if br.Stats.Connected.Swap(false) && err != nil {
		br.logger.Warn("fan-out: lost the Redis Pub/Sub connection; events from other nodes wait until it is back", "err", err)
	}
}

// receive reads one Pub/Sub connection (go-redis re-dials it after errors)
// until ctx is done or it stays silent past staleAfter.
func (br *Bridge) receive(ctx context.Context, ps *goredis.PubSub) error {
	lastHeard := time.Now()
	backoff := 50 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, receiveTimeout)
		if ctx.Err() != nil {
			return nil
		}
		br.housekeep(ctx)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(lastHeard) > staleAfter {
					return fmt.Errorf("no answer from Redis for %v", time.Since(lastHeard).Round(time.Second))
				}
				_ = ps.Ping(ctx)
				continue
			}
			// Redis unreachable or the connection broke: the next
			// Receive re-dials and re-subscribes.
			br.lost(err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			lastHeard = time.Now()
			continue
		}
		lastHeard = time.Now()
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if (m.Kind == "ssubscribe" || m.Kind == "subscribe") && m.Count == br.nchan {
				br.subscribed(ctx)
			}
		case *goredis.Message:
			br.onMessage(ctx, []byte(m.Payload))
		}
	}
}

// subscribed runs once every channel is (re)subscribed: whatever was
// published while the connection was down is read from the log. Topics the
// Bridge has no state for cannot be re-read that way (a pattern subscriber
// may never have seen them, and they may be new): after a reconnection,
// pattern subscribers are cut off, and their resume finds every matching
// topic with events after their cursor.
func (br *Bridge) subscribed(ctx context.Context) {
	br.Stats.Connected.Store(true)
	if br.Stats.Resyncs.Add(1) > 1 {
		if n := br.target.CutOffPatterns(); n > 0 {
			br.logger.Info("fan-out: pattern subscribers asked to resume after the Pub/Sub connection came back", "subscribers", n)
		}
	}
	for topic, st := range br.topics {
		if !br.target.HasSubscribers(topic) {
			delete(br.topics, topic)
			continue
		}
		st.broken = true
	}
	for _, topic := range br.target.Topics() {
		if br.topics[topic] == nil {
			br.topics[topic] = &topicState{broken: true, fresh: true, seen: time.Now()}
		}
	}
	br.retryBroken(ctx)
	br.readyOnce.Do(func() { close(br.ready) })
	br.logger.Info("fan-out: subscribed to Redis Pub/Sub", "channels", br.nchan, "topics_resynced", len(br.topics))
}

// housekeep retries broken topics and forgets idle state, at most every
// housekeeping interval.
func (br *Bridge) housekeep(ctx context.Context) {
	now := time.Now()
	if now.Sub(br.lastHK) < housekeeping {
		return
	}
	br.lastHK = now
	if br.Stats.Connected.Load() {
		br.retryBroken(ctx)
	}
	for topic, st := range br.topics {
		if !st.broken && now.Sub(st.seen) > StateIdle && !br.target.HasSubscribers(topic) {
			delete(br.topics, topic)
		}
	}
}

// retryBroken re-reads every broken topic; it stops at the first read that
// fails (Redis is likely down) and is tried again later.
func (br *Bridge) retryBroken(ctx context.Context) {
	for topic, st := range br.topics {
		if !st.broken {
			continue
		}
		if !br.target.HasSubscribers(topic) {
			delete(br.topics, topic)
			continue
		}
		var err error
		if st.fresh {
			err = br.fillNewest(ctx, topic, st)
		} else {
			err = br.fill(ctx, topic, st, 0)
		}
		if err != nil {
			br.logger.Warn("fan-out: re-reading a topic from the log failed; retrying", "topic", topic, "err", err)
			return
		}
		st.broken, st.fresh, st.seen = false, false, time.Now()
	}
}

// onMessage handles one Pub/Sub message: one topic's consecutive events.
func (br *Bridge) onMessage(ctx context.Context, payload []byte) {
	br.Stats.Messages.Add(1)
	evs, err := br.decode(payload)
	if err != nil {
		br.Stats.Corrupt.Add(1)
		br.logger.Error("fan-out: undecodable message dropped", "err", err, "bytes", len(payload))
		return
	}
	if len(evs) == 0 {
		return
	}
	br.accept(ctx, evs)
}

// accept delivers one topic's events (consecutive, one epoch), filling a gap
// before them from the log.
func (br *Bridge) accept(ctx context.Context, evs []*event.Event) {
	topic, epoch := evs[0].Topic, evs[0].Epoch
	st := br.topics[topic]
	if st == nil {
		st = &topicState{epoch: epoch, last: evs[0].Seq - 1}
		br.topics[topic] = st
	}
	st.seen = time.Now()
	if st.broken {
		return // in the log: the retry reads it
	}
	interested := br.target.HasSubscribers(topic)
	if epoch != st.epoch {
		// A new epoch (Redis lost the topic's log): as it is.
		st.epoch, st.last = epoch, evs[0].Seq-1
	}
	i := 0
	for i < len(evs) && evs[i].Seq <= st.last {
		i++ // already delivered (by a repair)
	}
	evs = evs[i:]
	if len(evs) == 0 {
		return
	}
	if evs[0].Seq != st.last+1 && interested {
		br.Stats.Repairs.Add(1)
		if err := br.fill(ctx, topic, st, evs[0].Seq); err != nil {
			st.broken = true
			br.logger.Warn("fan-out: filling a gap from the log failed; retrying", "topic", topic,
				"after", st.last, "before", evs[0].Seq, "err", err)
			return
		}
		if st.epoch != epoch {
			return // the log moved to a newer epoch; its events follow
		}
		for len(evs) > 0 && evs[0].Seq <= st.last {
			evs = evs[1:]
		}
		if len(evs) == 0 {
			return
		}
	}
	st.last = evs[len(evs)-1].Seq
	br.target.Publish(evs) // also for no local subscriber: the broker's taps count every event
}

// fill reads the topic's log after st.last and before before (0: up to the
// head) and delivers it. If the log is of another epoch, it delivers that
// epoch from its start instead.
func (br *Bridge) fill(ctx context.Context, topic string, st *topicState, before uint64) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	after := st.last
	for range maxPages {
		page, err := br.log.Read(ctx, topic, store.Query{After: after, Before: before, Limit: pageSize})
		if err != nil {
			return fmt.Errorf("fan-out: read %q after %d: %w", topic, after, err)
		}
		if page.Head.Epoch != st.epoch {
			if page.Head.Epoch == "" {
				return nil // the log is gone and nothing new was stored
			}
			st.epoch, st.last, after, before = page.Head.Epoch, 0, 0, 0
			continue
		}
		if evs := page.Events; len(evs) > 0 {
			if evs[0].Seq != after+1 {
				br.logger.Warn("fan-out: events were trimmed before they could be delivered", "topic", topic,
					"after", after, "first", evs[0].Seq)
			}
			st.last = evs[len(evs)-1].Seq
			br.target.Publish(evs)
		}
		if len(page.Events) < pageSize {
			return nil
		}
		after = st.last
	}
	return fmt.Errorf("fan-out: %q: more than %d pages behind", topic, maxPages)
}

// fillNewest delivers the newest page of a topic the Bridge has no state
// for, and takes its head as the state.
func (br *Bridge) fillNewest(ctx context.Context, topic string, st *topicState) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	page, err := br.log.Read(ctx, topic, store.Query{Limit: pageSize, Newest: true})
	if err != nil {
		return fmt.Errorf("fan-out: read newest of %q: %w", topic, err)
	}
	st.epoch, st.last = page.Head.Epoch, page.Head.Last
	if len(page.Events) > 0 {
		st.last = page.Events[len(page.Events)-1].Seq
		br.target.Publish(page.Events)
	}
	return nil
}
