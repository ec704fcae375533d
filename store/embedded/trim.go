package embedded

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/store"
)

// trimChunk bounds how many keys one trim job deletes, so the committer
// (and the appends queued behind it) is held up only briefly per job.
const trimChunk = 1024

// trimJob is work for the committer found by a TrimExpired scan. The scan
// runs outside the committer on a possibly stale view; the committer
// re-checks every key against the cutoffs before deleting it.
type trimJob struct {
	firsts     map[string]uint64 // topic -> first seq to keep (by age)
	purgeAll   bool              // also delete every count-trimmed event
	latest     [][]byte          // latest-by-key entries found older than ageCutoff
	idem       [][]byte          // idempotency keys found older than idemCutoff
	ageCutoff  int64             // unix ns; entries before it are expired
	idemCutoff int64             // unix ns; keys at or before it are expired
	err        error
	done       chan struct{}
}

// TrimExpired implements store.Trimmer: it removes events and latest-by-key
// entries older than Retention.MaxAge and idempotency keys older than the
// idempotency window, as of Config.Now, and physically deletes events
// trimmed by count. A topic whose whole log expires keeps its head (epoch
// and last seq). It may take a while on a large store; appends keep being
// served meanwhile, delayed only by short deletion batches.
func (s *Store) TrimExpired(ctx context.Context) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	now := s.now()
	j := &trimJob{
		purgeAll:   true,
		ageCutoff:  -1 << 63,
		idemCutoff: now.Add(-s.window).UnixNano(),
	}
	if maxAge := s.cfg.Retention.MaxAge; maxAge > 0 {
		j.ageCutoff = now.Add(-maxAge).UnixNano()
		firsts, err := s.scanExpiredEvents(ctx, j.ageCutoff)
		if err != nil {
			return err
		}
		j.firsts = firsts
		latest, err := s.scanExpired(ctx, prefixLatest, func(v []byte) bool {
			_, _, rec, err := splitLatest(v)
			if err != nil {
				return false
			}
			t, ok := eventTime(rec)
			return ok && t < j.ageCutoff
		})
		if err != nil {
			return err
		}
		j.latest = latest
	}
	idem, err := s.scanExpired(ctx, prefixIdem, func(v []byte) bool {
		t, _, err := decodeIdem(v)
		return err == nil && t <= j.idemCutoff
	})
	if err != nil {
		return err
	}
	// First the heads (and physical deletion of what earlier heads already
	// excluded), then the keys in chunks.
	latest, idemKeys := j.latest, idem
	j.latest, j.idem = nil, nil
	if err := s.runTrim(ctx, j); err != nil {
		return err
	}
	// The deletions of events below the new Firsts, now published.
	if err := s.runTrim(ctx, &trimJob{purgeAll: true}); err != nil {
		return err
	}
	for len(latest) > 0 || len(idemKeys) > 0 {
		k := &trimJob{ageCutoff: j.ageCutoff, idemCutoff: j.idemCutoff}
		n := min(len(latest), trimChunk)
		k.latest, latest = latest[:n], latest[n:]
		n = min(len(idemKeys), trimChunk-n)
		k.idem, idemKeys = idemKeys[:n], idemKeys[n:]
		if err := s.runTrim(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// runTrim hands j to the committer and waits for it.
func (s *Store) runTrim(ctx context.Context, j *trimJob) error {
	j.done = make(chan struct{})
	select {
	case s.trims <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return store.ErrClosed
	}
	<-j.done
	return j.err
}

// scanExpiredEvents finds, for each topic, the first seq whose event is not
// older than cutoff (Last+1 when all are). Only topics with something to
// trim are returned.
func (s *Store) scanExpiredEvents(ctx context.Context, cutoff int64) (map[string]uint64, error) {
	s.headsMu.RLock()
	heads := make(map[string]store.Head, len(s.heads))
	for t, h := range s.heads {
		if h.First <= h.Last {
			heads[t] = h
		}
	}
	s.headsMu.RUnlock()
	firsts := make(map[string]uint64)
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: trim scan: %w", err)
	}
	defer it.Close()
	for topic, h := range heads {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it.SetBounds(eventKey(topic, h.First), appendSeqBound(topicKey(prefixEvent, topic, 8), h.Last))
		first := h.Last + 1
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("embedded: trim scan %q: %w", topic, err)
			}
			if t, ok := eventTime(v); ok && t >= cutoff {
				first = seqOf(it.Key())
				break
			}
		}
		if first > h.First {
			firsts[topic] = first
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: trim scan: %w", err)
	}
	return firsts, nil
}

