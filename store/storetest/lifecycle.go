package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

func (s *suite) testRetentionCount(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{Retention: store.Retention{MaxEvents: 5}})
	appendOK(t, l, draft("1", "rc"), draft("2", "rc"), draft("3", "rc"), draft("4", "rc"))
	for i := 5; i <= 12; i++ {
		appendOK(t, l, draft(fmt.Sprint(i), "rc"))
		h := headOK(t, l, "rc")
		if want := uint64(max(1, i-4)); h.First != want || h.Last != uint64(i) {
			t.Fatalf("after %d appends head = %+v, want %d..%d", i, h, want, i)
		}
	}
	// A batch larger than the limit keeps only its newest events.
	var many []event.Draft
	for i := 13; i <= 20; i++ {
		many = append(many, draft(fmt.Sprint(i), "rc"))
	}
	appendOK(t, l, many...)
	for _, q := range []store.Query{{Limit: 100}, {After: 2, Limit: 100}} {
		p := readOK(t, l, "rc", q)
		if !equalSeqs(seqs(p.Events), seqRange(16, 20)) {
			t.Fatalf("Read(%+v) = %v, want 16..20", q, seqs(p.Events))
		}
		if p.Head.First != 16 || p.Head.Last != 20 {
			t.Fatalf("page head = %+v, want 16..20", p.Head)
		}
		for _, e := range p.Events {
			if string(e.Data) != fmt.Sprint(e.Seq) {
				t.Fatalf("event %d holds %q", e.Seq, e.Data)
			}
		}
	}
	if p := readOK(t, l, "rc", store.Query{Newest: true, Limit: 100}); !equalSeqs(seqs(p.Events), seqRange(16, 20)) {
		t.Fatalf("newest read = %v, want 16..20", seqs(p.Events))
	}
	// Other topics are trimmed on their own.
	appendOK(t, l, draft("o", "rc/other"))
	if h := headOK(t, l, "rc/other"); h.First != 1 || h.Last != 1 {
		t.Fatalf("other topic head = %+v", h)
	}
}

// trimmer returns l as a store.Trimmer, skipping the test if it is not one.
func trimmer(t *testing.T, l store.Log) store.Trimmer {
	t.Helper()
	tr, ok := l.(store.Trimmer)
	if !ok {
		t.Skip("backend does not implement store.Trimmer")
	}
	return tr
}

// trimIfPossible runs TrimExpired when the backend has it.
func trimIfPossible(t *testing.T, l store.Log) {
	t.Helper()
	if tr, ok := l.(store.Trimmer); ok {
		if err := tr.TrimExpired(ctxT(t)); err != nil {
			t.Fatalf("TrimExpired: %v", err)
		}
	}
}

func (s *suite) testRetentionAge(t *testing.T) {
	clock := NewClock()
	l := s.open(t, t.TempDir(), store.Config{Now: clock.Now, Retention: store.Retention{MaxAge: time.Hour}})
	tr := trimmer(t, l)
	epoch := appendOK(t, l, draft("1", "ra"), draft("2", "ra"))[0].Epoch
	appendOK(t, l, draft("3", "ra"))
	clock.Advance(30 * time.Minute)
	appendOK(t, l, draft("4", "ra"), draft("5", "ra"))
	clock.Advance(45 * time.Minute) // 1..3 are 75 minutes old, 4..5 45
	if err := tr.TrimExpired(ctxT(t)); err != nil {
		t.Fatalf("TrimExpired: %v", err)
	}
	if h := headOK(t, l, "ra"); h != (store.Head{Epoch: epoch, First: 4, Last: 5}) {
		t.Fatalf("head after trim = %+v, want 4..5", h)
	}
	if p := readOK(t, l, "ra", store.Query{Limit: 10}); !equalSeqs(seqs(p.Events), []uint64{4, 5}) || p.Head.First != 4 {
		t.Fatalf("read after trim = %v head %+v, want 4..5", seqs(p.Events), p.Head)
	}
	clock.Advance(2 * time.Hour)
	if err := tr.TrimExpired(ctxT(t)); err != nil {
		t.Fatalf("TrimExpired: %v", err)
	}
	// Everything expired: the head stays, so seqs continue in the same epoch.
	if h := headOK(t, l, "ra"); h != (store.Head{Epoch: epoch, First: 6, Last: 5}) {
		t.Fatalf("head after full trim = %+v, want epoch %q first 6 last 5", h, epoch)
	}
	if p := readOK(t, l, "ra", store.Query{Limit: 10}); len(p.Events) != 0 {
		t.Fatalf("read after full trim = %v", seqs(p.Events))
	}
	if r := appendOK(t, l, draft("6", "ra"))[0]; r.Seq != 6 || r.Epoch != epoch {
		t.Fatalf("append after full trim = %+v, want seq 6 epoch %q", r, epoch)
	}
	if h := headOK(t, l, "ra"); h.First != 6 || h.Last != 6 {
		t.Fatalf("head = %+v, want 6..6", h)
	}
}

