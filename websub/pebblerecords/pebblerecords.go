// Package pebblerecords keeps websub subscription records in their own
// Pebble database (the server gives it DATA/websub).
//
// Every record is also held in memory: Open loads them all. A mutation
// applies its batch and updates memory under one mutex, then waits for the
// batch's fsync after releasing it, so concurrent mutations share fsyncs
// (group commit) and each returns only once durable. Readers may therefore
// see a change whose fsync is still under way; a crash at that moment can
// lose it, and for a cursor that means a redelivery (at least once), never
// a loss. UpdateLazy (cursor advances) does not wait: its writes share a
// sync of the log at most lazySync later. Keys:
//
//	s<id>     JSON of a websub.Subscription
//	f<topic>  JSON of a websub.FetchState
//	v<id>     JSON of a websub.Verification (also held in memory)
package pebblerecords

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/internal/pebblelog"
	"github.com/hubbub/hubbub/websub"
)

// FormatMajorVersion is the Pebble on-disk format this package creates.
const FormatMajorVersion = pebble.FormatValueSeparation

const (
	prefixSub    = 's'
	prefixFetch  = 'f'
	prefixVerify = 'v'
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("pebblerecords: closed")

// Records is the Pebble implementation of websub.Records.
type Records struct {
	db     *pebble.DB
	log    *slog.Logger
	mu     sync.RWMutex
	closed bool
	byID   map[string]websub.Subscription
	// byTopic indexes byID: LogTopic -> set of ids.
	byTopic map[string]map[string]struct{}
	// byHost counts byID by websub.CallbackHost of the callback.
	byHost map[string]int
	// verifs holds the verifications, by id.
	verifs map[string]websub.Verification

	// lazy writes (UpdateLazy): syncPending says a sync of the log is
	// scheduled; syncMu keeps Close from closing the database under one,
	// and guards syncClosed. Lock order: mu before syncMu.
	syncPending atomic.Bool
	syncMu      sync.RWMutex
	syncClosed  bool
}

// lazySync is how long an UpdateLazy write may wait for its fsync: the
// writes of that time share one.
const lazySync = 20 * time.Millisecond

var _ websub.Records = (*Records)(nil)
var _ websub.LazyUpdater = (*Records)(nil)

// Open opens (creating if needed) the records kept in dir and loads them
// into memory. logger may be nil. The caller must Close it.
func Open(dir string, logger *slog.Logger) (*Records, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: FormatMajorVersion,
		Logger:             pebblelog.New(logger),
	})
	if err != nil {
		return nil, fmt.Errorf("pebblerecords: open %s: %w", dir, err)
	}
	r := &Records{db: db, log: logger, byID: make(map[string]websub.Subscription), byTopic: make(map[string]map[string]struct{}), byHost: make(map[string]int), verifs: make(map[string]websub.Verification)}
	if err := r.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return r, nil
}

func (r *Records) load() error {
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSub}, UpperBound: []byte{prefixSub + 1}})
	if err != nil {
		return fmt.Errorf("pebblerecords: load: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		var s websub.Subscription
		if err := json.Unmarshal(it.Value(), &s); err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblerecords: decode %q: %w", it.Key()[1:], err)
		}
		r.index(s)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblerecords: load: %w", err)
	}
	it, err = r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixVerify}, UpperBound: []byte{prefixVerify + 1}})
	if err != nil {
		return fmt.Errorf("pebblerecords: load: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		var v websub.Verification
		if err := json.Unmarshal(it.Value(), &v); err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblerecords: decode verification %q: %w", it.Key()[1:], err)
		}
		r.verifs[v.ID] = v
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblerecords: load: %w", err)
	}
	return nil
}

// index puts s in memory; r.mu must be held for writing.
func (r *Records) index(s websub.Subscription) {
	if old, ok := r.byID[s.ID]; ok && old.LogTopic != s.LogTopic {
		r.unindex(old)
	}
	if _, ok := r.byID[s.ID]; !ok {
		r.byHost[websub.CallbackHost(s.Callback)]++
	}
	r.byID[s.ID] = s
	set := r.byTopic[s.LogTopic]
	if set == nil {
		set = make(map[string]struct{})
		r.byTopic[s.LogTopic] = set
	}
	set[s.ID] = struct{}{}
}

func (r *Records) unindex(s websub.Subscription) {
	if _, ok := r.byID[s.ID]; ok {
		h := websub.CallbackHost(s.Callback)
		if r.byHost[h]--; r.byHost[h] <= 0 {
			delete(r.byHost, h)
		}
	}
	delete(r.byID, s.ID)
	if set := r.byTopic[s.LogTopic]; set != nil {
		delete(set, s.ID)
		if len(set) == 0 {
			delete(r.byTopic, s.LogTopic)
		}
	}
}

