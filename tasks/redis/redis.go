// Package redis is the shared backend of package tasks: a tasks.Queue kept
// in Redis, so that several hubbub nodes share one queue. Webhook deliveries
// for one subscription then run on one node at a time (the running guard of
// a (kind, key) is in Redis), survive the death of the node running them
// (its lease ends and another node's Claim makes the task due again with
// Attempt+1) and are not lost when a node dies (every acknowledged change
// is in Redis before the call returns).
//
// It needs Redis 6.2 or later. It passes the conformance suite in
// tasks/taskstest with Backend.ReleasesLeasesOnOpen false: unlike
// tasks/embedded, Open never releases leases, since they may belong to
// other nodes that are alive; leases of dead nodes end by themselves.
//
// # Key layout
//
// <P> is the key prefix (WithPrefix, DefaultPrefix when unset). Every key
// of a kind K carries the hash tag {<tag>}, where <tag> is the CRC-32 (IEEE)
// of K in 8 lower-case hex digits, so a kind is one hash slot and every
// script runs unchanged on Redis Cluster (kinds whose CRCs collide share a
// slot, and nothing else). The tag is also the last 8 digits of every task
// id (the place where tasks.IDGen puts random bytes), so the methods that
// get only an id (Get, Complete, Retry, Extend, Dead) find the task's slot
// from the id. Times are unix nanoseconds as 16 hex digits with the sign
// bit flipped (encTime), so string order is time order, exactly: sorted-set
// scores (doubles) would lose the nanoseconds.
//
//	<P>:tasks:{<tag>}:t:<id>       hash: one task in any state. Fields k
//	                               (kind), y (key), p (payload), s (state:
//	                               1 pending, 2 running, 3 dead), a
//	                               (attempt), e (last error), r (runAt), l
//	                               (lease end, while running), x (dead at)
//	<P>:tasks:{<tag>}:<K>:due      sorted set, all scores 0: "<runAt><id>"
//	                               per pending task, read with ZRANGEBYLEX
//	<P>:tasks:{<tag>}:<K>:lease    sorted set, all scores 0: "<leaseEnd><id>"
//	                               per running task
//	<P>:tasks:{<tag>}:<K>:dead     sorted set, all scores 0: "<id>" per dead
//	                               task (id order is creation order)
//	<P>:tasks:{<tag>}:<K>:pending  hash: dedup key -> id of the pending task
//	                               holding it
//	<P>:tasks:{<tag>}:<K>:running  hash: dedup key -> id of the running task
//	                               holding it (the running guard)
//	<P>:tasks:{<tag>}:<K>:lastid   string: the greatest id of the kind, so
//	                               ids of a kind increase across nodes and
//	                               restarts and never collide
//	<P>:tasks:kinds                set: every kind ever enqueued (for Stats)
//	<P>:tasks:ready                Pub/Sub channel: "<node> <K>" when a task
//	                               of K may have become claimable
//
// The dedup and running entries are fields of a per-kind hash rather than
// one SET NX key each (as in the research notes): the scripts are atomic,
// so NX buys nothing, and the fixed set of per-kind keys is easy to list.
// The kinds set is the one key outside a kind's slot; it is written by a
// separate command before a Queue's first Enqueue of a kind (and again if
// the script reports the kind's keys were missing), and is only an index:
// Stats reads it, nothing else.
//
// # Atomicity
//
// Every operation that changes anything is one Lua script on one kind's
// slot (see scripts.go): Enqueue (dedup, move earlier, new id), Claim
// (release ended leases, then lease due tasks in RunAt order, ties in id
// order, skipping keys a running task holds, with ZRANGEBYLEX ... LIMIT
// inside the script), Complete, Retry (with merging), Extend and Dead. The
// scripts build the task hash keys they touch from ids found inside them
// (Claim cannot know them beforehand); those keys share the hash tag of
// KEYS[1], so they are in the slot the script runs on. Scripts are never
// retried by the client (MaxRetries -1): a network error fails the call,
// whose change may or may not have happened, as with any remote queue.
//
// # Time and leases
//
// Every time is the calling node's clock (WithClock), passed to the
// scripts; Redis's own clock is not used. A lease ends at the claiming
// node's now+lease; another node treats it as ended when its own clock
// passes that time, so node clocks must agree to well within a lease
// (NTP). Ended leases are released by the next Claim of the kind on any
// node (Attempt+1, LastError "lease expired"), and NextDue reports the
// first lease end, so every node's Runner wakes for it.
//
// Claim releases every ended lease of the kind in its script; their number
// is bounded by the tasks running at once (the nodes' Concurrency), so the
// script stays short. Skipping pending tasks whose key is running costs at
// most one step per running task, as at most one task per key is pending.
//
// # Durability
//
// A change is acknowledged once its script has returned: it is in Redis's
// memory, as durable as the server's persistence makes it ("appendonly
// yes" with "appendfsync always" for no loss on a Redis crash). A hubbub
// node's death loses nothing: its tasks are in Redis, and its leases end.
//
// # Notification
//
// Queue implements tasks.Notifier: each script that makes a task claimable
// (enqueued, moved earlier, retried, released, or its key freed by the end
// of a run) PUBLISHes "<node> <kind>" on the ready channel. Once a listener
// is registered with OnReady, the Queue subscribes to that channel and
// calls its listeners for the messages of other nodes (its own changes are
// told to its listeners directly), so a Runner on any node wakes at once.
// Messages lost while the subscription reconnects are covered by the
// Runner's MaxSleep polling.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/tasks"
)