func (s *suite) testLatest(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	ctx := ctxT(t)
	if _, ok, err := l.Latest(ctx, "lk", "k"); err != nil || ok {
		t.Fatalf("Latest on unknown topic = %v, %v", ok, err)
	}
	keyed := func(data, key, typ string) event.Draft {
		d := draft(data, "lk")
		d.Key, d.Type = key, typ
		return d
	}
	appendOK(t, l, keyed("v1", "k", ""))
	appendOK(t, l, keyed("j1", "j", ""), keyed("v2", "k", "update"))
	d3 := keyed("v3", "k", "update")
	d3.Tags = []string{"t"}
	r3 := appendOK(t, l, d3, keyed("j2", "j", ""))[0]
	e, ok, err := l.Latest(ctx, "lk", "k")
	if err != nil || !ok {
		t.Fatalf("Latest(k) = %v, %v", ok, err)
	}
	if diff := sameEvent(e, d3, r3); diff != "" {
		t.Fatalf("Latest(k): %s", diff)
	}
	if e, ok, _ := l.Latest(ctx, "lk", "j"); !ok || string(e.Data) != "j2" {
		t.Fatalf("Latest(j) = %v %v, want j2", e, ok)
	}
	rd := appendOK(t, l, keyed("", "k", "delete"))[0]
	e, ok, err = l.Latest(ctx, "lk", "k")
	if err != nil || !ok || e.Type != "delete" || e.Seq != rd.Seq {
		t.Fatalf("Latest(k) after delete = %+v %v %v, want the delete tombstone at seq %d", e, ok, err, rd.Seq)
	}
	if _, ok, err := l.Latest(ctx, "lk", "nope"); err != nil || ok {
		t.Fatalf("Latest(unknown key) = %v, %v", ok, err)
	}
	if _, ok, err := l.Latest(ctx, "lk/other", "k"); err != nil || ok {
		t.Fatalf("Latest on another topic = %v, %v", ok, err)
	}
}

func (s *suite) testLatestRetention(t *testing.T) {
	clock := NewClock()
	l := s.open(t, t.TempDir(), store.Config{
		Now:       clock.Now,
		Retention: store.Retention{MaxEvents: 2, MaxAge: time.Hour},
	})
	ctx := ctxT(t)
	keep := draft("keep", "lr")
	keep.Key = "kept"
	rk := appendOK(t, l, keep)[0]
	for i := range 6 {
		appendOK(t, l, draft(fmt.Sprint(i), "lr"))
	}
	if h := headOK(t, l, "lr"); h.First != 6 || h.Last != 7 {
		t.Fatalf("head = %+v, want 6..7", h)
	}
	e, ok, err := l.Latest(ctx, "lr", "kept")
	if err != nil || !ok {
		t.Fatalf("Latest after count trimming = %v, %v; want the event", ok, err)
	}
	if diff := sameEvent(e, keep, rk); diff != "" {
		t.Fatalf("Latest after count trimming: %s", diff)
	}
	clock.Advance(59 * time.Minute)
	fresh := draft("fresh", "lr")
	fresh.Key = "fresh"
	appendOK(t, l, fresh)
	trimIfPossible(t, l)
	if _, ok, err := l.Latest(ctx, "lr", "kept"); err != nil || !ok {
		t.Fatalf("Latest at 59 minutes = %v, %v; want the event", ok, err)
	}
	clock.Advance(2 * time.Minute)
	trimIfPossible(t, l)
	if _, ok, err := l.Latest(ctx, "lr", "kept"); err != nil || ok {
		t.Fatalf("Latest of a key older than MaxAge = %v, %v; want forgotten", ok, err)
	}
	if e, ok, err := l.Latest(ctx, "lr", "fresh"); err != nil || !ok || string(e.Data) != "fresh" {
		t.Fatalf("Latest of a younger key = %v, %v", ok, err)
	}
}