func subKey(id string) []byte { return append([]byte{prefixSub}, id...) }

// write applies s to the database and memory; r.mu must be held for
// writing. The caller waits for durability with the returned batch's
// SyncWait after releasing r.mu, then closes it.
func (r *Records) write(s websub.Subscription) (*pebble.Batch, error) {
	return r.writeWith(s, pebble.Sync)
}

// writeWith is write with opts; with pebble.NoSync the batch is applied
// and there is nothing to wait for.
func (r *Records) writeWith(s websub.Subscription, opts *pebble.WriteOptions) (*pebble.Batch, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if s.ID == "" || s.ID != websub.SubscriptionID(s.Topic, s.Callback) {
		return nil, fmt.Errorf("pebblerecords: subscription id %q does not match its topic and callback", s.ID)
	}
	v, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("pebblerecords: encode: %w", err)
	}
	b := r.db.NewBatch()
	if err := b.Set(subKey(s.ID), v, nil); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("pebblerecords: put %s: %w", s.ID, err)
	}
	apply := r.db.ApplyNoSyncWait
	if opts == pebble.NoSync {
		apply = r.db.Apply
	}
	if err := apply(b, opts); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("pebblerecords: put %s: %w", s.ID, err)
	}
	r.index(s)
	return b, nil
}

// syncWait waits for b's fsync (with r.mu released) and closes it.
func syncWait(b *pebble.Batch) error {
	err := b.SyncWait()
	_ = b.Close()
	if err != nil {
		return fmt.Errorf("pebblerecords: sync: %w", err)
	}
	return nil
}

// Put implements websub.Records.
func (r *Records) Put(ctx context.Context, s websub.Subscription) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	b, err := r.write(s)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return syncWait(b)
}

// Get implements websub.Records.
func (r *Records) Get(ctx context.Context, id string) (websub.Subscription, bool, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return websub.Subscription{}, false, ErrClosed
	}
	s, ok := r.byID[id]
	return s, ok, nil
}

// Update implements websub.Records.
func (r *Records) Update(ctx context.Context, id string, fn func(s *websub.Subscription) error) (websub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return websub.Subscription{}, err
	}
	r.mu.Lock()
	s, b, err := r.update(id, fn)
	r.mu.Unlock()
	if err != nil || b == nil {
		return s, err
	}
	return s, syncWait(b)
}

// UpdateLazy implements websub.LazyUpdater: it is Update without waiting
// for the fsync. The write is applied (and seen by readers) at once and
// made durable by a sync of the log at most lazySync later, which the lazy
// writes of that time share, or by Close.
func (r *Records) UpdateLazy(ctx context.Context, id string, fn func(s *websub.Subscription) error) (websub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return websub.Subscription{}, err
	}
	r.mu.Lock()
	s, b, err := r.updateWith(id, fn, pebble.NoSync)
	r.mu.Unlock()
	if err != nil || b == nil {
		return s, err
	}
	_ = b.Close()
	if r.syncPending.CompareAndSwap(false, true) {
		time.AfterFunc(lazySync, r.syncLazy)
	}
	return s, nil
}

// syncLazy makes the lazy writes so far durable.
func (r *Records) syncLazy() {
	r.syncMu.RLock()
	defer r.syncMu.RUnlock()
	r.syncPending.Store(false) // a write from now on schedules the next sync
	if r.syncClosed {
		return // Close synced
	}
	if err := r.db.LogData(nil, pebble.Sync); err != nil {
		r.log.Error("pebblerecords: syncing cursor advances failed; a crash now would deliver them again", "err", err)
	}
}

// update is Update's part under r.mu; b is nil when nothing was written.
func (r *Records) update(id string, fn func(s *websub.Subscription) error) (websub.Subscription, *pebble.Batch, error) {
	return r.updateWith(id, fn, pebble.Sync)
}

// updateWith is update writing with opts (pebble.Sync, or pebble.NoSync
// for UpdateLazy, whose batch is then applied and only needs closing).
func (r *Records) updateWith(id string, fn func(s *websub.Subscription) error, opts *pebble.WriteOptions) (websub.Subscription, *pebble.Batch, error) {
	if r.closed {
		return websub.Subscription{}, nil, ErrClosed
	}
	old, ok := r.byID[id]
	if !ok {
		return websub.Subscription{}, nil, fmt.Errorf("pebblerecords: update %s: %w", id, websub.ErrNotFound)
	}
	s := old
	if err := fn(&s); err != nil {
		if errors.Is(err, websub.ErrNoChange) {
			return old, nil, nil
		}
		return old, nil, err
	}
	if s.ID != id {
		return old, nil, fmt.Errorf("pebblerecords: update %s: the id changed", id)
	}
	b, err := r.writeWith(s, opts)
	if err != nil {
		return old, nil, err
	}
	return s, b, nil
}

