// Package redis is hubbub's shared store backend: the per-topic event log
// (store.Log and store.Trimmer) in Redis, so that several hubbub nodes can
// share it.
//
// It needs Redis 6.2 or later (XTRIM MINID, ZADD GT); from Redis 7 on,
// events are published with sharded Pub/Sub (SPUBLISH). It runs on one
// Redis server or on a Redis Cluster (a redis+cluster:// URL; see
// internal/redisconn).
//
// # Key layout
//
// Every key of a topic T carries the hash tag {T'}, where T' is T with '%',
// '{' and '}' percent-encoded, so all of a topic's keys live in one hash
// slot and each script below runs unchanged on Redis Cluster. <P> is the key
// prefix (WithPrefix, "hubbub" by default).
//
//	<P>:{T'}:log         stream: one entry per event, ID "<seq>-0", fields
//	                     t (time, unix microseconds) and b (the body: every
//	                     other field of the event, see appendBody)
//	<P>:{T'}:meta        hash: epoch, first, last (the head) and time (the
//	                     topic's latest time, unix microseconds)
//	<P>:{T'}:latest      hash: event key -> "<seq> <time> <epoch>\n" + body
//	<P>:{T'}:keys        sorted set (all scores 0): the keys of latest, for
//	                     listing them in key order
//	<P>:{T'}:idem:<key>  string "<time> <seq> <epoch>", expiring (PX) after
//	                     the idempotency window
//	<P>:events:<i>       the channels new events are published on, i in
//	                     0..FanoutChannels-1 (see Channel)
//	<P>:topics           sorted set: topic -> time of its latest event (unix
//	                     µs), the activity index (store.ActivityIndex) and
//	                     the age sweep's list of topics
//
// New events are published on one of FanoutChannels fixed channels,
// "<P>:events:<i>" with i = FNV-1a(T) mod FanoutChannels (see Channel), so a
// node learns of every topic's events by subscribing to a fixed set of
// channels (Subscribe), pattern subscriptions included. On Redis Cluster a
// sharded channel has a hash slot of its own, which the append script (on
// its topic's slot) may not publish on; there the store publishes with
// plain PUBLISH, which the cluster bus carries to every node, so a
// subscriber connected to any node hears every topic.
//
// The topics index is the one key outside a topic's slot. It must never be
// behind the log (a resume would miss the topic): on one server the append
// script updates it itself, declaring the key, atomically with the events;
// on a cluster, where a script may touch one slot only, the store writes a
// topic's entry first (indexLua, an "intent": an entry without events, or
// ahead of them, is harmless), 2 s ahead of the clock, and appends to the
// topic for the next second without writing it again; the append script
// refuses (nothing stored) an append the entry does not cover, and the
// store writes the entry and sends it again. Entries only move forward
// (ZADD GT); the age sweep removes those of topics whose keys are gone
// once they are older than the age limit. The index of a store written by
// an older version holds milliseconds for topics not appended to since;
// they sort as long past, which only a cursor from before the upgrade
// could ask about, and those carry no watermark.
//
// # Appends
//
// One Lua script per topic (appendLua) reads the meta, assigns the next seqs
// and the time, XADDs the entries with explicit IDs, updates latest-by-key
// and idempotency keys, trims by count (XTRIM MINID), writes the meta and
// publishes the new events (SPUBLISH where the server has it, PUBLISH
// otherwise; see DecodeMessage for the payload), atomically. A topic
// without meta is new, or Redis lost its data: the script then starts a new
// epoch (a random candidate the client passes) at seq 1, so readers holding
// old cursors are told to reset.
//
// Concurrent Appends are group-committed: each (draft, topic) pair joins its
// topic's queue, and a dispatcher sends, for every topic with queued work
// and no call in flight, one script call carrying everything queued, many
// topics in one pipeline. So a node has at most one script call in flight
// per topic, which is what lets it call Config.OnCommit in seq order per
// topic: after a call returns, the listener is called (serialised by a
// mutex) before the topic's next call is sent.
//
// # Durability
//
// An append is acknowledged when its script has returned: it is then in
// Redis's memory, and exactly as durable as the server's persistence makes
// it. For events to survive a Redis restart, run Redis with
// "appendonly yes" and "appendfsync always" (every write fsynced before the
// reply; "everysec" may lose the last second). Without persistence (as in CI)
// a Redis restart loses everything and topics start new epochs. Redis sends
// no reply, to any client, before the write is in the AOF buffer and, with
// appendfsync always, fsynced, so no reader sees an event before it is
// acknowledged. Readers may see an event before the appending node's commit
// listener has been told of it.
//
// Writes are never retried by the client (a retried script could append
// twice): a network error fails the Append, whose events may or may not
// have been stored.
//
// # Time
//
// An event's time is the latest of Config.Now on the appending client (in
// microseconds), the topic's last time and the Redis server's clock when
// the script runs (on a cluster, less clusterLag), so a topic's times never
// decrease even across nodes with skewed clocks, and no event becomes
// readable with a time earlier than the server's clock (less clusterLag) at
// that moment: Watermark is then the server's clock just before, less
// clusterLag and clusterSkew (the most the servers' clocks may differ) on
// a cluster. Ages (retention, idempotency window) are judged by
// Config.Now; the PX expiry of idempotency keys only collects them.
package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/store"
)

