package websub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/feed"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/topicurl"
)

// Delivery limits.
const (
	maxPostsPerRun  = 100 // POSTs per deliver task run; more work re-enqueues
	readCount       = 50  // events read from the log at a time (at least Batch)
	maxFeedEntries  = 50  // entries per aggregated feed delivery
	maxResetsPerRun = 3
	enqueueWorkers  = 64 // concurrent Enqueue calls of the enqueuer
)

// errStale means the subscription was replaced (unsubscribed and
// subscribed again) while a delivery ran; the run stops.
var errStale = errors.New("websub: subscription replaced during delivery")

// OnCommit notes that the events' topics have new events. Call it from the
// store's commit listener (of this process's appends: with a shared store,
// each node notes its own commits). It never blocks and does no I/O: it
// adds topic names to an in-memory set (bounded by the number of topics
// written between two rounds of the enqueuer, however many events arrive)
// that a goroutine turns into deliver tasks for the topics'
// subscriptions, looking them up in Records there (which may do I/O). If
// the process dies before that, Run's reconciliation finds the
// subscriptions behind their topic's head and enqueues them, so no event
// is lost.
func (h *Hub) OnCommit(events []*event.Event) {
	if len(events) == 0 {
		return
	}
	last := ""
	h.pendMu.Lock()
	for _, e := range events {
		if e.Topic == last {
			continue
		}
		last = e.Topic
		h.pending[e.Topic] = struct{}{}
	}
	h.pendMu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// enqueueLoop turns pending topics into deliver tasks until Close.
func (h *Hub) enqueueLoop() {
	defer close(h.done)
	for {
		select {
		case <-h.wake:
		case <-h.quit:
			return
		}
		for range 1 << 20 { // bounded; each round empties what was there
			h.pendMu.Lock()
			topics := make([]string, 0, min(len(h.pending), 256))
			for topic := range h.pending {
				topics = append(topics, topic)
				delete(h.pending, topic)
				if len(topics) == cap(topics) {
					break
				}
			}
			h.pendMu.Unlock()
			if len(topics) == 0 {
				break
			}
			var subs []Subscription
			for _, topic := range topics {
				if h.o.Records.Count(topic) == 0 {
					continue
				}
				subs = append(subs, h.o.Records.ListByTopic(topic)...)
			}
			h.enqueueAll(subs)
			select {
			case <-h.quit:
				return
			default:
			}
		}
	}
}

// enqueueAll enqueues the deliveries of subs concurrently, so the queue's
// fsyncs are shared (group commit): one at a time, a fan-out to thousands
// of subscriptions would wait for thousands of fsyncs.
func (h *Hub) enqueueAll(subs []Subscription) {
	if len(subs) == 0 {
		return
	}
	ctx, cancel := bg(time.Minute)
	defer cancel()
	full := h.fullBatches(ctx, subs)
	var wg sync.WaitGroup
	sem := make(chan struct{}, enqueueWorkers)
	for i := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := h.enqueueDeliverWait(ctx, &subs[i], !full[i]); err != nil {
				h.log.Error("websub: enqueue delivery failed; reconciliation will retry", "subscription", subs[i].ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// errCoalescing is what a delivery waiting out a publish's coalescing
// window returns to the task runner with its RetryAfter.
var errCoalescing = errors.New("websub: waiting out a coalescing window")

// fullBatches reports, for each of subs that may wait for a fuller batch
// (hub.batch_wait_ms), whether its log already holds a full batch
// (hub.batch events) after its cursor: that one goes out at once. It reads
// each such topic's head once. A cursor that is stale or from another
// epoch counts as full; the delivery run checks again.
func (h *Hub) fullBatches(ctx context.Context, subs []Subscription) []bool {
	full := make([]bool, len(subs))
	heads := map[string]store.Head{}
	for i := range subs {
		s := &subs[i]
		if s.Batch < 2 || s.BatchWaitMS == 0 {
			continue
		}
		head, ok := heads[s.LogTopic]
		if !ok {
			var err error
			if head, err = h.o.Log.Head(ctx, s.LogTopic); err != nil {
				full[i] = true // no head: do not hold the batch back
				continue
			}
			heads[s.LogTopic] = head
		}
		full[i] = head.Epoch != s.Cursor.Epoch || head.Last >= s.Cursor.Seq+uint64(s.Batch)
	}
	return full
}

// errBatching is what a delivery whose batch waits for more events
// (hub.batch_wait_ms) returns to the task runner with its RetryAfter.
var errBatching = errors.New("websub: waiting for a fuller batch")

func (s *Subscription) batchWait() time.Duration {
	return time.Duration(s.BatchWaitMS) * time.Millisecond
}

// firstWindowed returns the first keyed event that asked for coalescing,
// or nil.
func firstWindowed(events []*event.Event) *event.Event {
	for _, e := range events {
		if e.Key != "" && e.Coalesce > 0 {
			return e
		}
	}
	return nil
}

// enqueueDeliver queues the delivery task of subscription s (as recently
// read), not before its retry time; nothing for a suspended one. A stale s
// is harmless: the task reads
// the record again when it runs, and waits for NextAttempt then.
func (h *Hub) enqueueDeliver(ctx context.Context, s *Subscription) error {
	return h.enqueueDeliverWait(ctx, s, true)
}

// enqueueDeliverWait is enqueueDeliver; batchWait false leaves out
// hub.batch_wait_ms, for a follow-up run of a backlog, whose batches are
// full.
func (h *Hub) enqueueDeliverWait(ctx context.Context, s *Subscription, batchWait bool) error {
	if s.State == StateSuspended {
		return nil // no task churn for a suspended subscription; Resume enqueues
	}
	t := tasks.Task{Kind: KindDeliver, Key: s.ID, Payload: []byte(s.ID)}
	if s.NextAttempt.After(h.now()) {
		t.RunAt = s.NextAttempt
	} else {
		// A coalescing topic: deliver a window after the first event, so
		// the updates to one document within it go out as one. A batch
		// that may wait (hub.batch_wait_ms) likewise goes out a wait after
		// its first event. Enqueue only ever moves a pending task
		// earlier, so later events do not push it back.
		w := h.o.Hub.CoalesceWindow([]string{s.LogTopic})
		if batchWait && s.Batch > 1 {
			w = max(w, s.batchWait())
		}
		if w > 0 {
			t.RunAt = h.now().Add(w)
		}
	}
	if _, _, err := h.o.Tasks.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("websub: enqueue delivery: %w", err)
	}
	return nil
}

// handleDeliver runs a deliver task: it POSTs the subscription's events
// after its cursor, in log order, advancing the cursor after each 2xx.
//
// Fairness: at most PerHostConcurrency deliveries per callback host are in
// flight (out of DeliverConcurrency workers). A delivery to a host at its
// cap does not wait on a worker: the task is put back for a little later
// (busyWait), without counting as the subscription's failure. So a slow
// or silent host holds at most PerHostConcurrency workers, each for at
// most HTTPTimeout, and deliveries to other hosts go on meanwhile.
func (h *Hub) handleDeliver(ctx context.Context, t tasks.Task) error {
	id := string(t.Payload)
	s, ok, err := h.o.Records.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("websub: get subscription: %w", err)
	}
	if !ok {
		return nil
	}
	now := h.now()
	if s.Expired(now) {
		h.expire(ctx, s)
		return nil
	}
	if s.State == StateSuspended {
		return nil // Resume queues a new run
	}
	if now.Before(s.NextAttempt) {
		return tasks.RetryAfter(s.NextAttempt.Sub(now), errors.New("websub: waiting for the subscription's retry time"))
	}
	var f *filter.Filter
	if s.Filter != "" {
		if f, err = filter.ParseJSON([]byte(s.Filter)); err != nil {
			h.log.Warn("websub: stored filter no longer parses; delivering unfiltered", "subscription", id, "err", err)
			f = nil
		}
	}
	if s, err = h.checkHead(ctx, s); err != nil {
		return stop(err)
	}
	var buf []*event.Event
	var bufEnd event.Position // cursor after everything the read examined
	atHead := false           // the last read may have reached the log's end
	resets := 0
	for posts := 0; posts < maxPostsPerRun; {
		if len(buf) == 0 {
			count := min(max(readCount, s.Batch), hub.MaxCount)
			res, err := h.o.Hub.Retrieve(ctx, hub.RetrieveRequest{
				Topics: []string{s.LogTopic},
				Cursor: event.Cursor{s.LogTopic: s.Cursor},
				After:  true,
				Count:  count,
				Filter: f,
				Quiet:  true, // the lease counts as listening, not each delivery
			})
			if err != nil {
				return fmt.Errorf("websub: read %q: %w", s.LogTopic, err)
			}
			if len(res.Resets) > 0 { // trimmed since checkHead
				if resets++; resets > maxResetsPerRun {
					return errors.New("websub: the log keeps moving under the cursor")
				}
				if s, err = h.checkHead(ctx, s); err != nil {
					return stop(err)
				}
				continue
			}
			buf, bufEnd = res.Events, res.Cursor[s.LogTopic]
			atHead = len(res.Events) < count
			first := firstWindowed(buf)
			if first != nil {
				// A publish asked for its updates to be coalesced: wait
				// until its window has passed, then send the latest.
				if wait := first.Time.Add(first.Coalesce).Sub(h.now()); wait > 0 {
					return tasks.RetryAfter(wait, errCoalescing)
				}
			}
			if first != nil || h.o.Hub.CoalesceWindow([]string{s.LogTopic}) > 0 {
				// Only the latest version of each document goes out; the
				// cursor still moves past the versions left out.
				buf = hub.CoalesceEvents(buf)
			}
			if len(buf) == 0 {
				if bufEnd != s.Cursor { // filtered-out events examined
					if s, err = h.advance(ctx, s, bufEnd, false); err != nil {
						return stop(err)
					}
					posts++
					continue
				}
				return nil // caught up
			}
		}
		n, body, ctype := h.compose(&s, buf)
		if s.BatchWaitMS > 0 && n == len(buf) && atHead && n < s.Batch && (s.BatchBytes == 0 || len(body) < s.BatchBytes) {
			// A partial batch: wait until its oldest event has waited
			// hub.batch_wait_ms for more to join it.
			if wait := buf[0].Time.Add(s.batchWait()).Sub(h.now()); wait > 0 {
				return tasks.RetryAfter(wait, errBatching)
			}
		}
		status, retryAfter, err := h.post(ctx, &s, body, ctype)
		if errors.Is(err, errHostBusy) {
			return tasks.RetryAfter(busyWait(t.Attempt, h.o.HTTPTimeout), err) // not the subscription's failure
		}
		h.obs.Delivered(&s, n, status, err)
		switch {
		case err == nil && status >= 200 && status <= 299:
			next := buf[n-1].Position()
			if n == len(buf) {
				next = bufEnd
			}
			if s, err = h.advance(ctx, s, next, true); err != nil {
				return stop(err)
			}
			buf = buf[n:]
			posts++
			continue
		case status == http.StatusGone:
			// Only the subscription that got the 410: one made again
			// meanwhile (a new Created) stays.
			if _, err := h.o.Records.DeleteIf(ctx, s.ID, func(c Subscription) bool { return c.Created.Equal(s.Created) }); err != nil {
				return fmt.Errorf("websub: remove gone subscription: %w", err)
			}
			h.obs.Removed(&s, "gone")
			h.log.Info("websub: callback answered 410; subscription removed", "topic", s.Topic, "callback", s.Callback)
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("websub: delivery interrupted: %w", err) // shutdown or lost lease: not the callback's fault
		}
		if err == nil {
			err = fmt.Errorf("callback answered %d", status)
		}
		return h.failed(ctx, s, retryAfter, err)
	}
	// More to deliver: a follow-up run (it waits for this one to end).
	return h.enqueueDeliverWait(ctx, &s, false)
}

// busyWait is how long a delivery to a busy host waits before its next
// try: 500ms doubling with the task's runs, up to limit, equal jitter.
func busyWait(attempt int, limit time.Duration) time.Duration {
	return backoff.Policy{Base: 500 * time.Millisecond, Max: limit}.Delay(attempt, 0, backoff.Equal)
}

// stop ends a run without retrying when the subscription went away, or its
// cursor was moved by a Replay (which queued a run of its own).
func stop(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, errStale) {
		return nil
	}
	return err
}

// advance moves s's cursor to next; ok also records a successful delivery.
// It does not wait for the move to be durable where the records allow
// (LazyUpdater): a crash just after it re-delivers what it moved past.
func (h *Hub) advance(ctx context.Context, s Subscription, next event.Position, ok bool) (Subscription, error) {
	now := h.now()
	return h.advanceUpdate(ctx, s.ID, func(cur *Subscription) error {
		if !cur.Created.Equal(s.Created) || cur.Cursor != s.Cursor {
			return errStale // gone, or replayed meanwhile: that run's task goes on
		}
		cur.Cursor = next
		if ok {
			cur.Failures, cur.State, cur.LastError = 0, StateActive, ""
			cur.NextAttempt, cur.FailingSince, cur.LastSuccess = time.Time{}, time.Time{}, now
		}
		return nil
	})
}

// failed records a failed delivery and asks for a retry at the time it
// chose: Retry-After when the callback sent one, else exponential backoff
// on the consecutive failures (h.retry, equal jitter). The subscription
// keeps its cursor. When its deliveries have failed for SuspendAfter
// since the first failure of the run, it is suspended instead: the task
// ends and no retry is scheduled.
func (h *Hub) failed(ctx context.Context, s Subscription, retryAfter time.Duration, cause error) error {
	now := h.now()
	delay := h.retry.Delay(s.Failures, retryAfter, backoff.Equal)
	cur, err := h.o.Records.Update(ctx, s.ID, func(cur *Subscription) error {
		if !cur.Created.Equal(s.Created) {
			return errStale
		}
		if cur.Failures == 0 || cur.FailingSince.IsZero() {
			cur.FailingSince = now // records from before FailingSince count from now
		}
		cur.Failures++
		cur.LastError = cause.Error()
		cur.NextAttempt = now.Add(delay)
		switch {
		case h.o.SuspendAfter > 0 && now.Sub(cur.FailingSince) >= h.o.SuspendAfter:
			cur.State, cur.NextAttempt = StateSuspended, time.Time{}
		case cur.Failures >= h.o.FailingAfter:
			cur.State = StateFailing
		}
		return nil
	})
	if err != nil {
		return stop(err)
	}
	if cur.State == StateSuspended {
		h.log.Warn("websub: subscription suspended: deliveries kept failing; resume it with POST /api/subscriptions/{id}/resume",
			"subscription", cur.ID, "topic", cur.Topic, "callback", cur.Callback, "failures", cur.Failures,
			"failing_since", cur.FailingSince, "err", cause)
		return nil
	}
	if cur.Failures == h.o.FailingAfter {
		h.log.Warn("websub: subscription is failing", "topic", s.Topic, "callback", s.Callback, "failures", cur.Failures, "err", cause)
	}
	return tasks.RetryAfter(delay, fmt.Errorf("websub: delivery to %s: %w", s.Callback, cause))
}

// checkHead moves a cursor the log no longer honours to the earliest
// event held (the hub's reset semantics), counting the events retention
// removed before the subscription got them.
func (h *Hub) checkHead(ctx context.Context, s Subscription) (Subscription, error) {
	head, err := h.o.Log.Head(ctx, s.LogTopic)
	if err != nil {
		return s, fmt.Errorf("websub: head of %q: %w", s.LogTopic, err)
	}
	cur := s.Cursor
	next := cur
	var lost uint64
	earliest := event.Position{Epoch: head.Epoch, Seq: head.First - 1}
	switch {
	case head.Epoch == "":
		return s, nil // never written
	case cur.Epoch != "" && cur.Epoch != head.Epoch:
		next = earliest // the log was replaced; how much was lost is unknown
		h.log.Warn("websub: topic log epoch changed; delivering from its start", "topic", s.LogTopic, "callback", s.Callback)
	case cur.Seq > head.Last:
		next = earliest
	case cur.Seq < head.First-1:
		next, lost = earliest, head.First-1-cur.Seq
	default:
		next.Epoch = head.Epoch
	}
	if next == cur {
		return s, nil
	}
	out, err := h.o.Records.Update(ctx, s.ID, func(c *Subscription) error {
		if !c.Created.Equal(s.Created) {
			return errStale
		}
		if c.Cursor != cur {
			return ErrNoChange // moved meanwhile; the next read sorts it out
		}
		c.Cursor = next
		c.Dropped += lost
		return nil
	})
	if err != nil {
		return s, err
	}
	if lost > 0 {
		h.obs.Dropped(&out, lost)
		h.log.Warn("websub: events trimmed before delivery", "topic", s.LogTopic, "callback", s.Callback, "dropped", lost)
	}
	return out, nil
}

// links returns the rel="hub" and rel="self" URLs of s's deliveries: the
// hub's WebSub endpoint, as discovery names it (BASE/hub), and the topic
// URL the subscriber subscribed to, or for a topic it named by its bare
// name, that topic's URL (BASE/topics/NAME).
func (h *Hub) links(s *Subscription) (hubURL, self string) {
	base := strings.TrimRight(h.o.PublicURL, "/")
	if base == "" {
		// From the subscription request; older records hold the URL it
		// was POSTed to, "/" or "/hub".
		base = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(s.HubURL, "/"), "/hub"), "/")
	}
	self = s.Topic
	if u, err := url.Parse(s.Topic); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		self = topicurl.Self(base, []string{s.LogTopic}, s.Format, nil)
	}
	return topicurl.Hub(base), self
}

