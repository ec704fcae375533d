// Package storetest is the conformance suite every store.Log backend must
// pass. A backend's own test calls Run with a Backend that opens it; each
// subtest opens fresh stores in its own directory and fails if the store
// breaks the contract documented in package store.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/fakeclock"
	"github.com/hubbub/hubbub/store"
)

// Backend opens a store for the suite.
type Backend struct {
	// Open opens (or reopens) the store kept under dir with cfg. The suite
	// calls Close itself.
	Open func(t *testing.T, dir string, cfg store.Config) store.Log
	// Crash, if set, simulates a crash of a store opened by Open: it
	// abandons it without a clean Close, such that only what was synced
	// survives. When nil the crash test is skipped.
	Crash func(t *testing.T, l store.Log)
}

// Run runs the whole suite against b.
func Run(t *testing.T, b Backend) {
	s := &suite{b: b}
	t.Run("AppendOne", s.testAppendOne)
	t.Run("AppendMany", s.testAppendMany)
	t.Run("SeqPerTopic", s.testSeqPerTopic)
	t.Run("MultiTopicDraft", s.testMultiTopicDraft)
	t.Run("ConcurrentAppends", s.testConcurrentAppends)
	t.Run("Read", s.testRead)
	t.Run("ReadDuringAppends", s.testReadDuringAppends)
	t.Run("Head", s.testHead)
	t.Run("Epoch", s.testEpoch)
	t.Run("RetentionCount", s.testRetentionCount)
	t.Run("RetentionAge", s.testRetentionAge)
	t.Run("TrimTopic", s.testTrimTopic)
	t.Run("Latest", s.testLatest)
	t.Run("LatestRetention", s.testLatestRetention)
	t.Run("Documents", s.testDocuments)
	t.Run("Times", s.testTimes)
	t.Run("TimeAfterReopen", s.testTimeAfterReopen)
	t.Run("Activity", s.testActivity)
	t.Run("Watermark", s.testWatermark)
	t.Run("Idempotency", s.testIdempotency)
	t.Run("IdempotencyExpiry", s.testIdempotencyExpiry)
	t.Run("OnCommit", s.testOnCommit)
	t.Run("ContextCanceled", s.testContextCanceled)
	t.Run("Close", s.testClose)
	t.Run("CloseDuringAppends", s.testCloseDuringAppends)
	t.Run("Reopen", s.testReopen)
	t.Run("Crash", s.testCrash)
}

type suite struct{ b Backend }

// waitTimeout bounds every wait in the suite.
const waitTimeout = 30 * time.Second