// Defaults.
const (
	DefaultPrefix        = "hubbub"
	defaultTrimInterval  = time.Minute
	defaultAppendTimeout = 5 * time.Second
	defaultPipelines     = 16
)

type options struct {
	prefix        string
	logger        *slog.Logger
	trimInterval  time.Duration
	appendTimeout time.Duration
	pipelines     int
}

// Option tunes Open.
type Option func(*options)

// WithPrefix sets the prefix of every key (DefaultPrefix when unset). It must
// not contain '{' or '}'. Tests use a fresh prefix each.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithLogger sets where the store logs (slog.Default when unset).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTrimInterval sets how often the background sweep runs TrimExpired
// (every minute by default, and only when Retention.MaxAge is set); 0 or
// less disables it.
func WithTrimInterval(d time.Duration) Option { return func(o *options) { o.trimInterval = d } }

// WithAppendTimeout bounds each script round trip of Append (5 s by
// default); the caller's context may give up sooner.
func WithAppendTimeout(d time.Duration) Option { return func(o *options) { o.appendTimeout = d } }

// WithPipelines bounds how many append pipelines may be in flight at once
// (16 by default).
func WithPipelines(n int) Option { return func(o *options) { o.pipelines = n } }

// Store is the Redis log. It implements store.Log, store.Trimmer,
// store.TopicTrimmer, store.DocumentLister and store.ActivityIndex, and is
// safe for concurrent use.
type Store struct {
	rdb      goredis.UniversalClient
	channels []string // the fan-out channels, FanoutChannels of them
	cfg      store.Config
	now      func() time.Time
	window   time.Duration
	log      *slog.Logger
	prefix   string
	index    string // the topics index key
	pubCmd   string // PUBLISH or SPUBLISH
	cluster  bool   // a Redis Cluster: the index is written before the appends
	scripts  scripts
	timeout  time.Duration

	c committer

	stop      chan struct{} // closed by Close once every accepted append is answered
	swept     chan struct{} // closed when the sweeper has returned
	closeOnce sync.Once
	closeErr  error

	// closeMu is held for reading by every call that uses rdb outside the
	// committer, and for writing by Close while it closes rdb.
	closeMu sync.RWMutex
	closed  bool
}

