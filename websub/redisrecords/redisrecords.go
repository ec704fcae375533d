// Package redisrecords keeps websub subscription records in Redis, so that
// several hubbub nodes sharing one Redis (and one key prefix) share one set
// of subscriptions: every node sees every other node's Puts, Updates and
// Deletes on its next read.
//
// It needs Redis 2.8.9 or later (ZRANGEBYLEX); hubbub's other Redis
// backends need 6.2.
//
// # Key layout
//
// <P> is the key prefix given to Open (the deployment's Redis prefix, e.g.
// "hubbub"). Every subscription key carries the hash tag {subs}, so all of
// them live in one hash slot and the scripts below, which touch a record,
// the id index and topic sets together, stay on one slot (on Redis Cluster
// every subscription is then on one node). The changes channel is a plain
// Pub/Sub channel, which a cluster carries to every node.
//
//	<P>:websub:{subs}:s:<id>     hash: j (the JSON of a websub.Subscription),
//	                             t (its LogTopic, for re-indexing) and h
//	                             (websub.CallbackHost of its callback)
//	<P>:websub:{subs}:hosts      hash: callback host -> number of records
//	                             with that h, for CountHost (a record
//	                             written before h existed is counted from
//	                             its next write)
//	<P>:websub:{subs}:ids        sorted set, all scores 0: every id, for List
//	                             paging in id order (ZRANGEBYLEX)
//	<P>:websub:{subs}:t:<topic>  set: the ids whose LogTopic is <topic>, for
//	                             ListByTopic and Count
//	<P>:websub:fetch:<topic>     string: the JSON of a websub.FetchState
//	<P>:websub:{subs}:v          hash: id -> the JSON of a websub.Verification
//	<P>:websub:{subs}:vids       sorted set, all scores 0: the ids of :v, for
//	                             ListVerifications paging in id order
//
// # Atomicity
//
// Put, Delete and the write of Update are each one Lua script (record, id
// index and topic sets change together, so no reader sees one without the
// other). Update is optimistic: it reads the record, calls fn on a copy and
// writes the result with a script that compares the stored JSON with the
// JSON it read (compare-and-set); if another node (or goroutine) changed the
// record in between, it reads again and calls fn again. fn may therefore run
// more than once, as websub.Records allows. List and ListByTopic read the
// index and the records in one script, so a page is a consistent snapshot.
//
// # Cost
//
// ListByTopic is one round trip (a script doing SMEMBERS and an HGET per
// member, O(number of the topic's subscriptions) on the server). Count
// answers from a per-node cache of earlier SCARDs, kept true by the
// channel <P>:websub:changed: the write and delete scripts PUBLISH each
// topic whose set of subscriptions changed, and every Records drops that
// topic's cached count when the notice arrives (everything, when its
// subscription to the channel breaks; it then asks Redis each time until
// the subscription is back). So the websub hub's enqueuer, which asks
// Count for every topic written to, costs nothing for topics without
// webhook subscriptions. A subscription made on another node is counted
// here once its notice arrives (well under a millisecond on a LAN); the
// websub hub schedules a delivery check a second after each new
// subscription, so an event committed in that window is not left waiting
// for reconciliation. Neither method has a context or an error result:
// each call is bounded by an internal timeout (5 s), and a failure is
// logged and reported as no subscriptions (nil, 0).
//
// # Durability
//
// A mutation has returned once Redis has applied it; it is exactly as
// durable as the server's persistence makes it ("appendonly yes" with
// "appendfsync always" for the websub.Records guarantee). The client never
// retries a command by itself (MaxRetries -1), like hubbub's other Redis
// backends.
package redisrecords

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/websub"
)

