// Package embedded is hubbub's default store backend: a durable per-topic
// event log in a Pebble database on local disk (pure Go, no cgo).
//
// # Writes
//
// One committer goroutine owns every write. Append hands its drafts to it
// over a channel; the committer takes every request waiting at that moment,
// assigns seqs in arrival order, builds one Pebble batch (events, heads,
// latest-by-key entries, idempotency keys, count trimming) and applies it
// with Sync requested but without waiting for the fsync, so that the next
// batch can be built meanwhile and Pebble syncs several batches at once
// (group commit). A publisher goroutine takes the applied batches in order,
// waits until each is synced, then publishes the new heads to readers, calls
// Config.OnCommit with the batch's events in seq order, and only then
// answers the requests.
//
// Pebble makes a batch readable as soon as it is applied, before its fsync
// (even with a plain synced Commit). Readers therefore never trust what
// Pebble shows them alone: Read is bounded by the published head, and
// Latest waits until the entry it found is covered by the published head.
// So no reader sees an event that a crash could still lose.
//
// # Key layout
//
// Every key starts with a one-byte record kind. <topic> below is a 2-byte
// big-endian length followed by the topic's bytes, so one topic's keys are
// contiguous and never interleave with a topic that its name is a prefix of.
//
//	e<topic><seq: 8 bytes big-endian>  event (see appendEvent); a seq range is a key range
//	h<topic bytes, no length>          head: epoch, first and last seq (see encodeHead)
//	k<topic><key>                      latest event with that key, with its seq and epoch
//	i<topic><idempotency key>          time first stored (unix ns) and seq
//	a<time: 8 bytes big-endian><topic> the activity index: one entry per topic, at the
//	                                   time (unix µs) of its latest event (see activity.go)
//
// Events carry neither topic, seq nor epoch in their value: the key gives
// the first two and the topic's head the epoch, which never changes once the
// head exists (a topic whose whole log is trimmed keeps its head). A batch
// that appends to a topic also moves its activity entry (deleting the old
// key), so the index is exactly as durable as the events.
//
// # Time
//
// Each batch gets one time, in whole microseconds, from Config.Now but
// never earlier than the last time given (across the whole store and
// across reopening) nor than the last Watermark: see activity.go.
//
// # Retention
//
// Count trimming (Retention.MaxEvents) moves a head's First inside the
// append batch. The events below First are deleted physically later, with
// one range deletion per topic once enough have accumulated (and by every
// age sweep), after readers can no longer ask for them. Age trimming
// (Retention.MaxAge) and the expiry of idempotency keys and latest-by-key
// entries happen in TrimExpired, which a background goroutine runs every
// minute; lookups check ages themselves, so expiry is exact between sweeps.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/pebblelog"
	"github.com/hubbub/hubbub/store"
)

// FormatMajorVersion is the Pebble on-disk format this package creates and
// requires. Changing it is a data migration: Pebble upgrades in place but
// older binaries cannot open the result.
const FormatMajorVersion = pebble.FormatValueSeparation

// Default tuning. The workload is small sequential appends and reads of
// recent events, so a moderate memtable and cache are enough.
const (
	defaultMemTableSize = 32 << 20
	defaultCacheSize    = 64 << 20
	defaultTrimInterval = time.Minute
)

type options struct {
	fs           vfs.FS
	logger       *slog.Logger
	cacheSize    int64
	memTableSize uint64
	trimInterval time.Duration
}

// Option tunes Open.
type Option func(*options)

// WithFS makes the store use fs instead of the operating system's file
// system; tests pass vfs.NewCrashableMem to simulate crashes.
func WithFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// WithLogger sets where the store and Pebble log (slog.Default when unset).
// Pebble's informational messages are logged at debug level.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCacheSize sets Pebble's block cache size in bytes.
func WithCacheSize(n int64) Option { return func(o *options) { o.cacheSize = n } }

// WithMemTableSize sets Pebble's memtable size in bytes.
func WithMemTableSize(n uint64) Option { return func(o *options) { o.memTableSize = n } }

// WithTrimInterval sets how often the background sweep runs TrimExpired
// (every minute by default); 0 or less disables it.
func WithTrimInterval(d time.Duration) Option { return func(o *options) { o.trimInterval = d } }

