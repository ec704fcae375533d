package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// Limits on one script call and one pipeline. A single Append's events for
// one topic always go in one call, whatever their number.
const (
	maxCallEvents   = 512
	maxCallBytes    = 1 << 20
	maxPipeTopics   = 64
	idemHeaderBytes = 64
)

// appendReq is one Append call.
type appendReq struct {
	drafts   []event.Draft
	data     [][]byte // per draft: a private copy of Data, shared by its events
	results  []store.Result
	pending  int  // parts not finished; guarded by committer.mu
	canceled bool // the caller gave up; guarded by committer.mu
	err      error
	done     chan struct{} // closed when pending reaches 0
}

// part is the share of one request that goes to one topic.
type part struct {
	req    *appendReq
	topic  string
	drafts []int // indexes into req.drafts, in order
	slots  []int // the matching indexes into req.results
	size   int   // approximate encoded bytes
}

// topicQueue is a topic's waiting parts.
type topicQueue struct {
	parts    []*part
	inflight bool // a script call for the topic is in flight
	ready    bool // the topic is in committer.ready
}

// call is one script call: the parts of one topic sent together.
type call struct {
	topic string
	parts []*part
}

// committer group-commits appends (see the package documentation).
type committer struct {
	s          *Store
	sem        chan struct{} // one token per pipeline in flight
	kick       chan struct{} // wakes the dispatcher
	dispatched chan struct{} // closed when the dispatcher has returned
	lisMu      sync.Mutex    // serialises calls of Config.OnCommit
	pipes      sync.WaitGroup

	leaseMu sync.Mutex
	leases  map[string]lease // on a cluster: index entries written ahead

	mu      sync.Mutex
	queues  map[string]*topicQueue
	ready   []string // topics with queued parts and no call in flight
	closing bool
	reqs    sync.WaitGroup // accepted requests not yet finished
}

func (c *committer) init(s *Store, pipelines int) {
	c.s = s
	c.sem = make(chan struct{}, pipelines)
	c.kick = make(chan struct{}, 1)
	c.dispatched = make(chan struct{})
	c.queues = make(map[string]*topicQueue)
	c.leases = make(map[string]lease)
}

// On a cluster the index entry of a topic is written ahead of its events
// (indexLua), clusterAhead past the clock, and then serves its appends for
// clusterLease without being written again; an append it would not cover
// is refused by the script and sent again after a new entry.
const (
	clusterAhead = 2 * time.Second
	clusterLease = time.Second
	maxLeases    = 1 << 16 // past it, expired leases are dropped
)

// lease is an index entry this store wrote: its time, and when (by this
// process's monotonic clock).
type lease struct {
	until   string // unix µs, as the index script answered it
	written time.Time
}

// shutdown stops accepting requests and waits until every accepted one is
// finished.
func (c *committer) shutdown() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.reqs.Wait()
}

// Append implements store.Log. Once the request is queued, a canceled ctx
// makes Append return ctx.Err() at once; parts of it not yet sent are then
// dropped, parts already sent complete (and reach the commit listener).
func (s *Store) Append(ctx context.Context, drafts []event.Draft) ([]store.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, parts := newRequest(drafts)
	if len(parts) == 0 {
		c := &s.c
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return nil, store.ErrClosed
		}
		return nil, nil
	}
	c := &s.c
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, store.ErrClosed
	}
	c.reqs.Add(1)
	r.pending = len(parts)
	for _, p := range parts {
		q := c.queues[p.topic]
		if q == nil {
			q = &topicQueue{}
			c.queues[p.topic] = q
		}
		q.parts = append(q.parts, p)
		if !q.inflight && !q.ready {
			q.ready = true
			c.ready = append(c.ready, p.topic)
		}
	}
	c.mu.Unlock()
	c.wake()
	select {
	case <-r.done:
	case <-ctx.Done():
		c.mu.Lock()
		r.canceled = true
		c.mu.Unlock()
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.results, nil
}