const (
	// hotTimeout bounds each ListByTopic and Count call, which get no
	// context from their caller.
	hotTimeout = 5 * time.Second
	// maxUpdateAttempts bounds Update's optimistic retries.
	maxUpdateAttempts = 1000
	// maxCachedCounts bounds the Count cache; it starts over when full.
	maxCachedCounts = 100_000
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("redisrecords: closed")

// Records is the Redis implementation of websub.Records. It is safe for
// concurrent use, and several Records (on several nodes) may share one
// Redis and prefix.
type Records struct {
	rdb   goredis.UniversalClient
	log   *slog.Logger
	subP  string // "<P>:websub:{subs}:s:"
	topP  string // "<P>:websub:{subs}:t:"
	idsK  string // "<P>:websub:{subs}:ids"
	hostK string // "<P>:websub:{subs}:hosts"
	fetch string // "<P>:websub:fetch:"
	verK  string // "<P>:websub:{subs}:v"
	vidsK string // "<P>:websub:{subs}:vids"
	// changes is the Pub/Sub channel "<P>:websub:changed": the scripts
	// publish each LogTopic whose set of subscriptions changed.
	changes string

	write, del, list, byTopic, listVerifs *goredis.Script

	// counts caches Count while watching is true (see watch).
	cmu      sync.Mutex
	counts   map[string]int
	gen      uint64          // bumped by every invalidation
	watching bool            // subscribed to changes: the cache may be used
	ps       *goredis.PubSub // the changes subscription; Close closes it
	stop     context.CancelFunc
	watched  chan struct{} // closed when watch has returned

	// mu is held for reading by every call that uses rdb, and for writing
	// by Close.
	mu     sync.RWMutex
	closed bool
}

var _ websub.Records = (*Records)(nil)

// writeLua stores a record and re-indexes it, and publishes on the changes
// channel each LogTopic whose set of subscriptions changed.
// KEYS: record, ids, topic set of the new LogTopic, hosts.
// ARGV: topic-set key prefix, id, JSON, LogTopic, mode ("put" or "cas"),
// expected JSON (cas only), changes channel, callback host.
// Returns 1 when written, 0 when cas found another JSON, -1 when cas found
// no record.
const writeLua = `
local old = redis.call('HMGET', KEYS[1], 'j', 't', 'h')
if ARGV[5] == 'cas' then
  if not old[1] then return -1 end
  if old[1] ~= ARGV[6] then return 0 end
end
if old[2] and old[2] ~= ARGV[4] then
  redis.call('SREM', ARGV[1] .. old[2], ARGV[2])
  redis.call('PUBLISH', ARGV[7], old[2])
end
redis.call('HSET', KEYS[1], 'j', ARGV[3], 't', ARGV[4], 'h', ARGV[8])
if not old[3] then redis.call('HINCRBY', KEYS[4], ARGV[8], 1) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if redis.call('SADD', KEYS[3], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[7], ARGV[4])
end
return 1
`

// delLua removes a record and its index entries, and publishes its
// LogTopic on the changes channel.
// KEYS: record, ids, hosts. ARGV: topic-set key prefix, id, changes channel,
// expected JSON ("" for any).
// Returns 1 when it existed, 0 when it did not, -1 when its JSON was not
// the expected one (nothing deleted).
const delLua = `
local t = redis.call('HGET', KEYS[1], 't')
if not t then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'j') ~= ARGV[4] then return -1 end
local h = redis.call('HGET', KEYS[1], 'h')
redis.call('DEL', KEYS[1])
if h and redis.call('HINCRBY', KEYS[3], h, -1) <= 0 then redis.call('HDEL', KEYS[3], h) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', ARGV[1] .. t, ARGV[2])
redis.call('PUBLISH', ARGV[3], t)
return 1
`

// listLua returns the JSON of up to ARGV[3] records from ids (KEYS[1]) from
// ARGV[2] ("-" or "(<after>") on, in id order. ARGV[1]: record key prefix.
const listLua = `
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local j = redis.call('HGET', ARGV[1] .. id, 'j')
  if j then out[#out + 1] = j end
end
return out
`

// byTopicLua returns the JSON of every record in the topic set KEYS[1].
// ARGV[1]: record key prefix.
const byTopicLua = `
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local j = redis.call('HGET', ARGV[1] .. id, 'j')
  if j then out[#out + 1] = j end
end
return out
`

// listVerifsLua returns the JSON of up to ARGV[2] verifications from the
// ids KEYS[1] from ARGV[1] ("-" or "(<after>") on, in id order, reading
// the hash KEYS[2] (missing ones come back as false).
const listVerifsLua = `
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
`

// Open connects to the Redis at url (redis://[user:pass@]host:port/db, or
// rediss:// for TLS; see go-redis's ParseURL) and returns the records kept
// under prefix, which must be non-empty and without '{' or '}'. It fails if
// Redis cannot be reached within ctx. logger may be nil. The caller must
// Close it.
func Open(ctx context.Context, url string, prefix string, logger *slog.Logger) (*Records, error) {
	if prefix == "" || strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redisrecords: bad key prefix %q: must be non-empty, without '{' or '}'", prefix)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rdb, err := redisconn.New(url, 0) // never retries: a retried Delete could misreport whether it existed
	if err != nil {
		return nil, fmt.Errorf("redisrecords: %w", err)
	}
	base := prefix + ":websub:{subs}:"
	r := &Records{
		rdb:     rdb,
		log:     logger,
		subP:    base + "s:",
		topP:    base + "t:",
		idsK:    base + "ids",
		hostK:   base + "hosts",
		fetch:   prefix + ":websub:fetch:",
		verK:    base + "v",
		vidsK:   base + "vids",
		changes: prefix + ":websub:changed",
		counts:  make(map[string]int),
		watched: make(chan struct{}),
		write:   goredis.NewScript(writeLua),
		del:     goredis.NewScript(delLua),
		list:    goredis.NewScript(listLua),
		byTopic: goredis.NewScript(byTopicLua),

		listVerifs: goredis.NewScript(listVerifsLua),
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redisrecords: connect: %w", err)
	}
	for _, s := range []*goredis.Script{r.write, r.del, r.list, r.byTopic, r.listVerifs} {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("redisrecords: load script: %w", err)
		}
	}
	wctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.ps = rdb.Subscribe(wctx, r.changes)
	go r.watch(wctx)
	return r, nil
}

