package embedded

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// purgeSlack is how many count-trimmed events a topic may keep on disk
// below its First before a range deletion removes them: one range tombstone
// per purgeSlack events, rather than one per batch.
const purgeSlack = 256

// maxBatchRequests bounds how many Append calls share one batch, so one
// batch stays a bounded amount of memory and latency.
const maxBatchRequests = 1024

// maxInFlight bounds how many batches may be applied but not yet synced.
const maxInFlight = 8

// appendReq is one Append call waiting for the committer.
type appendReq struct {
	drafts  []event.Draft
	results []store.Result
	err     error
	done    chan struct{} // closed by the publisher once results/err are set
}

// topicDelta is a topic's head while a batch is built.
type topicDelta struct {
	old    store.Head
	head   store.Head
	exists bool // old is a head already assigned (maybe not yet published)
}

// inFlight is a batch the committer has applied and the publisher must wait
// for (sync), then publish, in the order the committer applied them.
type inFlight struct {
	batch  *pebble.Batch // nil when there was nothing to write
	err    error         // the batch failed; answer the requests with it
	heads  map[string]store.Head
	events []*event.Event
	reqs   []*appendReq
	trim   *trimJob
	timed  bool // the batch holds a pending time (see Store.assignTime)
}

// committer is the state only the committer goroutine touches.
type committer struct {
	s *Store
	// heads are the heads as assigned, including batches not yet synced;
	// Store.heads lags behind it by the batches in flight.
	heads   map[string]store.Head
	touched map[string]*topicDelta
	idem    map[string]store.Result // topic + "\x00" + key -> result, this batch
	purged  map[string]uint64       // events below this seq are physically gone
	active  map[string]int64        // topic -> its activity entry's time (unix µs)
	moved   []string                // topics of this batch whose entry moves
	key     []byte                  // scratch
	val     []byte                  // scratch
	reqs    []*appendReq
}

func (c *committer) init(s *Store, active map[string]int64) {
	c.s = s
	c.active = active
	c.heads = make(map[string]store.Head, len(s.heads))
	for t, h := range s.heads {
		c.heads[t] = h
	}
	c.touched = make(map[string]*topicDelta)
	c.idem = make(map[string]store.Result)
	c.purged = make(map[string]uint64)
}

// commitLoop is the committer goroutine: it takes appends and trim jobs,
// builds one batch at a time, applies it to Pebble (which writes it to the
// WAL and makes it readable, but does not wait for the fsync), and hands it
// to the publisher. Several batches may thus share one fsync. It returns
// after Close, once every batch it applied has been published.
func (s *Store) commitLoop() {
	pipe := make(chan *inFlight, maxInFlight)
	published := make(chan struct{})
	go s.publishLoop(pipe, published)
	defer func() {
		close(pipe)
		<-published
		close(s.committed)
	}()
	c := &s.c
	for {
		select {
		case r := <-s.reqs:
			c.reqs = append(c.reqs[:0], r)
		drain:
			for len(c.reqs) < maxBatchRequests {
				select {
				case r := <-s.reqs:
					c.reqs = append(c.reqs, r)
				default:
					break drain
				}
			}
			pipe <- c.applyAppends(append([]*appendReq(nil), c.reqs...))
			clear(c.reqs)
		case j := <-s.trims:
			pipe <- c.applyTrim(j)
		case <-s.closing:
			return
		}
	}
}

// publishLoop waits for each applied batch to be durable, then publishes
// its heads to readers, tells the commit listener and answers the requests,
// strictly in the order the batches were applied. Being one goroutine, it
// never calls the listener concurrently.
func (s *Store) publishLoop(pipe <-chan *inFlight, done chan<- struct{}) {
	defer close(done)
	for f := range pipe {
		err := f.err
		if f.batch != nil {
			if err == nil {
				if err = f.batch.SyncWait(); err != nil {
					err = fmt.Errorf("embedded: sync: %w", err)
					s.fail(err)
				}
			}
			_ = f.batch.Close()
		}
		if err == nil {
			err = s.failure() // a batch before this one was lost
		}
		if err == nil && len(f.heads) > 0 {
			s.headsMu.Lock()
			for topic, h := range f.heads {
				s.heads[topic] = h
			}
			close(s.published)
			s.published = make(chan struct{})
			s.headsMu.Unlock()
		}
		if f.timed {
			s.timePublished() // readable now, or never
		}
		if err == nil && s.cfg.OnCommit != nil && len(f.events) > 0 {
			s.cfg.OnCommit(f.events)
		}
		for _, r := range f.reqs {
			if err != nil {
				r.results, r.err = nil, err
			}
			close(r.done)
		}
		if f.trim != nil {
			f.trim.err = err
			close(f.trim.done)
		}
	}
}