var (
	_ store.Log            = (*Store)(nil)
	_ store.Trimmer        = (*Store)(nil)
	_ store.DocumentLister = (*Store)(nil)
	_ store.ActivityIndex  = (*Store)(nil)
)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db, or
// rediss:// for TLS; see go-redis's ParseURL for the query options) and
// returns the store. It fails if Redis cannot be reached within ctx, so a
// misconfigured address is noticed at start. The caller must Close it.
func Open(ctx context.Context, url string, cfg store.Config, opts ...Option) (*Store, error) {
	o := options{
		prefix:        DefaultPrefix,
		logger:        slog.Default(),
		trimInterval:  defaultTrimInterval,
		appendTimeout: defaultAppendTimeout,
		pipelines:     defaultPipelines,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.prefix == "" || strings.ContainsAny(o.prefix, "{}") {
		return nil, fmt.Errorf("redis store: bad key prefix %q: must be non-empty, without '{' or '}'", o.prefix)
	}
	if o.pipelines < 1 {
		o.pipelines = 1
	}
	rdb, err := redisconn.New(url, 0) // never retries: a retried script could append twice
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	chans := make([]string, FanoutChannels)
	for i := range chans {
		chans[i] = o.prefix + ":events:" + strconv.Itoa(i)
	}
	s := &Store{
		channels: chans,
		rdb:      rdb,
		cfg:      cfg,
		now:      cfg.Now,
		window:   cfg.IdempotencyWindow,
		log:      o.logger,
		prefix:   o.prefix,
		index:    o.prefix + ":topics",
		scripts:  newScripts(),
		timeout:  o.appendTimeout,
		stop:     make(chan struct{}),
		swept:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.window <= 0 {
		s.window = store.DefaultIdempotencyWindow
	}
	if err := s.prepare(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s.c.init(s, o.pipelines)
	go s.c.dispatchLoop()
	if cfg.Retention.MaxAge <= 0 {
		o.trimInterval = 0
	}
	go s.sweepLoop(o.trimInterval)
	return s, nil
}

// prepare checks the connection, loads the scripts and picks the publish
// command.
func (s *Store) prepare(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis store: connect: %w", err)
	}
	for _, sc := range s.scripts.all() {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redis store: load script: %w", err)
		}
	}
	s.pubCmd = "PUBLISH"
	if _, s.cluster = s.rdb.(*goredis.ClusterClient); s.cluster {
		// A sharded channel is in a hash slot, and the append script may
		// only publish on one in its topic's slot; the fixed channels are
		// not. PUBLISH reaches every node of a cluster (over the cluster
		// bus), whichever node a subscriber is connected to.
		return nil
	}
	info, err := s.rdb.Do(ctx, "COMMAND", "INFO", "SPUBLISH").Slice()
	if err != nil {
		return fmt.Errorf("redis store: command info: %w", err)
	}
	if len(info) == 1 && info[0] != nil {
		s.pubCmd = "SPUBLISH"
	}
	return nil
}

// FanoutChannels is how many channels the store publishes new events on.
// Every node of a deployment must use the same number.
const FanoutChannels = 16

// Channel returns the Pub/Sub channel the store publishes topic's new events
// on, as messages DecodeMessage reads: one of Channels, shared with other
// topics. Subscribe with SSUBSCRIBE when Sharded says so, else SUBSCRIBE.
func (s *Store) Channel(topic string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	return s.channels[h.Sum32()%FanoutChannels]
}

// Channels returns every channel the store publishes on, FanoutChannels of
// them.
func (s *Store) Channels() []string { return slices.Clone(s.channels) }

// Subscribe returns a Pub/Sub connection subscribed (SSUBSCRIBE or
// SUBSCRIBE, as Sharded says) to every channel of Channels: it receives the
// new events of every topic, as messages DecodeMessage reads. The client
// re-subscribes by itself after a reconnect; each (re)subscription shows as
// one *goredis.Subscription per channel from Receive. The caller must Close
// it.
func (s *Store) Subscribe(ctx context.Context) *goredis.PubSub {
	if s.Sharded() {
		return s.rdb.SSubscribe(ctx, s.channels...)
	}
	return s.rdb.Subscribe(ctx, s.channels...)
}

// Client returns the store's Redis client, for the cluster's other shared
// state (node heartbeats). It has retries off, like every store write.
func (s *Store) Client() goredis.UniversalClient { return s.rdb }

// Prefix returns the key prefix (see WithPrefix).
func (s *Store) Prefix() string { return s.prefix }

// Sharded reports whether events are published with SPUBLISH (Redis 7 and
// later) rather than PUBLISH.
func (s *Store) Sharded() bool { return s.pubCmd == "SPUBLISH" }

// base is the prefix of every key of topic: "<P>:{T'}:".
func (s *Store) base(topic string) string {
	return s.prefix + ":{" + escapeTopic(topic) + "}:"
}

// Close stops taking appends, finishes those already accepted, stops the
// background sweep, waits for reads in progress and closes the client.
// Later calls to any method return store.ErrClosed; Close itself may be
// called again and returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.c.shutdown()
		close(s.stop)
		<-s.c.dispatched
		<-s.swept
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		if err := s.rdb.Close(); err != nil {
			s.closeErr = fmt.Errorf("redis store: close: %w", err)
		}
	})
	return s.closeErr
}