// Close closes the connection. Later calls fail with ErrClosed (ListByTopic
// and Count return nil and 0); Close may be called twice.
func (r *Records) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.stop()
	_ = r.ps.Close() // unblocks watch's Receive
	<-r.watched
	if err := r.rdb.Close(); err != nil {
		return fmt.Errorf("redisrecords: close: %w", err)
	}
	return nil
}

// acquire holds r.mu for reading; it fails after Close.
func (r *Records) acquire() error {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (r *Records) release() { r.mu.RUnlock() }

func checkID(s *websub.Subscription) error {
	if s.ID == "" || s.ID != websub.SubscriptionID(s.Topic, s.Callback) {
		return fmt.Errorf("redisrecords: subscription id %q does not match its topic and callback", s.ID)
	}
	return nil
}

// store runs writeLua; expected is used when cas is true.
func (r *Records) store(ctx context.Context, s websub.Subscription, cas bool, expected string) (int64, error) {
	v, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("redisrecords: encode: %w", err)
	}
	mode := "put"
	if cas {
		mode = "cas"
	}
	n, err := r.write.Run(ctx, r.rdb,
		[]string{r.subP + s.ID, r.idsK, r.topP + s.LogTopic, r.hostK},
		r.topP, s.ID, v, s.LogTopic, mode, expected, r.changes, websub.CallbackHost(s.Callback)).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisrecords: put %s: %w", s.ID, err)
	}
	return n, nil
}

// Put implements websub.Records.
func (r *Records) Put(ctx context.Context, s websub.Subscription) error {
	if err := checkID(&s); err != nil {
		return err
	}
	if err := r.acquire(); err != nil {
		return err
	}
	defer r.release()
	_, err := r.store(ctx, s, false, "")
	r.invalidate() // this node counts its own change at once
	return err
}

// invalidate drops the cached counts of topics, or every one when none is
// given (after a change this node made; others learn of it by the notice).
func (r *Records) invalidate(topics ...string) {
	r.cmu.Lock()
	r.gen++
	if len(topics) == 0 {
		clear(r.counts)
	}
	for _, t := range topics {
		delete(r.counts, t)
	}
	r.cmu.Unlock()
}