// applyAppends builds the batch for reqs and applies it. A failure before
// the batch is applied leaves the assigned heads as they were; a failure to
// sync it is sticky (see Store.fail), since later seqs would follow a gap.
func (c *committer) applyAppends(reqs []*appendReq) *inFlight {
	f := &inFlight{reqs: reqs}
	if f.err = c.s.failure(); f.err != nil {
		return f
	}
	s := c.s
	t := s.assignTime()
	f.timed = true
	b := s.db.NewBatch()
	clear(c.touched)
	clear(c.idem)
	c.moved = c.moved[:0]
	var err error
	for _, r := range reqs {
		if err = c.addRequest(b, r, t, &f.events); err != nil {
			break
		}
	}
	var purges map[string]uint64
	if err == nil {
		purges, err = c.writeHeads(b, t)
	}
	if err == nil {
		if err = s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
			err = fmt.Errorf("embedded: commit: %w", err)
		}
	}
	if err != nil {
		_ = b.Close()
		f.err, f.events = err, nil
		return f
	}
	f.batch = b
	f.heads = make(map[string]store.Head, len(c.touched))
	for topic, td := range c.touched {
		c.heads[topic] = td.head
		f.heads[topic] = td.head
	}
	for topic, p := range purges {
		c.purged[topic] = p
	}
	for _, topic := range c.moved {
		c.active[topic] = t.UnixMicro()
	}
	return f
}

// delta returns the topic's head as this batch has it so far, creating the
// topic (with a new epoch) if it has never been written.
func (c *committer) delta(topic string) *topicDelta {
	if td := c.touched[topic]; td != nil {
		return td
	}
	td := &topicDelta{}
	td.old, td.exists = c.heads[topic]
	td.head = td.old
	if !td.exists {
		td.head = store.Head{Epoch: event.NewEpoch(), First: 1}
	}
	c.touched[topic] = td
	return td
}

// addRequest adds one request's events to the batch and fills its results.
func (c *committer) addRequest(b *pebble.Batch, r *appendReq, t time.Time, events *[]*event.Event) error {
	n := 0
	for i := range r.drafts {
		n += len(r.drafts[i].Topics)
	}
	r.results = make([]store.Result, 0, n)
	for i := range r.drafts {
		d := &r.drafts[i]
		typ := d.Type
		if typ == "" {
			typ = event.DefaultType
		}
		var data []byte
		if d.Data != nil {
			data = append([]byte(nil), d.Data...)
		}
		var tags []string
		if len(d.Tags) > 0 {
			tags = append([]string(nil), d.Tags...)
		}
		var geo *event.Geo
		if d.Geo != nil {
			g := *d.Geo
			geo = &g
		}
		for _, topic := range d.Topics {
			td := c.delta(topic)
			if d.IdempotencyKey != "" {
				res, dup, err := c.lookupIdem(topic, d.IdempotencyKey, td.head.Epoch, t)
				if err != nil {
					return err
				}
				if dup {
					r.results = append(r.results, res)
					continue
				}
			}
			td.head.Last++
			e := &event.Event{
				Topic:          topic,
				Epoch:          td.head.Epoch,
				Seq:            td.head.Last,
				Type:           typ,
				Key:            d.Key,
				Time:           t,
				ContentType:    d.ContentType,
				Data:           data,
				Tags:           tags,
				Geo:            geo,
				IdempotencyKey: d.IdempotencyKey, Coalesce: d.Coalesce,
			}
			c.key = appendEventKey(c.key[:0], topic, e.Seq)
			c.val = appendEvent(c.val[:0], e)
			if err := b.Set(c.key, c.val, nil); err != nil {
				return fmt.Errorf("embedded: batch: %w", err)
			}
			if e.Key != "" {
				c.val = appendLatest(c.val[:0], e)
				if err := b.Set(latestKey(topic, e.Key), c.val, nil); err != nil {
					return fmt.Errorf("embedded: batch: %w", err)
				}
			}
			res := store.Result{Topic: topic, Epoch: e.Epoch, Seq: e.Seq, Time: t}
			if e.IdempotencyKey != "" {
				if err := b.Set(idemKey(topic, e.IdempotencyKey), encodeIdem(t, e.Seq), nil); err != nil {
					return fmt.Errorf("embedded: batch: %w", err)
				}
				dup := res
				dup.Duplicate = true
				c.idem[topic+"\x00"+e.IdempotencyKey] = dup
			}
			r.results = append(r.results, res)
			*events = append(*events, e)
		}
	}
	return nil
}