// DefaultPrefix is the key prefix when WithPrefix is not given.
const DefaultPrefix = "hubbub"

const (
	subscribeTimeout = 2 * time.Second
)

// Limits on what a key can hold (as in tasks/embedded).
const (
	maxKindLen = 255
	maxKeyLen  = 4096
)

type options struct {
	prefix string
	logger *slog.Logger
	now    func() time.Time
}

// Option tunes Open.
type Option func(*options)

// WithPrefix sets the prefix of every key (DefaultPrefix when unset). It must
// not be empty nor contain '{' or '}'. Nodes sharing a queue use the same
// prefix; tests use a fresh one each.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithClock sets the clock that decides what is due and when leases end
// (time.Now when unset). Every node must use a clock close to the others'.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets where the queue logs (slog.Default when unset).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Queue is the Redis tasks.Queue. It also implements tasks.Notifier. It is
// safe for concurrent use; any number of Queues, in any number of
// processes, may share one Redis and prefix.
type Queue struct {
	rdb     goredis.UniversalClient
	now     func() time.Time
	log     *slog.Logger
	prefix  string // "<P>:tasks:"
	kindsK  string
	chanK   string
	node    string // random, tells this Queue's messages from others'
	scripts scripts
	ids     tasks.IDGen

	indexed sync.Map // kind -> struct{}: SADDed to kindsK by this Queue

	// closeMu is held for reading by every call that uses rdb, and for
	// writing by Close.
	closeMu   sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	lisMu     sync.Mutex
	listeners map[int]func(string)
	nextLis   int
	sub       *goredis.PubSub // set by the first OnReady
	subDone   chan struct{}   // closed when the subscriber goroutine returns
}

var (
	_ tasks.Queue    = (*Queue)(nil)
	_ tasks.Notifier = (*Queue)(nil)
)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db, or
// rediss:// for TLS; see go-redis's ParseURL for the query options) and
// returns the queue. It fails if Redis cannot be reached within ctx. It
// changes nothing in Redis: leases of running tasks stay (see the package
// doc). The caller must Close it.
func Open(ctx context.Context, url string, opts ...Option) (*Queue, error) {
	o := options{prefix: DefaultPrefix, logger: slog.Default(), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.prefix == "" || strings.ContainsAny(o.prefix, "{}") {
		return nil, fmt.Errorf("redis tasks: bad key prefix %q: must be non-empty, without '{' or '}'", o.prefix)
	}
	rdb, err := redisconn.New(url, 0) // never retries: a retried script could enqueue or claim twice
	if err != nil {
		return nil, fmt.Errorf("redis tasks: %w", err)
	}
	p := o.prefix + ":tasks:"
	q := &Queue{
		rdb:       rdb,
		now:       o.now,
		log:       o.logger,
		prefix:    p,
		kindsK:    p + "kinds",
		chanK:     p + "ready",
		node:      newNodeID(),
		scripts:   newScripts(),
		listeners: make(map[int]func(string)),
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis tasks: connect: %w", err)
	}
	for _, s := range q.scripts.all() {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("redis tasks: load script: %w", err)
		}
	}
	return q, nil
}