// getRaw returns the stored JSON of id ("" and false when there is none).
func (r *Records) getRaw(ctx context.Context, id string) (string, bool, error) {
	v, err := r.rdb.HGet(ctx, r.subP+id, "j").Result()
	if errors.Is(err, goredis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redisrecords: get %s: %w", id, err)
	}
	return v, true, nil
}

func decode(v string) (websub.Subscription, error) {
	var s websub.Subscription
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return s, fmt.Errorf("redisrecords: decode: %w", err)
	}
	return s, nil
}

// Get implements websub.Records.
func (r *Records) Get(ctx context.Context, id string) (websub.Subscription, bool, error) {
	if err := r.acquire(); err != nil {
		return websub.Subscription{}, false, err
	}
	defer r.release()
	v, ok, err := r.getRaw(ctx, id)
	if err != nil || !ok {
		return websub.Subscription{}, false, err
	}
	s, err := decode(v)
	if err != nil {
		return websub.Subscription{}, false, err
	}
	return s, true, nil
}

// Update implements websub.Records: read, fn, compare-and-set, retried
// (calling fn again on the fresh record) while another writer got in
// between. It gives up after maxUpdateAttempts conflicts in a row.
func (r *Records) Update(ctx context.Context, id string, fn func(s *websub.Subscription) error) (websub.Subscription, error) {
	if err := r.acquire(); err != nil {
		return websub.Subscription{}, err
	}
	defer r.release()
	for range maxUpdateAttempts {
		if err := ctx.Err(); err != nil {
			return websub.Subscription{}, err
		}
		raw, ok, err := r.getRaw(ctx, id)
		if err != nil {
			return websub.Subscription{}, err
		}
		if !ok {
			return websub.Subscription{}, fmt.Errorf("redisrecords: update %s: %w", id, websub.ErrNotFound)
		}
		old, err := decode(raw)
		if err != nil {
			return websub.Subscription{}, err
		}
		s, _ := decode(raw) // a separate copy for fn
		if err := fn(&s); err != nil {
			if errors.Is(err, websub.ErrNoChange) {
				return old, nil
			}
			return old, err
		}
		if s.ID != id {
			return old, fmt.Errorf("redisrecords: update %s: the id changed", id)
		}
		if err := checkID(&s); err != nil {
			return old, err
		}
		n, err := r.store(ctx, s, true, raw)
		if err != nil {
			return old, err
		}
		switch n {
		case 1:
			if s.LogTopic != old.LogTopic {
				r.invalidate(old.LogTopic, s.LogTopic)
			}
			return s, nil
		case -1: // deleted since we read it
			return websub.Subscription{}, fmt.Errorf("redisrecords: update %s: %w", id, websub.ErrNotFound)
		}
		// 0: changed since we read it; read again.
	}
	return websub.Subscription{}, fmt.Errorf("redisrecords: update %s: gave up after %d conflicting attempts", id, maxUpdateAttempts)
}

// Delete implements websub.Records.
func (r *Records) Delete(ctx context.Context, id string) (bool, error) {
	if err := r.acquire(); err != nil {
		return false, err
	}
	defer r.release()
	n, err := r.del.Run(ctx, r.rdb, []string{r.subP + id, r.idsK, r.hostK}, r.topP, id, r.changes, "").Int64()
	r.invalidate()
	if err != nil {
		return false, fmt.Errorf("redisrecords: delete %s: %w", id, err)
	}
	return n == 1, nil
}

