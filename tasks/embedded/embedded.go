// Package embedded is the single-node backend of package tasks: a
// tasks.Queue kept in its own Pebble database in one directory (the server
// gives it DATA/tasks).
//
// # Durability and concurrency
//
// Every mutation is one Pebble batch, built and applied under one mutex
// (so the indexes below always agree with the task records and with the
// in-memory counts) and synced with pebble.Sync after the mutex is released:
// concurrent callers share fsyncs (group commit), and a call returns only
// once its batch, and every batch applied before it, is on disk. Pebble shows
// an applied batch to readers before its sync, so Get, ListDead, NextDue and
// Stats may report a mutation whose caller has not returned yet; a crash at
// that moment loses it, and nothing durable was derived from it (mutations
// are synced in the order they were applied).
//
// # Startup
//
// One node owns the whole queue, so a lease found at Open can only belong to
// a previous process, which is gone: Open releases every lease at once, each
// task becoming pending again (at its previous RunAt, so it is due at once)
// with Attempt+1 and LastError "lease released at startup". Two processes
// must never open the same directory (Pebble's lock file prevents it).
//
// # Key layout
//
// Every key starts with a one-byte record kind. <kind> is a 2-byte
// big-endian length followed by the kind's bytes, so one kind's entries are
// contiguous and never mix with those of a kind it is a prefix of. <time> is
// unix nanoseconds as 8 bytes big-endian with the sign bit flipped, so byte
// order is time order. <id> is the 24-character id (tasks.IDGen), which
// sorts by creation time.
//
//	t<id>                  the task record (see encodeRecord), in every state
//	d<kind><runAt><id>     due index: one entry per pending task
//	k<kind><key>           the id of the pending task holding this dedup key
//	l<kind><leaseEnd><id>  lease index: one entry per running task
//	r<kind><key>           the id of the running task holding this key
//	x<kind><id>            dead-letter index: one entry (empty) per dead task
//
// A pending task has its d entry and, when its Key is not empty, its k
// entry; a running task its l entry and, with a Key, its r entry; a dead
// task only its x entry. Claim scans d<kind> up to now, skipping tasks
// whose key has an r entry (at most one per running task); NextDue reads
// the first l<kind> entry and the first d<kind> entry not so blocked;
// ended leases are found by scanning l<kind> up to now.
//
// The mapping to Redis is direct: t is a hash per task, d and l are sorted
// sets per kind scored by time, k and r are SET NX keys, x a sorted set.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hubbub/hubbub/internal/pebblelog"
	"github.com/hubbub/hubbub/tasks"
)

// FormatMajorVersion is the Pebble on-disk format this package creates.
const FormatMajorVersion = pebble.FormatValueSeparation

type options struct {
	fs        vfs.FS
	logger    *slog.Logger
	now       func() time.Time
	cacheSize int64
}

// Option tunes Open.
type Option func(*options)

// WithFS makes the queue use fs instead of the operating system's file
// system (tests use vfs.NewMem or vfs.NewCrashableMem).
func WithFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// WithLogger sets where the queue and Pebble log (slog.Default when unset).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock that decides what is due and when leases end
// (time.Now when unset).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCacheSize sets Pebble's block cache size in bytes (8 MiB by default:
// tasks are few and small).
func WithCacheSize(n int64) Option { return func(o *options) { o.cacheSize = n } }

// Queue is the embedded tasks.Queue. It also implements tasks.Notifier.
// It is safe for concurrent use.
type Queue struct {
	db  *pebble.DB
	now func() time.Time
	log *slog.Logger
	ids tasks.IDGen

	// closeMu is held for reading by every call that uses db, and for
	// writing by Close.
	closeMu   sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	// mu is held while a mutation reads the indexes, builds its batch and
	// applies it; it guards counts, which always match the applied state.
	mu     sync.Mutex
	counts map[string]tasks.Counts
	// dueLow[kind], when present, is a time no due entry of kind is
	// earlier than: scans of the due index start there, instead of
	// stepping over the deleted entries of every task claimed since the
	// last compaction. Guarded by mu; absent after Open (a full scan).
	dueLow map[string]int64

	failMu  sync.Mutex
	failErr error // sticky: a batch was applied but could not be synced

	lisMu     sync.Mutex
	listeners map[int]func(string)
	nextLis   int
}

var (
	_ tasks.Queue    = (*Queue)(nil)
	_ tasks.Notifier = (*Queue)(nil)
)