// acquire holds closeMu for reading; release with s.closeMu.RUnlock.
func (s *Store) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// Head implements store.Log.
func (s *Store) Head(ctx context.Context, topic string) (store.Head, error) {
	if err := ctx.Err(); err != nil {
		return store.Head{}, err
	}
	if err := s.acquire(); err != nil {
		return store.Head{}, err
	}
	defer s.closeMu.RUnlock()
	v, err := s.rdb.HMGet(ctx, s.base(topic)+"meta", "epoch", "first", "last").Result()
	if err != nil {
		return store.Head{}, fmt.Errorf("redis store: head %q: %w", topic, err)
	}
	return parseHead(v)
}

// parseHead parses {epoch, first, last} as HMGET or a script returns them.
func parseHead(v []any) (store.Head, error) {
	if len(v) < 3 || v[0] == nil {
		return store.Head{First: 1}, nil
	}
	epoch, _ := v[0].(string)
	fs, _ := v[1].(string)
	ls, _ := v[2].(string)
	first, err1 := strconv.ParseUint(fs, 10, 64)
	last, err2 := strconv.ParseUint(ls, 10, 64)
	if epoch == "" || err1 != nil || err2 != nil {
		return store.Head{}, fmt.Errorf("topic meta %v: %w", v, errCorrupt)
	}
	return store.Head{Epoch: epoch, First: first, Last: last}, nil
}

var errBadLimit = errors.New("redis store: query limit must be positive")

// maxExact is the largest integer a Lua number holds exactly; seqs never get
// near it, so larger bounds are clamped to it.
const maxExact = 1 << 53

// Read implements store.Log. The head and the events come from one script,
// so they are consistent: every seq from Head.First to Head.Last is present.
func (s *Store) Read(ctx context.Context, topic string, q store.Query) (store.Page, error) {
	if q.Limit <= 0 {
		return store.Page{}, errBadLimit
	}
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	if err := s.acquire(); err != nil {
		return store.Page{}, err
	}
	defer s.closeMu.RUnlock()
	after, before := min(q.After, maxExact), q.Before
	if before > maxExact {
		before = 0
	}
	newest := "0"
	if q.Newest {
		newest = "1"
	}
	b := s.base(topic)
	v, err := s.scripts.read.Run(ctx, s.rdb, []string{b + "log", b + "meta"},
		strconv.FormatUint(after, 10), strconv.FormatUint(before, 10), strconv.Itoa(q.Limit), newest).Slice()
	if err != nil {
		return store.Page{}, fmt.Errorf("redis store: read %q: %w", topic, err)
	}
	h, err := parseHead(v)
	if err != nil {
		return store.Page{}, fmt.Errorf("redis store: read %q: %w", topic, err)
	}
	p := store.Page{Head: h}
	if len(v) < 4 {
		return p, nil
	}
	entries, _ := v[3].([]any)
	p.Events = make([]*event.Event, 0, len(entries))
	for _, raw := range entries {
		e, err := decodeEntry(topic, h.Epoch, raw)
		if err != nil {
			return store.Page{}, fmt.Errorf("redis store: read %q: %w", topic, err)
		}
		p.Events = append(p.Events, e)
	}
	return p, nil
}