// newRequest splits drafts into one part per topic, in order of first
// appearance.
func newRequest(drafts []event.Draft) (*appendReq, []*part) {
	r := &appendReq{drafts: drafts, data: make([][]byte, len(drafts)), done: make(chan struct{})}
	var parts []*part
	byTopic := make(map[string]*part)
	slot := 0
	for i := range drafts {
		d := &drafts[i]
		if d.Data != nil {
			r.data[i] = append([]byte(nil), d.Data...)
		}
		size := bodySize(d) + idemHeaderBytes
		for _, topic := range d.Topics {
			p := byTopic[topic]
			if p == nil {
				p = &part{req: r, topic: topic}
				byTopic[topic] = p
				parts = append(parts, p)
			}
			p.drafts = append(p.drafts, i)
			p.slots = append(p.slots, slot)
			p.size += size
			slot++
		}
	}
	r.results = make([]store.Result, slot)
	return r, parts
}

func (c *committer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// dispatchLoop sends pipelines of script calls, one call per topic with
// queued parts and no call in flight, with at most cap(sem) pipelines in
// flight. It returns after Close, once every pipeline has finished.
func (c *committer) dispatchLoop() {
	defer close(c.dispatched)
	for {
		select {
		case <-c.kick:
		case <-c.s.stop:
			c.pipes.Wait()
			return
		}
		for {
			c.sem <- struct{}{}
			batch := c.take()
			if len(batch) == 0 {
				<-c.sem
				break
			}
			c.pipes.Add(1)
			go func() {
				defer c.pipes.Done()
				c.run(batch)
				<-c.sem
				c.wake()
			}()
		}
	}
}

// take removes the next batch of calls from the queues and marks their
// topics in flight.
func (c *committer) take() []*call {
	c.mu.Lock()
	defer c.mu.Unlock()
	var batch []*call
	for len(c.ready) > 0 && len(batch) < maxPipeTopics {
		topic := c.ready[0]
		c.ready[0] = ""
		c.ready = c.ready[1:]
		q := c.queues[topic]
		q.ready = false
		cl := &call{topic: topic}
		n, size := 0, 0
		for len(q.parts) > 0 {
			p := q.parts[0]
			if p.req.canceled {
				q.parts[0] = nil
				q.parts = q.parts[1:]
				c.finishLocked(p.req, nil)
				continue
			}
			if n > 0 && (n+len(p.drafts) > maxCallEvents || size+p.size > maxCallBytes) {
				break
			}
			cl.parts = append(cl.parts, p)
			n += len(p.drafts)
			size += p.size
			q.parts[0] = nil
			q.parts = q.parts[1:]
		}
		if len(cl.parts) == 0 {
			delete(c.queues, topic)
			continue
		}
		q.inflight = true
		batch = append(batch, cl)
	}
	if len(c.ready) == 0 {
		c.ready = nil // let the backing array go
	}
	return batch
}

// finishLocked records that one part of r is done (with err, if not nil).
func (c *committer) finishLocked(r *appendReq, err error) {
	if err != nil && r.err == nil {
		r.err = err
	}
	r.pending--
	if r.pending == 0 {
		close(r.done)
		c.reqs.Done()
	}
}

// callResult is what one script call answered.
type callResult struct {
	err    error
	head   store.Head
	events []*event.Event // newly stored, in seq order
}

// run sends one pipeline, tells the commit listener of what was stored and
// answers the parts.
func (c *committer) run(batch []*call) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	us := strconv.FormatInt(s.now().UnixMicro(), 10)
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(batch))
	args := make([][]any, len(batch))
	keys := make([][]string, len(batch))
	var caps map[string]string
	if s.cluster {
		var err error
		if caps, err = c.leaseIndex(ctx, batch, us); err != nil {
			c.finish(batch, err)
			return
		}
	}
	for i, cl := range batch {
		keys[i], args[i] = c.scriptArgs(cl, us, caps)
		cmds[i] = pipe.EvalSha(ctx, s.scripts.append.Hash(), keys[i], args[i]...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	// A server that lost its script cache (restart, SCRIPT FLUSH) ran
	// nothing for NOSCRIPT: send those calls again with the source.
	var retry []int
	for i, cmd := range cmds {
		if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe := s.rdb.Pipeline()
		for _, i := range retry {
			cmds[i] = pipe.Eval(ctx, appendLua, keys[i], args[i]...)
		}
		_, _ = pipe.Exec(ctx)
		_ = s.scripts.append.Load(ctx, s.rdb).Err()
	}
	if s.cluster {
		c.reindex(ctx, batch, cmds, keys, args, us)
	}
	results := make([]callResult, len(batch))
	for i, cl := range batch {
		results[i] = c.parse(cl, cmds[i])
	}
	// The listener first, then the topics are freed: a topic's next call
	// cannot reach the listener before this one.
	if l := s.cfg.OnCommit; l != nil {
		c.lisMu.Lock()
		for _, r := range results {
			if r.err == nil && len(r.events) > 0 {
				l(r.events)
			}
		}
		c.lisMu.Unlock()
	}
	errs := make([]error, len(batch))
	for i := range results {
		errs[i] = results[i].err
	}
	c.release(batch, errs)
}

// finish answers every part of batch with err (nothing was sent).
func (c *committer) finish(batch []*call, err error) {
	errs := make([]error, len(batch))
	for i := range errs {
		errs[i] = err
	}
	c.release(batch, errs)
}

// release answers the parts of each call with its error (nil: done) and
// frees the calls' topics for their next call.
func (c *committer) release(batch []*call, errs []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cl := range batch {
		for _, p := range cl.parts {
			c.finishLocked(p.req, errs[i])
		}
		q := c.queues[cl.topic]
		q.inflight = false
		switch {
		case len(q.parts) > 0 && !q.ready:
			q.ready = true
			c.ready = append(c.ready, cl.topic)
		case len(q.parts) == 0:
			delete(c.queues, cl.topic)
		}
	}
}

// leaseIndex returns, for each topic of batch, the time its index entry
// covers (see lease), writing new entries for the topics without a lease
// still in force; a topic whose entry was written now is marked with a
// leading "+".
func (c *committer) leaseIndex(ctx context.Context, batch []*call, us string) (map[string]string, error) {
	caps := make(map[string]string, len(batch))
	var need []any
	c.leaseMu.Lock()
	for _, cl := range batch {
		if l, ok := c.leases[cl.topic]; ok && time.Since(l.written) < clusterLease {
			caps[cl.topic] = l.until
		} else {
			need = append(need, cl.topic)
		}
	}
	c.leaseMu.Unlock()
	if len(need) == 0 {
		return caps, nil
	}
	written := time.Now()
	args := append([]any{us, strconv.FormatInt(clusterAhead.Microseconds(), 10)}, need...)
	until, err := c.s.scripts.index.Run(ctx, c.s.rdb, []string{c.s.index}, args...).Text()
	if err != nil {
		return nil, fmt.Errorf("redis store: activity index: %w", err)
	}
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if len(c.leases) > maxLeases {
		for t, l := range c.leases {
			if time.Since(l.written) >= clusterLease {
				delete(c.leases, t)
			}
		}
	}
	for _, t := range need {
		topic := t.(string)
		c.leases[topic] = lease{until: until, written: written}
		caps[topic] = "+" + until
	}
	return caps, nil
}

// reindex sends again, after writing their topics' index entries, the
// calls of a cluster pipeline that the script refused (HUBBUB_REINDEX:
// nothing was stored), once.
func (c *committer) reindex(ctx context.Context, batch []*call, cmds []*goredis.Cmd, keys [][]string, args [][]any, us string) {
	var again []*call
	var at []int
	from, _ := strconv.ParseInt(us, 10, 64)
	c.leaseMu.Lock()
	for i, cmd := range cmds {
		if err := cmd.Err(); goredis.HasErrorPrefix(err, "HUBBUB_REINDEX") {
			delete(c.leases, batch[i].topic)
			again, at = append(again, batch[i]), append(at, i)
			// The time the append needs (the topic's last may be ahead).
			f := strings.Fields(strings.TrimPrefix(err.Error(), "HUBBUB_REINDEX"))
			if len(f) > 0 {
				if need, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					from = max(from, need)
				}
			}
		}
	}
	c.leaseMu.Unlock()
	if len(again) == 0 {
		return
	}
	caps, err := c.leaseIndex(ctx, again, strconv.FormatInt(from, 10))
	if err != nil {
		for _, i := range at {
			cmds[i] = goredis.NewCmd(ctx)
			cmds[i].SetErr(err)
		}
		return
	}
	pipe := c.s.rdb.Pipeline()
	for j, cl := range again {
		i := at[j]
		keys[i], args[i] = c.scriptArgs(cl, us, caps)
		cmds[i] = pipe.Eval(ctx, appendLua, keys[i], args[i]...)
	}
	_, _ = pipe.Exec(ctx)
}