func appendEventKey(k []byte, topic string, seq uint64) []byte {
	k = append(k, prefixEvent, byte(len(topic)>>8), byte(len(topic)))
	k = append(k, topic...)
	for i := 7; i >= 0; i-- {
		k = append(k, byte(seq>>(8*i)))
	}
	return k
}

// lookupIdem finds an unexpired idempotency key stored earlier: in this
// batch, or in one applied before (synced or not: the committer is the only
// writer, and a duplicate's answer waits for the batches before it).
func (c *committer) lookupIdem(topic, key, epoch string, now time.Time) (store.Result, bool, error) {
	if res, ok := c.idem[topic+"\x00"+key]; ok {
		return res, true, nil
	}
	v, closer, err := c.s.db.Get(idemKey(topic, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return store.Result{}, false, nil
	}
	if err != nil {
		return store.Result{}, false, fmt.Errorf("embedded: idempotency lookup: %w", err)
	}
	ts, seq, err := decodeIdem(v)
	_ = closer.Close()
	if err != nil {
		return store.Result{}, false, err
	}
	if ts <= now.Add(-c.s.window).UnixNano() {
		return store.Result{}, false, nil // expired: the new event replaces it
	}
	return store.Result{
		Topic: topic, Epoch: epoch, Seq: seq,
		Time: time.UnixMicro(ts / 1000).UTC(), Duplicate: true,
	}, true, nil
}

// writeHeads applies count retention to every touched topic, writes the
// heads and moves the activity entries of the topics that got events to t
// (noting them in c.moved). Events trimmed earlier are deleted with one
// range deletion once purgeSlack of them have accumulated below the
// published First, which readers already respect. It returns the new purge
// marks, to apply once the batch is applied.
func (c *committer) writeHeads(b *pebble.Batch, t time.Time) (map[string]uint64, error) {
	maxEvents := uint64(max(c.s.cfg.Retention.MaxEvents, 0))
	us := t.UnixMicro()
	var purges map[string]uint64
	for topic, td := range c.touched {
		h := &td.head
		if maxEvents > 0 && h.Last >= h.First && h.Last-h.First+1 > maxEvents {
			h.First = h.Last - maxEvents + 1
		}
		if td.exists && td.old == *h {
			continue // only duplicates
		}
		if err := b.Set(headKey(topic), encodeHead(*h), nil); err != nil {
			return nil, fmt.Errorf("embedded: batch: %w", err)
		}
		if h.Last > td.old.Last {
			if err := c.moveActivity(b, topic, us); err != nil {
				return nil, err
			}
		}
		if !td.exists {
			continue
		}
		c.s.headsMu.RLock()
		first := c.s.heads[topic].First
		c.s.headsMu.RUnlock()
		if first >= c.purged[topic]+purgeSlack {
			if err := purge(b, topic, first); err != nil {
				return nil, err
			}
			if purges == nil {
				purges = make(map[string]uint64)
			}
			purges[topic] = first
		}
	}
	return purges, nil
}

// moveActivity adds to the batch the move of topic's activity entry to us.
func (c *committer) moveActivity(b *pebble.Batch, topic string, us int64) error {
	old, ok := c.active[topic]
	if ok && old == us {
		return nil
	}
	if ok {
		if err := b.Delete(activityKey(old, topic), nil); err != nil {
			return fmt.Errorf("embedded: batch: %w", err)
		}
	}
	if err := b.Set(activityKey(us, topic), nil, nil); err != nil {
		return fmt.Errorf("embedded: batch: %w", err)
	}
	c.moved = append(c.moved, topic)
	return nil
}

// purge adds the deletion of the topic's events below first to the batch.
func purge(b *pebble.Batch, topic string, first uint64) error {
	if err := b.DeleteRange(eventKey(topic, 0), eventKey(topic, first), nil); err != nil {
		return fmt.Errorf("embedded: batch: %w", err)
	}
	return nil
}