// decodeEntry decodes one stream entry, {id, {"t", time, "b", body}}.
func decodeEntry(topic, epoch string, raw any) (*event.Event, error) {
	ent, ok := raw.([]any)
	if !ok || len(ent) != 2 {
		return nil, fmt.Errorf("stream entry: %w", errCorrupt)
	}
	id, _ := ent[0].(string)
	seqStr, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("stream entry id %q: %w", id, errCorrupt)
	}
	fields, _ := ent[1].([]any)
	var ts, body string
	var haveT, haveB bool
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "t":
			ts, haveT = val, true
		case "b":
			body, haveB = val, true
		}
	}
	if !haveT || !haveB {
		return nil, fmt.Errorf("stream entry %s: %w", id, errCorrupt)
	}
	t, err := parseMicros(ts)
	if err != nil {
		return nil, fmt.Errorf("stream entry %s: %w", id, err)
	}
	e := &event.Event{Topic: topic, Epoch: epoch, Seq: seq, Time: t}
	if err := decodeBody([]byte(body), e); err != nil {
		return nil, fmt.Errorf("stream entry %s: %w", id, err)
	}
	return e, nil
}

// Latest implements store.Log. An entry older than Retention.MaxAge (by
// Config.Now) is reported as absent even before the sweep removes it.
func (s *Store) Latest(ctx context.Context, topic, key string) (*event.Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := s.acquire(); err != nil {
		return nil, false, err
	}
	defer s.closeMu.RUnlock()
	v, err := s.rdb.HGet(ctx, s.base(topic)+"latest", key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis store: latest %q %q: %w", topic, key, err)
	}
	e, err := decodeLatest(topic, v)
	if err != nil {
		return nil, false, fmt.Errorf("redis store: latest %q %q: %w", topic, key, err)
	}
	if maxAge := s.cfg.Retention.MaxAge; maxAge > 0 && e.Time.Before(s.now().Add(-maxAge)) {
		return nil, false, nil
	}
	return e, true, nil
}

// documentsScan is how many keys one documents script call scans.
const documentsScan = 256

// Documents implements store.DocumentLister: keys in byte order, after the
// given one, at most limit, leaving out entries older than Retention.MaxAge.
func (s *Store) Documents(ctx context.Context, topic, after string, limit int) ([]*event.Event, error) {
	if limit <= 0 {
		return nil, errBadLimit
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	b := s.base(topic)
	keys := []string{b + "latest", b + "keys"}
	cutoff := ""
	if maxAge := s.cfg.Retention.MaxAge; maxAge > 0 {
		cutoff = strconv.FormatInt(s.now().Add(-maxAge).UnixMicro(), 10)
	}
	start := "-"
	if after != "" {
		start = "(" + after
	}
	var out []*event.Event
	for len(out) < limit {
		n := min(limit-len(out), documentsScan)
		v, err := s.scripts.documents.Run(ctx, s.rdb, keys, start, strconv.Itoa(n), cutoff).Slice()
		if err != nil {
			return nil, fmt.Errorf("redis store: documents %q: %w", topic, err)
		}
		if len(v) < 2 {
			return nil, fmt.Errorf("redis store: documents %q: %w", topic, errCorrupt)
		}
		for _, raw := range v[2:] {
			str, _ := raw.(string)
			e, err := decodeLatest(topic, []byte(str))
			if err != nil {
				return nil, fmt.Errorf("redis store: documents %q: %w", topic, err)
			}
			out = append(out, e)
		}
		done, _ := v[0].(int64)
		last, _ := v[1].(string)
		if done == 1 || last == "" {
			break
		}
		start = "(" + last
	}
	return out, nil
}