// scriptArgs builds the keys and arguments of a call's append script; caps
// are the index entries' times on a cluster (see leaseIndex).
func (c *committer) scriptArgs(cl *call, us string, caps map[string]string) ([]string, []any) {
	s := c.s
	b := s.base(cl.topic)
	keys := []string{b + "log", b + "meta", b + "latest", b + "keys"}
	mode, lag, until, fresh := "i", "0", "0", "0"
	if s.cluster {
		mode, lag = "c", strconv.FormatInt(clusterLag.Microseconds(), 10)
		until = caps[cl.topic]
		if u, ok := strings.CutPrefix(until, "+"); ok {
			until, fresh = u, "1"
		}
	} else {
		keys = append(keys, s.index)
	}
	n := 0
	for _, p := range cl.parts {
		n += len(p.drafts)
	}
	channel := s.Channel(cl.topic)
	args := make([]any, 0, appendHeader+3*n)
	args = append(args,
		event.NewEpoch(),
		us,
		strconv.Itoa(max(s.cfg.Retention.MaxEvents, 0)),
		strconv.FormatInt(s.window.Microseconds(), 10),
		strconv.FormatInt(max(s.window.Milliseconds(), 1), 10),
		channel,
		s.pubCmd,
		cl.topic,
		mode,
		lag,
		until,
		fresh,
	)
	idem := map[string]int{}
	for _, p := range cl.parts {
		for _, di := range p.drafts {
			d := &p.req.drafts[di]
			ik := "0"
			if d.IdempotencyKey != "" {
				k, ok := idem[d.IdempotencyKey]
				if !ok {
					keys = append(keys, b+"idem:"+d.IdempotencyKey)
					k = len(keys)
					idem[d.IdempotencyKey] = k
				}
				ik = strconv.Itoa(k)
			}
			args = append(args, appendBody(make([]byte, 0, bodySize(d)), d), d.Key, ik)
		}
	}
	return keys, args
}