// Close stops the notification subscription, waits for the calls in
// progress and closes the client. Later calls fail with tasks.ErrClosed;
// Close may be called again and returns the first call's result. Leases
// this Queue holds stay: they end by themselves.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.lisMu.Lock()
		sub, done := q.sub, q.subDone
		q.sub = nil
		q.lisMu.Unlock()
		if sub != nil {
			_ = sub.Close()
			<-done
		}
		q.closeMu.Lock()
		q.closed = true
		q.closeMu.Unlock()
		if err := q.rdb.Close(); err != nil {
			q.closeErr = fmt.Errorf("redis tasks: close: %w", err)
		}
	})
	return q.closeErr
}

// enter checks ctx and takes closeMu for reading; on success the caller
// must call q.closeMu.RUnlock.
func (q *Queue) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		return tasks.ErrClosed
	}
	return nil
}

// OnReady implements tasks.Notifier. The first call subscribes to the
// ready channel and waits (up to 2 s) for Redis to confirm, so that changes
// other nodes make after it returns are told too.
func (q *Queue) OnReady(fn func(kind string)) (cancel func()) {
	q.lisMu.Lock()
	id := q.nextLis
	q.nextLis++
	q.listeners[id] = fn
	start := q.sub == nil && q.subDone == nil
	if start {
		q.closeMu.RLock()
		if !q.closed {
			q.sub = q.rdb.Subscribe(context.Background(), q.chanK)
			q.subDone = make(chan struct{})
			// Wait for the confirmation, so that changes made by other
			// nodes after OnReady returns are told.
			ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
			if _, err := q.sub.Receive(ctx); err != nil {
				q.log.Warn("tasks: subscribe to ready channel (will retry)", "err", err)
			}
			cancel()
			go q.receive(q.sub, q.subDone)
		}
		q.closeMu.RUnlock()
	}
	q.lisMu.Unlock()
	return func() {
		q.lisMu.Lock()
		delete(q.listeners, id)
		q.lisMu.Unlock()
	}
}

// receive tells the listeners of other nodes' messages until sub is
// closed. go-redis resubscribes by itself after a reconnect.
func (q *Queue) receive(sub *goredis.PubSub, done chan struct{}) {
	defer close(done)
	for msg := range sub.Channel(goredis.WithChannelSize(64)) {
		node, kind, ok := strings.Cut(msg.Payload, " ")
		if !ok || node == q.node {
			continue
		}
		q.notify(kind)
	}
}

// notify calls every listener with kind.
func (q *Queue) notify(kind string) {
	q.lisMu.Lock()
	fns := make([]func(string), 0, len(q.listeners))
	for _, fn := range q.listeners {
		fns = append(fns, fn)
	}
	q.lisMu.Unlock()
	for _, fn := range fns {
		fn(kind)
	}
}

// tagOf is the hash tag of kind's keys: its CRC-32 in 8 hex digits.
func tagOf(kind string) string {
	return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(kind)))
}

// base is the prefix of every key with hash tag tag: "<P>:tasks:{tag}:".
func (q *Queue) base(tag string) string { return q.prefix + "{" + tag + "}:" }

// header is the ARGV every script starts with (see scripts.go).
func (q *Queue) header(tag string, extra int) []any {
	a := make([]any, 3, 3+extra)
	a[0], a[1], a[2] = q.base(tag), q.chanK, q.node
	return a
}

// encTime formats t as 16 hex digits whose string order is time order.
func encTime(t time.Time) string {
	return fmt.Sprintf("%016x", uint64(t.UnixNano())^(1<<63))
}

// decTime parses what encTime made.
func decTime(s string) (time.Time, error) {
	u, err := strconv.ParseUint(s, 16, 64)
	if err != nil || len(s) != 16 {
		return time.Time{}, fmt.Errorf("redis tasks: corrupt time %q", s)
	}
	return time.Unix(0, int64(u^(1<<63))), nil
}

// newNodeID returns a random id for a Queue (16 hex digits).
func newNodeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

func validKind(kind string) error {
	if kind == "" || len(kind) > maxKindLen {
		return fmt.Errorf("%w: kind must be 1 to %d bytes", tasks.ErrInvalid, maxKindLen)
	}
	return nil
}
