// Package store defines the durable log every hubbub backend implements, and
// the records that live beside it. Backends live in subpackages
// (store/embedded on Pebble, store/redis) and all pass the conformance
// suite in store/storetest.
//
// The contract is shaped so that one Redis stream per topic, with a Lua
// script assigning seq and epoch and appending in one step, can implement
// it: nothing here needs a transaction across topics.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/hubbub/hubbub/event"
)

// ErrClosed is returned by every method once Close has been called.
var ErrClosed = errors.New("store: closed")

// Log is the per-topic event log.
//
// All methods are safe for concurrent use.
type Log interface {
	// Append stores a batch of drafts. Each (draft, topic) pair becomes one
	// Event with that topic's next seq (starting at 1, strictly increasing,
	// no gaps) and its current epoch (a new random one when the topic's log
	// is created), and the store's time. Per topic this is atomic: seqs are
	// assigned in the order the pairs appear in drafts and concurrent
	// Appends never interleave a gap.
	//
	// Append returns only when every event of the batch is durable (on disk
	// with fsync, or acknowledged by the backend's durable storage), and
	// only then does the backend hand the events to its commit listener.
	// Results come back in the same order as the (draft, topic) pairs.
	// Times are whole microseconds (what the wire shows, so a time a
	// client was told compares equal to the stored one) and never go
	// backwards within a topic; Read, Latest and Documents return exactly
	// the time Append returned.
	//
	// A draft whose IdempotencyKey was already stored on a topic within the
	// idempotency window stores nothing for that topic; its Result is the
	// first one, with Duplicate set. Drafts must already be validated
	// (event.Draft.Validate). On error nothing of the batch is acknowledged,
	// though some topics' events may have been stored; likewise when ctx is
	// cancelled after the batch was handed on, its events may still be
	// stored and reach the listener.
	Append(ctx context.Context, drafts []event.Draft) ([]Result, error)

	// Read returns events of one topic, oldest first, with the topic's head
	// as it was when the read was made. See Query for the range.
	Read(ctx context.Context, topic string, q Query) (Page, error)

	// Head returns the topic's epoch and the range of seqs it still holds.
	// A topic that has never been written has Epoch "" and First 1, Last 0.
	Head(ctx context.Context, topic string) (Head, error)

	// Latest returns the latest event stored with the given key on topic
	// (whatever its type: a "delete" is a tombstone and is returned), and
	// false when there is none. The view survives retention trimming of the
	// log itself; keys whose latest event is older than the age limit are
	// forgotten.
	Latest(ctx context.Context, topic, key string) (*event.Event, bool, error)

	// Close waits for in-flight appends and releases the store. It is safe
	// to call twice.
	Close() error
}

// Result is where one (draft, topic) pair was stored.
type Result struct {
	Topic     string
	Epoch     string
	Seq       uint64
	Time      time.Time
	Duplicate bool // an idempotency key repeated: nothing new was stored
}

// Position returns the result's place in the topic's log.
func (r Result) Position() event.Position { return event.Position{Epoch: r.Epoch, Seq: r.Seq} }

// Query selects a range of one topic's log: events with After < seq and,
// when Before is not 0, seq < Before. Of those, at most Limit (which must be
// positive) are returned: the oldest ones, or the newest ones when Newest is
// set. Events always come back oldest first.
type Query struct {
	After  uint64
	Before uint64
	Limit  int
	Newest bool
}

// Page is the answer to a Read.
type Page struct {
	Events []*event.Event
	Head   Head
}

// Head describes a topic's log: its epoch and the seqs it holds, First..Last
// inclusive. When the log holds nothing (never written, or everything was
// trimmed by age) First is Last+1.
type Head struct {
	Epoch string
	First uint64
	Last  uint64
}

// Retention bounds each topic's history. Zero fields mean no limit.
type Retention struct {
	MaxEvents int           // keep at most this many newest events per topic
	MaxAge    time.Duration // drop events older than this
}