// Store is the embedded log. It implements store.Log, store.Trimmer,
// store.TopicTrimmer, store.ActivityIndex and store.DocumentLister, and is
// safe for concurrent use.
type Store struct {
	db     *pebble.DB
	cfg    store.Config
	now    func() time.Time
	window time.Duration
	log    *slog.Logger

	reqs      chan *appendReq // unbuffered: a request is queued once the committer took it
	trims     chan *trimJob
	closing   chan struct{} // closed by Close: stop taking requests
	committed chan struct{} // closed when the committer has returned
	swept     chan struct{} // closed when the sweeper has returned
	closeOnce sync.Once
	closeErr  error

	// closeMu is held for reading by every call that touches db, and for
	// writing by Close while it closes db.
	closeMu sync.RWMutex
	closed  bool

	// headsMu guards heads, the published (durable) head of every topic,
	// and published, which is closed and replaced whenever heads change.
	// Only the publisher writes them, after a batch is durable.
	headsMu   sync.RWMutex
	heads     map[string]store.Head
	published chan struct{}

	failMu  sync.Mutex
	failErr error // sticky: a batch failed to sync after seqs were assigned

	clockMu sync.Mutex
	clock   clock // see activity.go

	c committer // owned by the committer goroutine
}

var (
	_ store.Log     = (*Store)(nil)
	_ store.Trimmer = (*Store)(nil)
)

// Open opens (creating if needed) the store kept in dir. The caller must
// Close it. Heads of all topics are loaded into memory.
func Open(dir string, cfg store.Config, opts ...Option) (*Store, error) {
	o := options{
		logger:       slog.Default(),
		cacheSize:    defaultCacheSize,
		memTableSize: defaultMemTableSize,
		trimInterval: defaultTrimInterval,
	}
	for _, opt := range opts {
		opt(&o)
	}
	cache := pebble.NewCache(o.cacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		FS:                 o.fs,
		Cache:              cache,
		MemTableSize:       o.memTableSize,
		FormatMajorVersion: FormatMajorVersion,
		Logger:             pebblelog.New(o.logger),
	}
	db, err := pebble.Open(dir, po)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		// Pebble's directory lock: say what it means, not EAGAIN.
		return nil, fmt.Errorf("embedded: %s is in use by another process (is another hubbub running on the same --data?): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	s := &Store{
		db:        db,
		cfg:       cfg,
		now:       cfg.Now,
		window:    cfg.IdempotencyWindow,
		log:       o.logger,
		reqs:      make(chan *appendReq),
		trims:     make(chan *trimJob),
		closing:   make(chan struct{}),
		committed: make(chan struct{}),
		swept:     make(chan struct{}),
		heads:     make(map[string]store.Head),
		published: make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.window <= 0 {
		s.window = store.DefaultIdempotencyWindow
	}
	if err := s.loadHeads(); err != nil {
		_ = db.Close()
		return nil, err
	}
	active, latest, err := s.loadActivity()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.clock = clock{now: s.now, last: latest}
	s.c.init(s, active)
	go s.commitLoop()
	go s.sweepLoop(o.trimInterval)
	return s, nil
}

func (s *Store) loadHeads() error {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixHead},
		UpperBound: []byte{prefixHead + 1},
	})
	if err != nil {
		return fmt.Errorf("embedded: load heads: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("embedded: load heads: %w", err)
		}
		h, err := decodeHead(v)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("embedded: load head of %q: %w", it.Key()[1:], err)
		}
		s.heads[string(it.Key()[1:])] = h
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: load heads: %w", err)
	}
	return nil
}

// Close stops taking appends, finishes those already queued, stops the
// background sweep, waits for reads in progress and closes the database.
// Later calls to any method return store.ErrClosed; Close itself may be
// called again and returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.committed
		<-s.swept
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("embedded: close: %w", err)
		}
	})
	return s.closeErr
}

// Append implements store.Log. It may block while the batch is synced; ctx
// is honoured until the committer has taken the request, after which the
// append completes regardless.
func (s *Store) Append(ctx context.Context, drafts []event.Draft) ([]store.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-s.closing:
		return nil, store.ErrClosed
	default:
	}
	if len(drafts) == 0 {
		return nil, nil
	}
	r := &appendReq{drafts: drafts, done: make(chan struct{})}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		return nil, store.ErrClosed
	}
	<-r.done
	return r.results, r.err
}

// Head implements store.Log.
func (s *Store) Head(ctx context.Context, topic string) (store.Head, error) {
	if err := ctx.Err(); err != nil {
		return store.Head{}, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.Head{}, store.ErrClosed
	}
	s.headsMu.RLock()
	h, ok := s.heads[topic]
	s.headsMu.RUnlock()
	if !ok {
		return store.Head{First: 1}, nil
	}
	return h, nil
}

var errBadLimit = errors.New("embedded: query limit must be positive")