// DeleteIf implements websub.Records: read, cond, and a delete that
// compares the stored JSON with the JSON read, retried (calling cond
// again) while another writer got in between.
func (r *Records) DeleteIf(ctx context.Context, id string, cond func(websub.Subscription) bool) (bool, error) {
	if err := r.acquire(); err != nil {
		return false, err
	}
	defer r.release()
	for range maxUpdateAttempts {
		raw, ok, err := r.getRaw(ctx, id)
		if err != nil || !ok {
			return false, err
		}
		s, err := decode(raw)
		if err != nil {
			return false, err
		}
		if !cond(s) {
			return false, nil
		}
		n, err := r.del.Run(ctx, r.rdb, []string{r.subP + id, r.idsK, r.hostK}, r.topP, id, r.changes, raw).Int64()
		if err != nil {
			return false, fmt.Errorf("redisrecords: delete %s: %w", id, err)
		}
		if n != -1 {
			r.invalidate()
			return n == 1, nil
		}
	}
	return false, fmt.Errorf("redisrecords: delete %s: gave up after %d conflicting attempts", id, maxUpdateAttempts)
}

// decodeAll decodes the JSON strings a script returned.
func decodeAll(vals []any) ([]websub.Subscription, error) {
	out := make([]websub.Subscription, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("redisrecords: unexpected reply element %T", v)
		}
		s, err := decode(str)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// List implements websub.Records: one script reading up to limit ids from
// the id index (ZRANGEBYLEX, O(log n + limit)) and their records.
func (r *Records) List(ctx context.Context, after string, limit int) ([]websub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := r.acquire(); err != nil {
		return nil, err
	}
	defer r.release()
	from := "-"
	if after != "" {
		from = "(" + after
	}
	vals, err := r.list.Run(ctx, r.rdb, []string{r.idsK}, r.subP, from, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisrecords: list: %w", err)
	}
	return decodeAll(vals)
}

// ListByTopic implements websub.Records. Unlike the interface's doc says,
// it does I/O: one round trip to Redis per call (see the package doc). On
// an error it logs and returns nil.
func (r *Records) ListByTopic(topic string) []websub.Subscription {
	if r.acquire() != nil {
		return nil
	}
	defer r.release()
	ctx, cancel := context.WithTimeout(context.Background(), hotTimeout)
	defer cancel()
	vals, err := r.byTopic.Run(ctx, r.rdb, []string{r.topP + topic}, r.subP).Slice()
	if err == nil {
		var out []websub.Subscription
		if out, err = decodeAll(vals); err == nil {
			return out
		}
	}
	r.log.Error("redisrecords: list by topic failed", "topic", topic, "err", err)
	return nil
}

// Count implements websub.Records. It answers from a cache of this
// node's earlier answers, which the changes channel keeps true (see
// watch); on a miss, or while the channel is not subscribed, it costs one
// SCARD. On an error it logs and returns 0.
func (r *Records) Count(topic string) int {
	if r.acquire() != nil {
		return 0
	}
	defer r.release()
	r.cmu.Lock()
	if n, ok := r.counts[topic]; ok && r.watching {
		r.cmu.Unlock()
		return n
	}
	gen, cache := r.gen, r.watching
	r.cmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), hotTimeout)
	defer cancel()
	n, err := r.rdb.SCard(ctx, r.topP+topic).Result()
	if err != nil {
		r.log.Error("redisrecords: count failed", "topic", topic, "err", err)
		return 0
	}
	if cache {
		r.cmu.Lock()
		// Only if nothing was invalidated meanwhile: the SCARD may have
		// read the set before a change whose notice came in since.
		if r.watching && r.gen == gen {
			if len(r.counts) >= maxCachedCounts {
				clear(r.counts)
			}
			r.counts[topic] = int(n)
		}
		r.cmu.Unlock()
	}
	return int(n)
}