// open opens a store and closes it when the test ends.
func (s *suite) open(t *testing.T, dir string, cfg store.Config) store.Log {
	t.Helper()
	l := s.b.Open(t, dir, cfg)
	if l == nil {
		t.Fatal("Backend.Open returned nil")
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Clock is a fake clock, safe for concurrent use (internal/fakeclock).
type Clock = fakeclock.Clock

// NewClock returns a clock set to a fixed time with a sub-microsecond part,
// to catch backends that lose precision below what they promise.
func NewClock() *Clock { return fakeclock.New() }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func draft(data string, topics ...string) event.Draft {
	return event.Draft{Topics: topics, Type: event.DefaultType, Data: []byte(data)}
}

// appendOK appends drafts (validating them first) and fails on error or a
// wrong number of results.
func appendOK(t *testing.T, l store.Log, drafts ...event.Draft) []store.Result {
	t.Helper()
	want := 0
	for i := range drafts {
		if err := drafts[i].Validate(); err != nil {
			t.Fatalf("bad draft in test: %v", err)
		}
		want += len(drafts[i].Topics)
	}
	res, err := l.Append(ctxT(t), drafts)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(res) != want {
		t.Fatalf("Append returned %d results, want %d", len(res), want)
	}
	return res
}

func headOK(t *testing.T, l store.Log, topic string) store.Head {
	t.Helper()
	h, err := l.Head(ctxT(t), topic)
	if err != nil {
		t.Fatalf("Head(%q): %v", topic, err)
	}
	return h
}

func readOK(t *testing.T, l store.Log, topic string, q store.Query) store.Page {
	t.Helper()
	p, err := l.Read(ctxT(t), topic, q)
	if err != nil {
		t.Fatalf("Read(%q, %+v): %v", topic, q, err)
	}
	for i, e := range p.Events {
		if e == nil {
			t.Fatalf("Read(%q, %+v): event %d is nil", topic, q, i)
		}
		if e.Topic != topic {
			t.Fatalf("Read(%q): event %d has topic %q", topic, i, e.Topic)
		}
		if i > 0 && e.Seq <= p.Events[i-1].Seq {
			t.Fatalf("Read(%q, %+v): seqs not increasing: %v", topic, q, seqs(p.Events))
		}
	}
	return p
}

// readAll reads the topic's whole log in pages.
func readAll(t *testing.T, l store.Log, topic string) []*event.Event {
	t.Helper()
	var all []*event.Event
	var after uint64
	for {
		p := readOK(t, l, topic, store.Query{After: after, Limit: 100})
		if len(p.Events) == 0 {
			return all
		}
		all = append(all, p.Events...)
		after = p.Events[len(p.Events)-1].Seq
	}
}

func seqs(evs []*event.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameEvent reports how got differs from the draft d stored as res, or "".
func sameEvent(got *event.Event, d event.Draft, res store.Result) string {
	typ := d.Type
	if typ == "" {
		typ = event.DefaultType
	}
	var diffs []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("Topic", got.Topic == res.Topic, got.Topic, res.Topic)
	check("Epoch", got.Epoch == res.Epoch, got.Epoch, res.Epoch)
	check("Seq", got.Seq == res.Seq, got.Seq, res.Seq)
	check("Time", got.Time.Equal(res.Time), got.Time, res.Time)
	check("Type", got.Type == typ, got.Type, typ)
	check("Key", got.Key == d.Key, got.Key, d.Key)
	check("ContentType", got.ContentType == d.ContentType, got.ContentType, d.ContentType)
	check("Data", bytes.Equal(got.Data, d.Data), got.Data, d.Data)
	check("IdempotencyKey", got.IdempotencyKey == d.IdempotencyKey, got.IdempotencyKey, d.IdempotencyKey)
	tagsOK := len(got.Tags) == len(d.Tags)
	for i := 0; tagsOK && i < len(d.Tags); i++ {
		tagsOK = got.Tags[i] == d.Tags[i]
	}
	check("Tags", tagsOK, got.Tags, d.Tags)
	geoOK := (got.Geo == nil) == (d.Geo == nil) && (d.Geo == nil || *got.Geo == *d.Geo)
	check("Geo", geoOK, got.Geo, d.Geo)
	check("Coalesce", got.Coalesce == d.Coalesce, got.Coalesce, d.Coalesce)
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}

func (s *suite) testAppendOne(t *testing.T) {
	clock := NewClock()
	l := s.open(t, t.TempDir(), store.Config{Now: clock.Now})
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	full := event.Draft{
		Topics:         []string{"rooms/1"},
		Type:           "update",
		Key:            "player/7",
		ContentType:    "application/octet-stream",
		Data:           bin,
		Tags:           []string{"a", "b c", "ü"},
		Geo:            &event.Geo{Lat: 52.520008, Lon: -13.404954},
		Coalesce:       1500 * time.Millisecond,
		IdempotencyKey: "idem-1",
	}
	bare := event.Draft{Topics: []string{"rooms/1"}}
	res := appendOK(t, l, full)
	r := res[0]
	if r.Topic != "rooms/1" || r.Seq != 1 || r.Epoch == "" || r.Duplicate {
		t.Fatalf("result = %+v, want topic rooms/1, seq 1, an epoch, not duplicate", r)
	}
	if d := r.Time.Sub(clock.Now()); d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("result time %v, clock says %v", r.Time, clock.Now())
	}
	if r.Position() != (event.Position{Epoch: r.Epoch, Seq: 1}) {
		t.Fatalf("Position() = %v", r.Position())
	}
	clock.Advance(time.Second)
	r2 := appendOK(t, l, bare)[0]
	if r2.Seq != 2 || r2.Epoch != r.Epoch {
		t.Fatalf("second result = %+v, want seq 2 in epoch %q", r2, r.Epoch)
	}
	p := readOK(t, l, "rooms/1", store.Query{Limit: 10})
	if len(p.Events) != 2 {
		t.Fatalf("read %d events, want 2", len(p.Events))
	}
	if d := sameEvent(p.Events[0], full, r); d != "" {
		t.Errorf("full event did not round-trip: %s", d)
	}
	if err := bare.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := sameEvent(p.Events[1], bare, r2); d != "" {
		t.Errorf("bare event did not round-trip: %s", d)
	}
	if want := (store.Head{Epoch: r.Epoch, First: 1, Last: 2}); p.Head != want {
		t.Errorf("page head = %+v, want %+v", p.Head, want)
	}
}

func (s *suite) testAppendMany(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	var drafts []event.Draft
	for i := range 10 {
		drafts = append(drafts, draft(fmt.Sprintf(`{"n":%d}`, i), "many"))
	}
	res := appendOK(t, l, drafts...)
	res = append(res, appendOK(t, l, drafts...)...)
	for i, r := range res {
		if r.Seq != uint64(i+1) || r.Topic != "many" || r.Epoch != res[0].Epoch {
			t.Fatalf("result %d = %+v, want seq %d in one epoch", i, r, i+1)
		}
	}
	evs := readAll(t, l, "many")
	if !equalSeqs(seqs(evs), seqRange(1, 20)) {
		t.Fatalf("read seqs %v, want 1..20", seqs(evs))
	}
	for i, e := range evs {
		if d := sameEvent(e, drafts[i%10], res[i]); d != "" {
			t.Fatalf("event %d: %s", e.Seq, d)
		}
	}
}

func (s *suite) testSeqPerTopic(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	next := map[string]uint64{}
	for i := range 30 {
		topic := []string{"a", "b", "a/b", "c"}[i%4]
		r := appendOK(t, l, draft("x", topic))[0]
		next[topic]++
		if r.Seq != next[topic] {
			t.Fatalf("append %d to %q got seq %d, want %d", i, topic, r.Seq, next[topic])
		}
	}
	for topic, last := range next {
		if got := seqs(readAll(t, l, topic)); !equalSeqs(got, seqRange(1, last)) {
			t.Fatalf("topic %q holds seqs %v, want 1..%d", topic, got, last)
		}
	}
}

func (s *suite) testMultiTopicDraft(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	d := draft("fan", "x", "y", "z")
	res := appendOK(t, l, d)
	for i, topic := range []string{"x", "y", "z"} {
		if res[i].Topic != topic || res[i].Seq != 1 {
			t.Fatalf("result %d = %+v, want topic %q seq 1", i, res[i], topic)
		}
	}
	if res[0].Epoch == res[1].Epoch || res[1].Epoch == res[2].Epoch || res[0].Epoch == res[2].Epoch {
		t.Fatalf("topics share an epoch: %+v", res)
	}
	res2 := appendOK(t, l, draft("one", "x", "y"), draft("two", "y"))
	want := []struct {
		topic string
		seq   uint64
	}{{"x", 2}, {"y", 2}, {"y", 3}}
	for i, w := range want {
		if res2[i].Topic != w.topic || res2[i].Seq != w.seq {
			t.Fatalf("result %d = %+v, want %s:%d", i, res2[i], w.topic, w.seq)
		}
	}
	for i, topic := range []string{"x", "y", "z"} {
		e := readOK(t, l, topic, store.Query{Limit: 1}).Events
		if len(e) != 1 {
			t.Fatalf("topic %q: no event", topic)
		}
		if diff := sameEvent(e[0], d, res[i]); diff != "" {
			t.Fatalf("topic %q: %s", topic, diff)
		}
	}
	y := readAll(t, l, "y")
	if len(y) != 3 || string(y[1].Data) != "one" || string(y[2].Data) != "two" {
		t.Fatalf("topic y holds %v", y)
	}
}

func (s *suite) testConcurrentAppends(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	const workers, perWorker = 64, 25
	topics := []string{"c/0", "c/1", "c/2", "c/3"}
	type sent struct {
		d   event.Draft
		res store.Result
	}
	var mu sync.Mutex
	all := map[string]map[uint64]sent{}
	for _, tp := range topics {
		all[tp] = map[uint64]sent{}
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]uint64{}
			for i := range perWorker {
				d := draft(fmt.Sprintf("w%d-%d", w, i), topics[w%len(topics)])
				if i%5 == 0 { // some drafts name two topics
					d.Topics = append(d.Topics, topics[(w+1)%len(topics)])
				}
				res, err := l.Append(context.Background(), []event.Draft{d})
				if err == nil && len(res) != len(d.Topics) {
					err = fmt.Errorf("%d results for %d topics", len(res), len(d.Topics))
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for j, r := range res {
					if r.Topic != d.Topics[j] {
						err = fmt.Errorf("result %d for topic %q, want %q", j, r.Topic, d.Topics[j])
					} else if _, dup := all[r.Topic][r.Seq]; dup {
						err = fmt.Errorf("seq %s:%d given twice", r.Topic, r.Seq)
					} else if r.Seq <= last[r.Topic] {
						err = fmt.Errorf("worker got %s:%d after %d", r.Topic, r.Seq, last[r.Topic])
					}
					all[r.Topic][r.Seq] = sent{d, r}
					last[r.Topic] = r.Seq
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tp := range topics {
		evs := readAll(t, l, tp)
		n := uint64(len(all[tp]))
		if !equalSeqs(seqs(evs), seqRange(1, n)) {
			t.Fatalf("topic %q holds %d events (seqs %v), want 1..%d", tp, len(evs), seqs(evs), n)
		}
		for _, e := range evs {
			sn := all[tp][e.Seq]
			if d := sameEvent(e, sn.d, sn.res); d != "" {
				t.Fatalf("%s:%d: %s", tp, e.Seq, d)
			}
		}
		if h := headOK(t, l, tp); h.First != 1 || h.Last != n {
			t.Fatalf("head of %q = %+v, want 1..%d", tp, h, n)
		}
	}
}

func (s *suite) testRead(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	var drafts []event.Draft
	for i := 1; i <= 20; i++ {
		drafts = append(drafts, draft(fmt.Sprint(i), "r"))
	}
	epoch := appendOK(t, l, drafts...)[0].Epoch
	cases := []struct {
		q    store.Query
		want []uint64
	}{
		{store.Query{Limit: 100}, seqRange(1, 20)},
		{store.Query{Limit: 1}, []uint64{1}},
		{store.Query{After: 5, Limit: 3}, []uint64{6, 7, 8}},
		{store.Query{After: 5, Before: 10, Limit: 100}, []uint64{6, 7, 8, 9}},
		{store.Query{Before: 4, Limit: 100}, []uint64{1, 2, 3}},
		{store.Query{Before: 1, Limit: 100}, []uint64{}},
		{store.Query{Newest: true, Limit: 3}, []uint64{18, 19, 20}},
		{store.Query{Newest: true, After: 5, Before: 10, Limit: 2}, []uint64{8, 9}},
		{store.Query{Newest: true, After: 17, Limit: 10}, []uint64{18, 19, 20}},
		{store.Query{Newest: true, Before: 3, Limit: 10}, []uint64{1, 2}},
		{store.Query{After: 19, Limit: 10}, []uint64{20}},
		{store.Query{After: 20, Limit: 10}, []uint64{}},
		{store.Query{After: 1000, Limit: 10}, []uint64{}},
		{store.Query{After: 10, Before: 11, Limit: 10}, []uint64{}},
		{store.Query{Before: 1000, Limit: 100}, seqRange(1, 20)},
	}
	for _, c := range cases {
		p := readOK(t, l, "r", c.q)
		if !equalSeqs(seqs(p.Events), c.want) {
			t.Errorf("Read(%+v) = seqs %v, want %v", c.q, seqs(p.Events), c.want)
		}
		for _, e := range p.Events {
			if string(e.Data) != fmt.Sprint(e.Seq) || e.Epoch != epoch {
				t.Errorf("Read(%+v): event %d has data %q epoch %q", c.q, e.Seq, e.Data, e.Epoch)
			}
		}
		if want := (store.Head{Epoch: epoch, First: 1, Last: 20}); p.Head != want {
			t.Errorf("Read(%+v) head = %+v, want %+v", c.q, p.Head, want)
		}
	}
	p := readOK(t, l, "never", store.Query{Limit: 10})
	if len(p.Events) != 0 || p.Head != (store.Head{First: 1}) {
		t.Errorf("Read of unknown topic = %d events, head %+v; want none, {\"\" 1 0}", len(p.Events), p.Head)
	}
}

func (s *suite) testHead(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	if h := headOK(t, l, "h"); h != (store.Head{First: 1}) {
		t.Fatalf("head of unknown topic = %+v, want {\"\" 1 0}", h)
	}
	res := appendOK(t, l, draft("1", "h"), draft("2", "h"))
	res = append(res, appendOK(t, l, draft("3", "h"))...)
	if h := headOK(t, l, "h"); h != (store.Head{Epoch: res[0].Epoch, First: 1, Last: 3}) {
		t.Fatalf("head = %+v, want epoch %q 1..3", h, res[0].Epoch)
	}
	if h := headOK(t, l, "h/other"); h != (store.Head{First: 1}) {
		t.Fatalf("head of another topic = %+v", h)
	}
}

func (s *suite) testEpoch(t *testing.T) {
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{})
	a := appendOK(t, l, draft("1", "ep/a"))[0]
	b := appendOK(t, l, draft("1", "ep/b"))[0]
	if a.Epoch == "" || b.Epoch == "" || a.Epoch == b.Epoch {
		t.Fatalf("epochs %q and %q: want two different non-empty ones", a.Epoch, b.Epoch)
	}
	for range 3 {
		if r := appendOK(t, l, draft("n", "ep/a"))[0]; r.Epoch != a.Epoch {
			t.Fatalf("epoch changed from %q to %q", a.Epoch, r.Epoch)
		}
	}
	if h := headOK(t, l, "ep/a"); h.Epoch != a.Epoch {
		t.Fatalf("head epoch %q, want %q", h.Epoch, a.Epoch)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = s.open(t, dir, store.Config{})
	if h := headOK(t, l, "ep/a"); h.Epoch != a.Epoch || h.Last != 4 {
		t.Fatalf("after reopen head = %+v, want epoch %q last 4", h, a.Epoch)
	}
	if r := appendOK(t, l, draft("n", "ep/b"))[0]; r.Epoch != b.Epoch || r.Seq != 2 {
		t.Fatalf("after reopen append = %+v, want epoch %q seq 2", r, b.Epoch)
	}
}

// testReadDuringAppends reads while appends and count trimming run: every
// page must hold consecutive seqs starting where its head says the log
// starts (or after the cursor), never beyond the head, never with a gap.
func (s *suite) testReadDuringAppends(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{Retention: store.Retention{MaxEvents: 50}})
	const total = 2000
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				q := store.Query{After: uint64(i*37) % total, Limit: 20, Newest: r%2 == 1}
				p, err := l.Read(context.Background(), "rd", q)
				if err != nil {
					errs <- err
					return
				}
				if err := checkPage(q, p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < total; i += 10 {
		var batch []event.Draft
		for j := range 10 {
			batch = append(batch, draft(fmt.Sprint(i+j+1), "rd"))
		}
		if _, err := l.Append(context.Background(), batch); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func checkPage(q store.Query, p store.Page) error {
	h := p.Head
	if h.Last > 0 && (h.First > h.Last+1 || h.Last-h.First+1 > 50) {
		return fmt.Errorf("head %+v breaks MaxEvents 50", h)
	}
	lo := max(q.After+1, h.First)
	if lo > h.Last {
		if len(p.Events) != 0 {
			return fmt.Errorf("Read(%+v) with head %+v returned seqs %v", q, h, seqs(p.Events))
		}
		return nil
	}
	n := min(uint64(q.Limit), h.Last-lo+1)
	want := seqRange(lo, lo+n-1)
	if q.Newest {
		want = seqRange(h.Last-n+1, h.Last)
	}
	if got := seqs(p.Events); !equalSeqs(got, want) {
		return fmt.Errorf("Read(%+v) with head %+v returned seqs %v, want %v", q, h, got, want)
	}
	for _, e := range p.Events {
		if string(e.Data) != fmt.Sprint(e.Seq) {
			return fmt.Errorf("seq %d holds %q", e.Seq, e.Data)
		}
	}
	return nil
}