// compose builds the next POST from the first events of evs (at least
// one): n is how many it carries. With Batch > 1, a JSON array of up to
// Batch wire events, and no longer than BatchBytes (when set) unless its
// one event is; for a subscription to a feed URL (Format), a feed of
// that format with up to maxFeedEntries events; for feed content, one
// feed of consecutive entries of the same feed type; for JSON events, the
// data as application/json; for any other event, its bytes with its own
// Content-Type.
func (h *Hub) compose(s *Subscription, evs []*event.Event) (n int, body []byte, ctype string) {
	first := evs[0]
	if s.Format != "" && s.Batch <= 1 && feedKind(first.ContentType) != s.Format {
		return h.composeFeed(s, evs)
	}
	if s.Batch > 1 {
		var b bytes.Buffer
		b.WriteByte('[')
		for _, e := range evs[:min(len(evs), s.Batch)] {
			js := event.NewItem(e).JSON()
			if n > 0 {
				if s.BatchBytes > 0 && b.Len()+1+len(js)+1 > s.BatchBytes {
					break // hub.batch_bytes: the rest go in the next POST
				}
				b.WriteByte(',')
			}
			b.Write(js)
			n++
		}
		b.WriteByte(']')
		return n, b.Bytes(), "application/json"
	}
	if ft := feedKind(first.ContentType); ft != "" {
		n = 1
		for n < len(evs) && n < maxFeedEntries && feedKind(evs[n].ContentType) == ft {
			n++
		}
		if b, err := mergeFeeds(ft, evs[:n]); err == nil {
			return n, b, first.ContentType
		}
		return 1, first.Data, first.ContentType // not a feed we can merge: as published
	}
	if first.ContentType == "" {
		if len(first.Data) == 0 {
			return 1, []byte("null"), "application/json"
		}
		return 1, first.Data, "application/json"
	}
	return 1, first.Data, first.ContentType
}