// watch subscribes to the changes channel until ctx ends, and keeps the
// Count cache true: a notice drops its topic's entry; a broken connection
// turns the cache off (Count asks Redis) until the subscription is back,
// and then starts it empty. A change made on another node is seen here
// within the Pub/Sub delivery time; until then Count may answer the old
// number (websub covers that window; see its subscribe path).
func (r *Records) watch(ctx context.Context) {
	defer close(r.watched)
	for ctx.Err() == nil {
		msg, err := r.ps.Receive(ctx)
		r.cmu.Lock()
		r.gen++
		switch m := msg.(type) {
		case *goredis.Message:
			delete(r.counts, m.Payload)
		case *goredis.Subscription:
			clear(r.counts)
			r.watching = m.Kind == "subscribe"
		default:
			clear(r.counts)
			r.watching = false
		}
		r.cmu.Unlock()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("redisrecords: changes channel broken; counting from Redis until it is back", "err", err)
			select { // go-redis reconnects on the next Receive; do not spin
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// CountHost implements websub.HostCounter: one HGET.
func (r *Records) CountHost(ctx context.Context, host string) (int, error) {
	if err := r.acquire(); err != nil {
		return 0, err
	}
	defer r.release()
	n, err := r.rdb.HGet(ctx, r.hostK, host).Int()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisrecords: count host %s: %w", host, err)
	}
	return n, nil
}

var _ websub.HostCounter = (*Records)(nil)

// Len returns the number of subscriptions.
func (r *Records) Len(ctx context.Context) (int, error) {
	if err := r.acquire(); err != nil {
		return 0, err
	}
	defer r.release()
	n, err := r.rdb.ZCard(ctx, r.idsK).Result()
	if err != nil {
		return 0, fmt.Errorf("redisrecords: len: %w", err)
	}
	return int(n), nil
}

// FetchState implements websub.Records.
func (r *Records) FetchState(ctx context.Context, topic string) (websub.FetchState, bool, error) {
	var st websub.FetchState
	if err := r.acquire(); err != nil {
		return st, false, err
	}
	defer r.release()
	v, err := r.rdb.Get(ctx, r.fetch+topic).Bytes()
	if errors.Is(err, goredis.Nil) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("redisrecords: fetch state of %q: %w", topic, err)
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, false, fmt.Errorf("redisrecords: decode fetch state of %q: %w", topic, err)
	}
	return st, true, nil
}

// PutFetchState implements websub.Records.
func (r *Records) PutFetchState(ctx context.Context, topic string, st websub.FetchState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("redisrecords: encode fetch state: %w", err)
	}
	if err := r.acquire(); err != nil {
		return err
	}
	defer r.release()
	if err := r.rdb.Set(ctx, r.fetch+topic, b, 0).Err(); err != nil {
		return fmt.Errorf("redisrecords: put fetch state of %q: %w", topic, err)
	}
	return nil
}

// PutVerification implements websub.Records: the record and its id in one
// MULTI.
func (r *Records) PutVerification(ctx context.Context, v websub.Verification) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("redisrecords: encode verification: %w", err)
	}
	if err := r.acquire(); err != nil {
		return err
	}
	defer r.release()
	_, err = r.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, r.verK, v.ID, b)
		p.ZAdd(ctx, r.vidsK, goredis.Z{Member: v.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisrecords: put verification %s: %w", v.ID, err)
	}
	return nil
}

// DeleteVerification implements websub.Records: the record and its id in
// one MULTI.
func (r *Records) DeleteVerification(ctx context.Context, id string) error {
	if err := r.acquire(); err != nil {
		return err
	}
	defer r.release()
	_, err := r.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HDel(ctx, r.verK, id)
		p.ZRem(ctx, r.vidsK, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisrecords: delete verification %s: %w", id, err)
	}
	return nil
}

// ListVerifications implements websub.Records: one script reading up to
// limit ids (ZRANGEBYLEX) and their records.
func (r *Records) ListVerifications(ctx context.Context, after string, limit int) ([]websub.Verification, error) {
	if limit <= 0 {
		return nil, ctx.Err()
	}
	if err := r.acquire(); err != nil {
		return nil, err
	}
	defer r.release()
	from := "-"
	if after != "" {
		from = "(" + after
	}
	vals, err := r.listVerifs.Run(ctx, r.rdb, []string{r.vidsK, r.verK}, from, limit).Slice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redisrecords: list verifications: %w", err)
	}
	out := make([]websub.Verification, 0, len(vals))
	for _, x := range vals {
		str, ok := x.(string)
		if !ok {
			continue // an id without its record: cannot happen, both change in one MULTI
		}
		var v websub.Verification
		if err := json.Unmarshal([]byte(str), &v); err != nil {
			return nil, fmt.Errorf("redisrecords: decode verification: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}