// Delete implements websub.Records.
func (r *Records) Delete(ctx context.Context, id string) (bool, error) {
	return r.DeleteIf(ctx, id, nil)
}

// DeleteIf implements websub.Records; a nil cond always holds.
func (r *Records) DeleteIf(ctx context.Context, id string, cond func(websub.Subscription) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	s, ok := r.byID[id]
	if !ok || (cond != nil && !cond(s)) {
		return false, nil
	}
	if err := r.db.Delete(subKey(id), pebble.Sync); err != nil {
		return false, fmt.Errorf("pebblerecords: delete %s: %w", id, err)
	}
	r.unindex(s)
	return true, nil
}

// List implements websub.Records. It sorts the ids in memory, so a page
// costs O(n log n) in the number of subscriptions: fine for an admin view.
func (r *Records) List(ctx context.Context, after string, limit int) ([]websub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	ids := make([]string, 0, len(r.byID))
	for id := range r.byID {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]websub.Subscription, len(ids))
	for i, id := range ids {
		out[i] = r.byID[id]
	}
	return out, nil
}

// ListByTopic implements websub.Records.
func (r *Records) ListByTopic(topic string) []websub.Subscription {
	r.mu.RLock()
	defer r.mu.RUnlock()
	set := r.byTopic[topic]
	out := make([]websub.Subscription, 0, len(set))
	for id := range set {
		out = append(out, r.byID[id])
	}
	return out
}

// Count implements websub.Records.
func (r *Records) Count(topic string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byTopic[topic])
}

// CountHost implements websub.HostCounter from memory.
func (r *Records) CountHost(_ context.Context, host string) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byHost[host], nil
}

var _ websub.HostCounter = (*Records)(nil)

// Len returns the number of subscriptions.
func (r *Records) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// FetchState implements websub.Records.
func (r *Records) FetchState(ctx context.Context, topic string) (websub.FetchState, bool, error) {
	var st websub.FetchState
	if err := ctx.Err(); err != nil {
		return st, false, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return st, false, ErrClosed
	}
	v, closer, err := r.db.Get(append([]byte{prefixFetch}, topic...))
	if errors.Is(err, pebble.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("pebblerecords: fetch state of %q: %w", topic, err)
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &st); err != nil {
		return st, false, fmt.Errorf("pebblerecords: decode fetch state of %q: %w", topic, err)
	}
	return st, true, nil
}

// PutFetchState implements websub.Records.
func (r *Records) PutFetchState(ctx context.Context, topic string, st websub.FetchState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("pebblerecords: encode fetch state: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if err := r.db.Set(append([]byte{prefixFetch}, topic...), b, pebble.Sync); err != nil {
		return fmt.Errorf("pebblerecords: put fetch state of %q: %w", topic, err)
	}
	return nil
}

func verifyKey(id string) []byte { return append([]byte{prefixVerify}, id...) }

// PutVerification implements websub.Records.
func (r *Records) PutVerification(ctx context.Context, v websub.Verification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("pebblerecords: encode verification: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if err := r.db.Set(verifyKey(v.ID), b, pebble.Sync); err != nil {
		return fmt.Errorf("pebblerecords: put verification %s: %w", v.ID, err)
	}
	r.verifs[v.ID] = v
	return nil
}

// DeleteVerification implements websub.Records.
func (r *Records) DeleteVerification(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if _, ok := r.verifs[id]; !ok {
		return nil
	}
	if err := r.db.Delete(verifyKey(id), pebble.Sync); err != nil {
		return fmt.Errorf("pebblerecords: delete verification %s: %w", id, err)
	}
	delete(r.verifs, id)
	return nil
}

// ListVerifications implements websub.Records, from memory.
func (r *Records) ListVerifications(ctx context.Context, after string, limit int) ([]websub.Verification, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	var ids []string
	for id := range r.verifs {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	ids = ids[:min(len(ids), max(limit, 0))]
	out := make([]websub.Verification, len(ids))
	for i, id := range ids {
		out[i] = r.verifs[id]
	}
	return out, nil
}

// Close closes the database. Later calls fail with ErrClosed; Close may
// be called twice.
func (r *Records) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.syncMu.Lock() // no syncLazy under way from here
	r.syncClosed = true
	defer r.syncMu.Unlock()
	if err := r.db.LogData(nil, pebble.Sync); err != nil { // the lazy writes
		r.log.Error("pebblerecords: syncing cursor advances at close failed", "err", err)
	}
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("pebblerecords: close: %w", err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the records, as of one instant
// during the call, into dir, which must not exist (created on the same
// file system: table files are hard-linked). It may run while the records
// serve.
func (r *Records) Checkpoint(dir string) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	if err := r.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("pebblerecords: checkpoint to %s: %w", dir, err)
	}
	return nil
}