func idem(data, key string, topics ...string) event.Draft {
	d := draft(data, topics...)
	d.IdempotencyKey = key
	return d
}

func (s *suite) testIdempotency(t *testing.T) {
	clock := NewClock()
	l := s.open(t, t.TempDir(), store.Config{Now: clock.Now})
	first := appendOK(t, l, idem("1", "A", "id"))[0]
	clock.Advance(time.Minute)
	again := appendOK(t, l, idem("1 again", "A", "id"))[0]
	want := first
	want.Duplicate = true
	if again.Topic != want.Topic || again.Epoch != want.Epoch || again.Seq != want.Seq ||
		!again.Time.Equal(want.Time) || !again.Duplicate {
		t.Fatalf("duplicate result = %+v, want %+v", again, want)
	}
	if h := headOK(t, l, "id"); h.Last != 1 {
		t.Fatalf("head after duplicate = %+v, want last 1", h)
	}
	evs := readAll(t, l, "id")
	if len(evs) != 1 || string(evs[0].Data) != "1" || evs[0].IdempotencyKey != "A" {
		t.Fatalf("log holds seqs %v; want only the first event", seqs(evs))
	}
	// Same key, other topic: independent.
	other := appendOK(t, l, idem("o", "A", "id/other"))[0]
	if other.Duplicate || other.Seq != 1 {
		t.Fatalf("same key on another topic = %+v, want a new event", other)
	}
	// One draft on both topics plus a new one: duplicates per topic.
	res := appendOK(t, l, idem("x", "A", "id", "id/other", "id/third"))
	if !res[0].Duplicate || res[0].Seq != 1 || !res[1].Duplicate || res[1].Seq != 1 ||
		res[2].Duplicate || res[2].Seq != 1 {
		t.Fatalf("multi-topic results = %+v", res)
	}
	// Twice in one Append: the second is a duplicate of the first.
	res = appendOK(t, l, idem("b1", "B", "id"), draft("plain", "id"), idem("b2", "B", "id"))
	if res[0].Duplicate || res[0].Seq != 2 || res[1].Seq != 3 || !res[2].Duplicate || res[2].Seq != 2 {
		t.Fatalf("same key twice in one append = %+v", res)
	}
	if h := headOK(t, l, "id"); h.Last != 3 {
		t.Fatalf("head = %+v, want last 3", h)
	}
	// Different keys are different events.
	if r := appendOK(t, l, idem("c", "C", "id"))[0]; r.Duplicate || r.Seq != 4 {
		t.Fatalf("new key = %+v", r)
	}
}

func (s *suite) testIdempotencyExpiry(t *testing.T) {
	clock := NewClock()
	l := s.open(t, t.TempDir(), store.Config{Now: clock.Now, IdempotencyWindow: time.Hour})
	first := appendOK(t, l, idem("1", "K", "ie"))[0]
	clock.Advance(59 * time.Minute)
	trimIfPossible(t, l)
	if r := appendOK(t, l, idem("2", "K", "ie"))[0]; !r.Duplicate || r.Seq != first.Seq {
		t.Fatalf("within the window: %+v, want duplicate of seq %d", r, first.Seq)
	}
	clock.Advance(2 * time.Minute)
	trimIfPossible(t, l)
	r := appendOK(t, l, idem("3", "K", "ie"))[0]
	if r.Duplicate || r.Seq != 2 {
		t.Fatalf("after the window: %+v, want a new event at seq 2", r)
	}
	// The new event starts a new window.
	if r2 := appendOK(t, l, idem("4", "K", "ie"))[0]; !r2.Duplicate || r2.Seq != 2 {
		t.Fatalf("repeat of the renewed key: %+v, want duplicate of seq 2", r2)
	}
}