// Open opens (creating if needed) the queue kept in dir and releases the
// leases a previous process left (see the package doc). The caller must
// Close it.
func Open(dir string, opts ...Option) (*Queue, error) {
	o := options{logger: slog.Default(), now: time.Now, cacheSize: 8 << 20}
	for _, opt := range opts {
		opt(&o)
	}
	cache := pebble.NewCache(o.cacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 o.fs,
		Cache:              cache,
		FormatMajorVersion: FormatMajorVersion,
		Logger:             pebblelog.New(o.logger),
	})
	if err != nil {
		return nil, fmt.Errorf("tasks/embedded: open %s: %w", dir, err)
	}
	q := &Queue{
		db:        db,
		now:       o.now,
		log:       o.logger,
		counts:    make(map[string]tasks.Counts),
		dueLow:    make(map[string]int64),
		listeners: make(map[int]func(string)),
	}
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := q.releaseAll(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return q, nil
}

// load counts the tasks of every kind from the indexes and primes the id
// generator with the greatest id stored.
func (q *Queue) load() error {
	for _, p := range []byte{prefixDue, prefixLease, prefixDead} {
		err := q.scan([]byte{p}, []byte{p + 1}, func(k, _ []byte) (bool, error) {
			kind, err := kindOf(k)
			if err != nil {
				return false, err
			}
			c := q.counts[kind]
			switch p {
			case prefixDue:
				c.Pending++
			case prefixLease:
				c.Running++
			default:
				c.Dead++
			}
			q.counts[kind] = c
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("tasks/embedded: load counts: %w", err)
		}
	}
	it, err := q.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixTask},
		UpperBound: []byte{prefixTask + 1},
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: load ids: %w", err)
	}
	if it.Last() {
		q.ids.Observe(string(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("tasks/embedded: load ids: %w", err)
	}
	return nil
}

// releaseAll makes every running task pending again (Open).
func (q *Queue) releaseAll() error {
	n := 0
	err := q.update(context.Background(), func(tx *txn) error {
		var leases [][]byte
		err := tx.scan([]byte{prefixLease}, []byte{prefixLease + 1}, -1, func(k []byte) {
			leases = append(leases, k)
		})
		if err != nil {
			return err
		}
		for _, k := range leases {
			_, _, id, err := splitTimed(k)
			if err != nil {
				return err
			}
			r, err := tx.get(id)
			if err != nil {
				return err
			}
			if err := tx.requeue(r, r.runAt, "lease released at startup"); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tasks/embedded: release leases: %w", err)
	}
	if n > 0 {
		q.log.Info("tasks: released leases of the previous process", "tasks", n)
	}
	return nil
}

// Close closes the database after the calls in progress return. Later
// calls fail with tasks.ErrClosed; Close may be called again and returns
// the first call's result.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closeMu.Lock()
		defer q.closeMu.Unlock()
		q.closed = true
		if err := q.db.Close(); err != nil {
			q.closeErr = fmt.Errorf("tasks/embedded: close: %w", err)
		}
	})
	return q.closeErr
}

// OnReady implements tasks.Notifier.
func (q *Queue) OnReady(fn func(kind string)) (cancel func()) {
	q.lisMu.Lock()
	id := q.nextLis
	q.nextLis++
	q.listeners[id] = fn
	q.lisMu.Unlock()
	return func() {
		q.lisMu.Lock()
		delete(q.listeners, id)
		q.lisMu.Unlock()
	}
}

func (q *Queue) notify(kinds map[string]bool) {
	if len(kinds) == 0 {
		return
	}
	q.lisMu.Lock()
	fns := make([]func(string), 0, len(q.listeners))
	for _, fn := range q.listeners {
		fns = append(fns, fn)
	}
	q.lisMu.Unlock()
	for kind := range kinds {
		for _, fn := range fns {
			fn(kind)
		}
	}
}

// Stats implements tasks.Queue.
func (q *Queue) Stats(ctx context.Context) (map[string]tasks.Counts, error) {
	if err := q.enter(ctx); err != nil {
		return nil, err
	}
	defer q.closeMu.RUnlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	out := maps.Clone(q.counts)
	for k, c := range out {
		if c == (tasks.Counts{}) {
			delete(out, k)
		}
	}
	return out, nil
}

// enter checks ctx and takes closeMu for reading; on success the caller
// must RUnlock it.
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

// txn is one mutation being built under q.mu: reads go through its indexed
// batch, so they see its own earlier writes.
type txn struct {
	q     *Queue
	b     *pebble.Batch
	now   int64
	delta map[string]tasks.Counts
	ready map[string]bool // kinds to notify once durable
	// dueScan and dueIns feed Queue.dueLow once the txn is applied: the
	// bound each due scan found, and the earliest due entry written.
	dueScan map[string]int64
	dueIns  map[string]int64
}