// composeFeed renders up to maxFeedEntries events as a feed in s.Format,
// as GET on its topic URL would show them.
func (h *Hub) composeFeed(s *Subscription, evs []*event.Event) (n int, body []byte, ctype string) {
	n = min(len(evs), maxFeedEntries)
	hubURL, self := h.links(s)
	m := feed.Meta{Title: s.LogTopic, Topic: s.LogTopic, SelfURL: self, HubURL: hubURL, Updated: h.now()}
	var b bytes.Buffer
	write, ctype := feed.WriteAtom, feed.AtomType
	if s.Format == topicurl.FormatRSS {
		write, ctype = feed.WriteRSS, feed.RSSType
	}
	_ = write(&b, m, evs[:n]) // writes to memory: cannot fail
	return n, b.Bytes(), ctype
}

// post sends one delivery. It returns the status (0 on a network error)
// and the Retry-After the callback asked for, if any.
func (h *Hub) post(ctx context.Context, s *Subscription, body []byte, ctype string) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Callback, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	hubURL, self := h.links(s)
	req.Header.Set("Link", "<"+hubURL+`>; rel="hub", <`+self+`>; rel="self"`)
	req.Header.Set("User-Agent", h.userAgent(s.LogTopic))
	if s.Secret != "" {
		alg := s.SignatureAlgorithm
		if alg == "" {
			alg = h.o.SignatureAlgorithm
		}
		req.Header.Set(SignatureHeader, Sign(alg, s.Secret, body))
	}
	host, sent := hostKey(req.URL), time.Now()
	resp, release, err := h.tryDo(req)
	if errors.Is(err, errHostBusy) {
		return 0, 0, err
	}
	if err != nil {
		h.hosts.observe(host, time.Since(sent), true)
		return 0, 0, err
	}
	defer release()
	h.hosts.observe(host, time.Since(sent), resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), h.now()), nil
}

// expire removes a subscription whose lease ended.
func (h *Hub) expire(ctx context.Context, s Subscription) {
	// Only if it is still expired: a re-subscription stored since s was
	// read has a new lease and stays.
	ok, err := h.o.Records.DeleteIf(ctx, s.ID, func(c Subscription) bool { return c.Expired(h.now()) })
	if err != nil {
		h.log.Error("websub: remove expired subscription failed", "subscription", s.ID, "err", err)
		return
	}
	if ok {
		h.obs.Removed(&s, "expired")
		h.log.Info("websub: lease expired", "topic", s.Topic, "callback", s.Callback)
	}
}