func (s *suite) testOnCommit(t *testing.T) {
	var (
		inCall    atomic.Bool
		overlap   atomic.Bool
		mu        sync.Mutex
		delivered = map[string][]*event.Event{}
		seen      = map[string]bool{} // "topic:seq" delivered
	)
	listener := func(evs []*event.Event) {
		if !inCall.CompareAndSwap(false, true) {
			overlap.Store(true)
			return
		}
		defer inCall.Store(false)
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			delivered[e.Topic] = append(delivered[e.Topic], e)
			seen[fmt.Sprintf("%s:%d", e.Topic, e.Seq)] = true
		}
	}
	l := s.open(t, t.TempDir(), store.Config{OnCommit: listener})
	topics := []string{"oc/a", "oc/b", "oc/c"}
	const workers, perWorker = 16, 20
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				d := draft(fmt.Sprintf("%d-%d", w, i), topics[(w+i)%3])
				if i%4 == 0 {
					// Repeated by several workers: most become duplicates.
					d = idem("dup", fmt.Sprintf("key-%d", i), topics[i%3], topics[(i+1)%3])
				}
				res, err := l.Append(context.Background(), []event.Draft{d})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, r := range res {
					if !r.Duplicate && !seen[fmt.Sprintf("%s:%d", r.Topic, r.Seq)] {
						err = fmt.Errorf("append returned %s:%d before the listener saw it", r.Topic, r.Seq)
					}
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
	if overlap.Load() {
		t.Fatal("listener was called concurrently")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tp := range topics {
		got := delivered[tp]
		h := headOK(t, l, tp)
		if !equalSeqs(seqs(got), seqRange(1, h.Last)) {
			t.Fatalf("listener saw %s seqs %v, want each of 1..%d once in order", tp, seqs(got), h.Last)
		}
		stored := readAll(t, l, tp)
		for i, e := range stored {
			g := got[i]
			if g.Epoch != e.Epoch || !g.Time.Equal(e.Time) || string(g.Data) != string(e.Data) ||
				g.IdempotencyKey != e.IdempotencyKey || g.Type != e.Type {
				t.Fatalf("listener's %s:%d = %+v, stored %+v", tp, e.Seq, g, e)
			}
		}
	}
}

func (s *suite) testContextCanceled(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := draft("x", "cc")
	if _, err := l.Append(ctx, []event.Draft{d}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context = %v, want context.Canceled", err)
	}
	if h := headOK(t, l, "cc"); h.Last != 0 {
		t.Fatalf("canceled append stored something: head %+v", h)
	}
}

func (s *suite) testClose(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	appendOK(t, l, draft("x", "cl"))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := ctxT(t)
	if _, err := l.Append(ctx, []event.Draft{draft("y", "cl")}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Read(ctx, "cl", store.Query{Limit: 1}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Head(ctx, "cl"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Head after Close = %v, want ErrClosed", err)
	}
	if _, _, err := l.Latest(ctx, "cl", "k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Latest after Close = %v, want ErrClosed", err)
	}
	if tr, ok := l.(store.Trimmer); ok {
		if err := tr.TrimExpired(ctx); !errors.Is(err, store.ErrClosed) {
			t.Errorf("TrimExpired after Close = %v, want ErrClosed", err)
		}
	}
	_ = l.Close() // a second Close must not panic or hang
}

// testCloseDuringAppends closes while appends are in flight: each one either
// succeeds (and is then durable) or fails with ErrClosed.
func (s *suite) testCloseDuringAppends(t *testing.T) {
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{})
	const workers = 16
	type ack struct {
		data string
		res  store.Result
	}
	acks := make(chan ack, 1<<16)
	errs := make(chan error, workers)
	started := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				data := fmt.Sprintf("%d-%d", w, i)
				res, err := l.Append(context.Background(), []event.Draft{draft(data, "cd")})
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				acks <- ack{data, res[0]}
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range workers {
		select {
		case <-started:
		case <-time.After(waitTimeout):
			t.Fatal("appends did not start")
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	close(acks)
	for err := range errs {
		t.Fatalf("Append during Close: %v, want success or ErrClosed", err)
	}
	l = s.open(t, dir, store.Config{})
	byseq := map[uint64]*event.Event{}
	for _, e := range readAll(t, l, "cd") {
		byseq[e.Seq] = e
	}
	for a := range acks {
		if e := byseq[a.res.Seq]; e == nil || string(e.Data) != a.data {
			t.Fatalf("acknowledged %s at seq %d is not stored after Close", a.data, a.res.Seq)
		}
	}
}

func (s *suite) testReopen(t *testing.T) {
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{})
	keyed := draft("k", "ro/a")
	keyed.Key = "key"
	ra := appendOK(t, l, draft("1", "ro/a"), keyed, idem("2", "I", "ro/a"))
	rb := appendOK(t, l, draft("1", "ro/b"))
	before := map[string][]*event.Event{"ro/a": readAll(t, l, "ro/a"), "ro/b": readAll(t, l, "ro/b")}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = s.open(t, dir, store.Config{})
	for topic, evs := range before {
		after := readAll(t, l, topic)
		if len(after) != len(evs) {
			t.Fatalf("%s: %d events after reopen, want %d", topic, len(after), len(evs))
		}
		for i, e := range evs {
			a := after[i]
			if a.Seq != e.Seq || a.Epoch != e.Epoch || !a.Time.Equal(e.Time) || string(a.Data) != string(e.Data) || a.Key != e.Key {
				t.Fatalf("%s: event %d after reopen = %+v, want %+v", topic, i, a, e)
			}
		}
	}
	if h := headOK(t, l, "ro/a"); h != (store.Head{Epoch: ra[0].Epoch, First: 1, Last: 3}) {
		t.Fatalf("head after reopen = %+v", h)
	}
	if e, ok, err := l.Latest(ctxT(t), "ro/a", "key"); err != nil || !ok || e.Seq != 2 {
		t.Fatalf("Latest after reopen = %v, %v, %v", e, ok, err)
	}
	if r := appendOK(t, l, idem("again", "I", "ro/a"))[0]; !r.Duplicate || r.Seq != 3 {
		t.Fatalf("idempotency key forgotten on reopen: %+v", r)
	}
	if r := appendOK(t, l, draft("2", "ro/b"))[0]; r.Seq != 2 || r.Epoch != rb[0].Epoch {
		t.Fatalf("append after reopen = %+v, want seq 2 epoch %q", r, rb[0].Epoch)
	}
}

func (s *suite) testCrash(t *testing.T) {
	if s.b.Crash == nil {
		t.Skip("backend cannot simulate a crash")
	}
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{})
	const workers, perWorker = 8, 20
	var mu sync.Mutex
	acked := map[uint64]string{}
	var epoch string
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				data := fmt.Sprintf("%d-%d", w, i)
				res, err := l.Append(context.Background(), []event.Draft{draft(data, "crash")})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[res[0].Seq] = data
				epoch = res[0].Epoch
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.b.Crash(t, l)
	l = s.open(t, dir, store.Config{})
	h := headOK(t, l, "crash")
	if h.Epoch != epoch || h.Last < workers*perWorker {
		t.Fatalf("head after crash = %+v, want epoch %q and last >= %d", h, epoch, workers*perWorker)
	}
	evs := readAll(t, l, "crash")
	byseq := map[uint64]string{}
	for _, e := range evs {
		byseq[e.Seq] = string(e.Data)
	}
	for seq, data := range acked {
		if byseq[seq] != data {
			t.Fatalf("acknowledged seq %d (%s) lost in the crash: found %q", seq, data, byseq[seq])
		}
	}
	if r := appendOK(t, l, draft("after", "crash"))[0]; r.Seq != h.Last+1 || r.Epoch != epoch {
		t.Fatalf("append after crash = %+v, want seq %d", r, h.Last+1)
	}
}