// noteDue records a due entry of kind at t written by this txn.
func (tx *txn) noteDue(kind string, t int64) {
	if tx.dueIns == nil {
		tx.dueIns = make(map[string]int64)
	}
	if cur, ok := tx.dueIns[kind]; !ok || t < cur {
		tx.dueIns[kind] = t
	}
}

// keepDueLow updates q.dueLow from a txn whose changes are applied (or
// that changed nothing). q.mu must be held.
func (q *Queue) keepDueLow(tx *txn) {
	for kind, t := range tx.dueScan {
		q.dueLow[kind] = t
	}
	for kind, t := range tx.dueIns {
		if cur, ok := q.dueLow[kind]; ok && t < cur {
			q.dueLow[kind] = t
		}
	}
}

// update runs fn under q.mu with a fresh txn, applies the batch it built
// (if fn succeeded), then waits for it to be synced outside the mutex.
func (q *Queue) update(ctx context.Context, fn func(tx *txn) error) error {
	if err := q.enter(ctx); err != nil {
		return err
	}
	defer q.closeMu.RUnlock()
	if err := q.failure(); err != nil {
		return err
	}
	q.mu.Lock()
	tx := &txn{
		q:     q,
		b:     q.db.NewIndexedBatch(),
		now:   q.now().UnixNano(),
		delta: make(map[string]tasks.Counts),
		ready: make(map[string]bool),
	}
	defer tx.b.Close()
	err := fn(tx)
	applied := false
	if err == nil && tx.b.Empty() {
		q.keepDueLow(tx)
	}
	if err == nil && !tx.b.Empty() {
		if err = q.db.ApplyNoSyncWait(tx.b, pebble.Sync); err == nil {
			applied = true
			q.keepDueLow(tx)
			for kind, d := range tx.delta {
				c := q.counts[kind]
				c.Pending += d.Pending
				c.Running += d.Running
				c.Dead += d.Dead
				q.counts[kind] = c
			}
		} else {
			err = fmt.Errorf("tasks/embedded: apply: %w", err)
		}
	}
	q.mu.Unlock()
	if applied {
		if serr := tx.b.SyncWait(); serr != nil {
			err = fmt.Errorf("tasks/embedded: sync: %w", serr)
			q.fail(err)
			return err
		}
	}
	if err == nil {
		q.notify(tx.ready)
	}
	return err
}

// fail makes err sticky: the in-memory state may be ahead of the disk, so
// every later mutation fails until the queue is reopened.
func (q *Queue) fail(err error) {
	q.failMu.Lock()
	if q.failErr == nil {
		q.failErr = err
		q.log.Error("tasks: write failed; the queue refuses changes until reopened", "err", err)
	}
	q.failMu.Unlock()
}

func (q *Queue) failure() error {
	q.failMu.Lock()
	defer q.failMu.Unlock()
	return q.failErr
}

func (tx *txn) add(kind string, pending, running, dead int) {
	d := tx.delta[kind]
	d.Pending += pending
	d.Running += running
	d.Dead += dead
	tx.delta[kind] = d
}

// get reads the record of id; tasks.ErrNotFound if there is none.
func (tx *txn) get(id string) (*record, error) {
	if !tasks.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", tasks.ErrNotFound, id)
	}
	v, closer, err := tx.b.Get(taskKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", tasks.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("tasks/embedded: get %s: %w", id, err)
	}
	defer closer.Close()
	return decodeRecord(id, v)
}

// getRunning reads the record of id and checks that it is running.
func (tx *txn) getRunning(id string) (*record, error) {
	r, err := tx.get(id)
	if err != nil {
		return nil, err
	}
	if r.State != tasks.Running {
		return nil, fmt.Errorf("%w: %s is %s", tasks.ErrNotRunning, id, r.State)
	}
	return r, nil
}

func (tx *txn) put(r *record) error {
	return tx.b.Set(taskKey(r.ID), encodeRecord(r), nil)
}

// scan calls fn with the keys in [lo, hi), at most limit of them (limit < 0:
// all). The keys passed are copies.
func (tx *txn) scan(lo, hi []byte, limit int, fn func(k []byte)) error {
	it, err := tx.b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && limit != 0; ok = it.Next() {
		fn(append([]byte(nil), it.Key()...))
		limit--
	}
	return it.Close()
}

// scan iterates the database (not a batch) over [lo, hi) until fn returns
// false. k and v are only valid during the call.
func (q *Queue) scan(lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := q.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		more, err := fn(it.Key(), v)
		if err != nil {
			_ = it.Close()
			return err
		}
		if !more {
			break
		}
	}
	return it.Close()
}