// Read implements store.Log. The head and the events come from one
// consistent view: every seq from Head.First to Head.Last is present.
func (s *Store) Read(ctx context.Context, topic string, q store.Query) (store.Page, error) {
	if q.Limit <= 0 {
		return store.Page{}, errBadLimit
	}
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.Page{}, store.ErrClosed
	}
	// The iterator is created under headsMu so it sees at least everything
	// the head promises; physical deletions below First are only issued
	// after that First was published, so none can hide a seq >= First.
	s.headsMu.RLock()
	h, ok := s.heads[topic]
	if !ok {
		s.headsMu.RUnlock()
		return store.Page{Head: store.Head{First: 1}}, nil
	}
	lo, hi := max(q.After+1, h.First), h.Last
	if q.Before != 0 && q.Before-1 < hi {
		hi = q.Before - 1
	}
	if lo > hi || q.After == ^uint64(0) {
		s.headsMu.RUnlock()
		return store.Page{Head: h}, nil
	}
	upper := topicKey(prefixEvent, topic, 8)
	upper = appendSeqBound(upper, hi)
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: eventKey(topic, lo),
		UpperBound: upper,
	})
	s.headsMu.RUnlock()
	if err != nil {
		return store.Page{}, fmt.Errorf("embedded: read %q: %w", topic, err)
	}
	n := min(uint64(q.Limit), hi-lo+1)
	evs := make([]*event.Event, 0, n)
	if q.Newest {
		for ok := it.Last(); ok && uint64(len(evs)) < n; ok = it.Prev() {
			if evs, err = appendDecoded(evs, it, topic, h.Epoch); err != nil {
				break
			}
		}
		for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
			evs[i], evs[j] = evs[j], evs[i]
		}
	} else {
		for ok := it.First(); ok && uint64(len(evs)) < n; ok = it.Next() {
			if evs, err = appendDecoded(evs, it, topic, h.Epoch); err != nil {
				break
			}
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Page{}, fmt.Errorf("embedded: read %q: %w", topic, err)
	}
	return store.Page{Events: evs, Head: h}, nil
}

// appendSeqBound appends the exclusive upper bound for seqs <= hi.
func appendSeqBound(k []byte, hi uint64) []byte {
	if hi == ^uint64(0) {
		return prefixEnd(k)
	}
	var b [8]byte
	for i, v := 0, hi+1; i < 8; i++ {
		b[7-i] = byte(v >> (8 * i))
	}
	return append(k, b[:]...)
}

func appendDecoded(evs []*event.Event, it *pebble.Iterator, topic, epoch string) ([]*event.Event, error) {
	k := it.Key()
	if len(k) < 8 {
		return evs, errCorrupt
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return evs, err
	}
	e := &event.Event{Topic: topic, Epoch: epoch, Seq: seqOf(k)}
	if err := decodeEvent(append([]byte(nil), v...), e); err != nil {
		return evs, fmt.Errorf("seq %d: %w", e.Seq, err)
	}
	return append(evs, e), nil
}

func seqOf(k []byte) uint64 {
	b := k[len(k)-8:]
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Latest implements store.Log.
func (s *Store) Latest(ctx context.Context, topic, key string) (*event.Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, false, store.ErrClosed
	}
	v, closer, err := s.db.Get(latestKey(topic, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("embedded: latest %q %q: %w", topic, key, err)
	}
	buf := append([]byte(nil), v...)
	_ = closer.Close()
	seq, epoch, rec, err := splitLatest(buf)
	if err != nil {
		return nil, false, fmt.Errorf("embedded: latest %q %q: %w", topic, key, err)
	}
	if t, ok := eventTime(rec); ok && s.expired(t) {
		return nil, false, nil
	}
	// Pebble makes a batch readable before its fsync: an entry not yet
	// covered by the published head may still be lost, so wait for it.
	if err := s.waitPublished(ctx, topic, seq); err != nil {
		return nil, false, err
	}
	e := &event.Event{Topic: topic, Epoch: epoch, Seq: seq}
	if err := decodeEvent(rec, e); err != nil {
		return nil, false, fmt.Errorf("embedded: latest %q %q: %w", topic, key, err)
	}
	return e, true, nil
}

// waitPublished waits until the topic's published head covers seq, which
// takes at most the syncs of the batches in flight.
func (s *Store) waitPublished(ctx context.Context, topic string, seq uint64) error {
	for {
		s.headsMu.RLock()
		covered, ch := s.heads[topic].Last >= seq, s.published
		s.headsMu.RUnlock()
		if covered {
			return nil
		}
		if err := s.failure(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.committed:
			// Everything applied was published or failed.
			s.headsMu.RLock()
			covered = s.heads[topic].Last >= seq
			s.headsMu.RUnlock()
			if !covered {
				return fmt.Errorf("embedded: latest entry of %q seq %d was never made durable", topic, seq)
			}
			return nil
		}
	}
}

// fail makes err sticky: every later append fails with it.
func (s *Store) fail(err error) {
	s.failMu.Lock()
	if s.failErr == nil {
		s.failErr = err
		s.log.Error("store: write failed; the store refuses appends until reopened", "err", err)
	}
	s.failMu.Unlock()
}

func (s *Store) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failErr
}

// expired reports whether an event stored at t (unix ns) is past MaxAge.
func (s *Store) expired(t int64) bool {
	maxAge := s.cfg.Retention.MaxAge
	return maxAge > 0 && t < s.now().Add(-maxAge).UnixNano()
}