// scanExpired returns copies of the keys under prefix whose value expired
// says is expired.
func (s *Store) scanExpired(ctx context.Context, prefix byte, expired func(v []byte) bool) ([][]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefix},
		UpperBound: []byte{prefix + 1},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: trim scan: %w", err)
	}
	defer it.Close()
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		if len(keys)%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("embedded: trim scan: %w", err)
		}
		if expired(v) {
			keys = append(keys, append([]byte(nil), it.Key()...))
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("embedded: trim scan: %w", err)
	}
	return keys, nil
}

// applyTrim builds and applies the batch of a trim job on the committer.
// Its heads are published, and the job answered, by the publisher in order
// with the appends around it.
func (c *committer) applyTrim(j *trimJob) *inFlight {
	f := &inFlight{trim: j}
	if f.err = c.s.failure(); f.err != nil {
		return f
	}
	s := c.s
	b := s.db.NewBatch()
	err := c.buildTrim(b, j, f)
	if err == nil && !b.Empty() {
		if err = s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
			err = fmt.Errorf("embedded: trim commit: %w", err)
		}
	}
	if err != nil || b.Empty() {
		_ = b.Close()
		f.err, f.heads = err, nil
		return f
	}
	f.batch = b
	for topic, h := range f.heads {
		c.heads[topic] = h
	}
	return f
}

func (c *committer) buildTrim(b *pebble.Batch, j *trimJob, f *inFlight) error {
	s := c.s
	for topic, first := range j.firsts {
		h, ok := c.heads[topic]
		if !ok || first <= h.First {
			continue
		}
		h.First = min(first, h.Last+1)
		if f.heads == nil {
			f.heads = make(map[string]store.Head)
		}
		f.heads[topic] = h
		if err := b.Set(headKey(topic), encodeHead(h), nil); err != nil {
			return fmt.Errorf("embedded: trim batch: %w", err)
		}
	}
	// Physical deletion uses the published heads only, so no reader can be
	// looking at what it removes.
	if j.purgeAll {
		purges := make(map[string]uint64)
		s.headsMu.RLock()
		for topic, h := range s.heads {
			if h.First > c.purged[topic] && h.First > 1 {
				purges[topic] = h.First
			}
		}
		s.headsMu.RUnlock()
		for topic, first := range purges {
			if err := purge(b, topic, first); err != nil {
				return err
			}
			c.purged[topic] = first // if the batch fails the store is failed anyway
		}
	}
	for _, k := range j.latest {
		if err := c.deleteIfExpired(b, k, func(v []byte) bool {
			_, _, rec, err := splitLatest(v)
			if err != nil {
				return false
			}
			t, ok := eventTime(rec)
			return ok && t < j.ageCutoff
		}); err != nil {
			return err
		}
	}
	for _, k := range j.idem {
		if err := c.deleteIfExpired(b, k, func(v []byte) bool {
			t, _, err := decodeIdem(v)
			return err == nil && t <= j.idemCutoff
		}); err != nil {
			return err
		}
	}
	return nil
}

// deleteIfExpired deletes k if its current value is still expired (a newer
// append may have replaced it since the scan).
func (c *committer) deleteIfExpired(b *pebble.Batch, k []byte, expired func(v []byte) bool) error {
	v, closer, err := c.s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded: trim: %w", err)
	}
	del := expired(v)
	_ = closer.Close()
	if !del {
		return nil
	}
	if err := b.Delete(k, nil); err != nil {
		return fmt.Errorf("embedded: trim batch: %w", err)
	}
	return nil
}

// sweepLoop runs TrimExpired every interval until Close.
func (s *Store) sweepLoop(interval time.Duration) {
	defer close(s.swept)
	store.Sweep(s.closing, interval, s.TrimExpired, s.log)
}

// TrimTopic implements store.TopicTrimmer: one trim job moves the topic's
// First on the committer (which ignores a First that is no longer ahead of
// the head's), and a second deletes the events below the published First.
func (s *Store) TrimTopic(ctx context.Context, topic string, keep uint64) (store.Head, error) {
	h, err := s.Head(ctx, topic)
	if err != nil || h.Epoch == "" || h.Last+1-h.First <= keep {
		return h, err
	}
	if err := s.runTrimLocked(ctx, &trimJob{firsts: map[string]uint64{topic: h.Last + 1 - keep}}); err != nil {
		return store.Head{}, err
	}
	if err := s.runTrimLocked(ctx, &trimJob{purgeAll: true}); err != nil {
		return store.Head{}, err
	}
	return s.Head(ctx, topic)
}

// runTrimLocked is runTrim for callers that do not hold closeMu.
func (s *Store) runTrimLocked(ctx context.Context, j *trimJob) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.runTrim(ctx, j)
}