// parse reads a call's answer into its parts' results, and returns the
// events it stored.
func (c *committer) parse(cl *call, cmd *goredis.Cmd) callResult {
	v, err := cmd.Slice()
	if err != nil {
		return callResult{err: fmt.Errorf("redis store: append to %q: %w", cl.topic, err)}
	}
	h, err := parseHead(v)
	n := 0
	for _, p := range cl.parts {
		n += len(p.drafts)
	}
	if err == nil && (h.Epoch == "" || len(v) != 3+3*n) {
		err = fmt.Errorf("%d values for %d events: %w", len(v), n, errCorrupt)
	}
	if err != nil {
		return callResult{err: fmt.Errorf("redis store: append to %q: %w", cl.topic, err)}
	}
	out := callResult{head: h}
	i := 3
	for _, p := range cl.parts {
		for j, di := range p.drafts {
			seqStr, _ := v[i].(string)
			ts, _ := v[i+1].(string)
			dup, _ := v[i+2].(int64)
			i += 3
			seq, err1 := strconv.ParseUint(seqStr, 10, 64)
			t, err2 := parseMicros(ts)
			if err1 != nil || err2 != nil {
				return callResult{err: fmt.Errorf("redis store: append to %q: result %q %q: %w", cl.topic, seqStr, ts, errCorrupt)}
			}
			res := store.Result{Topic: cl.topic, Epoch: h.Epoch, Seq: seq, Time: t, Duplicate: dup == 1}
			p.req.results[p.slots[j]] = res
			if res.Duplicate {
				continue
			}
			d := &p.req.drafts[di]
			typ := d.Type
			if typ == "" {
				typ = event.DefaultType
			}
			e := &event.Event{
				Topic: cl.topic, Epoch: h.Epoch, Seq: seq, Type: typ, Key: d.Key, Time: t,
				ContentType: d.ContentType, Data: p.req.data[di], IdempotencyKey: d.IdempotencyKey, Coalesce: d.Coalesce,
			}
			if len(d.Tags) > 0 {
				e.Tags = append([]string(nil), d.Tags...)
			}
			if d.Geo != nil {
				g := *d.Geo
				e.Geo = &g
			}
			out.events = append(out.events, e)
		}
	}
	return out
}