// CommitListener receives the events this process's Appends stored
// (duplicates excluded), after they are durable and before Append returns.
// Calls are made in seq order per topic and never concurrently with each
// other. With a shared backend (Redis) other processes append too, so the
// seqs a listener sees per topic increase but may skip; and an append whose
// reply was lost is stored without being seen. Consumers that need every
// event fill gaps from the log (the cross-node bridge does). It must not
// block: it runs on the store's commit path.
type CommitListener func(events []*event.Event)

// DefaultIdempotencyWindow is how long an idempotency key is remembered.
const DefaultIdempotencyWindow = 24 * time.Hour

// Config is what every backend takes besides its address.
type Config struct {
	Retention Retention
	// IdempotencyWindow is how long idempotency keys are remembered
	// (DefaultIdempotencyWindow when zero).
	IdempotencyWindow time.Duration
	// OnCommit, if set, is told of every stored event (see CommitListener).
	OnCommit CommitListener
	// Now is the store's clock (time.Now when nil). Tests set it.
	Now func() time.Time
}

// Trimmer is implemented by backends that trim by age on demand as well as
// on their own schedule; tests use it to trim at a chosen time.
type Trimmer interface {
	// TrimExpired removes events, latest-by-key entries and idempotency
	// keys older than their limits as of Config.Now.
	TrimExpired(ctx context.Context) error
}

// TopicTrimmer is implemented by backends that trim one topic's history
// on demand (the admin API's POST /api/topics/trim).
type TopicTrimmer interface {
	// TrimTopic removes the events of topic older than its newest keep,
	// exactly as count retention does: the head's First moves up (the epoch
	// and Last stay), a cursor before it gets a "trimmed" reset, and the
	// latest-by-key view keeps every key. It never removes an event
	// appended while it runs, so at least the newest keep events as of the
	// call remain. A topic holding keep events or fewer, or never written,
	// is left as it is. It returns the head after the trim. Physical
	// deletion of the events may come later; no reader sees them after
	// TrimTopic returns.
	TrimTopic(ctx context.Context, topic string, keep uint64) (Head, error)
}

// ActivityIndex is implemented by backends that index topics by the time of
// their latest event, so that a pattern subscription can find, on resume,
// every topic that had events while it was away (see hub.Subscribe).
type ActivityIndex interface {
	// Active lists indexed topics in (Time, Topic) order, starting
	// strictly after the given entry (after.Topic "" starts at every
	// topic of after.Time), at most limit of them (limit must be
	// positive). Each topic is indexed once, with the time of its latest
	// event or later; an append moves its topic's entry forward, never
	// back, so a scan that pages on from the last entry it got meets
	// every topic whose entry was at or after its start when it began,
	// some perhaps twice.
	//
	// The index is never behind the log: once an event is readable,
	// its topic is listed with a time at or after the event's. (It may
	// be ahead: an entry can name a time at which nothing readable was
	// stored, as after a failed append.) A topic stays indexed as long
	// as its log exists, even when retention has emptied it.
	Active(ctx context.Context, after Activity, limit int) ([]Activity, error)

	// Watermark returns a time W such that every event that becomes
	// readable after Watermark returns has a time later than W. So, once
	// a caller has called Watermark and then read (or been sent) what
	// was readable, nothing with a time at or before W can still appear.
	// W is as late as the backend can promise; it may lag the clock (by
	// a backend's stated allowance for clock skew between servers).
	Watermark(ctx context.Context) (time.Time, error)
}

// Activity is one entry of an ActivityIndex: a topic and the time of its
// latest event (or later, see ActivityIndex.Active).
type Activity struct {
	Time  time.Time
	Topic string
}

// DocumentLister is implemented by backends that can list a topic's
// latest-by-key view (the document subscriptions of the WebSocket transport
// and GET /documents use it).
type DocumentLister interface {
	// Documents returns the latest event of each key of topic whose key
	// sorts after the given one ("" for the first), in key order, at most
	// limit of them. Like Latest, it includes tombstones (type "delete"),
	// leaves out keys whose latest event is older than the age limit, and
	// shows only durable events.
	Documents(ctx context.Context, topic, after string, limit int) ([]*event.Event, error)
}
