package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// testTimes: the time Append returns is whole microseconds (the wire's
// precision) and is exactly the time Read, Latest and Documents return, so
// a client holding a time it was told compares equal to the store's.
func (s *suite) testTimes(t *testing.T) {
	for _, name := range []string{"fake clock", "real clock"} {
		t.Run(name, func(t *testing.T) {
			cfg := store.Config{}
			if name == "fake clock" {
				cfg.Now = NewClock().Now // has a sub-microsecond part
			}
			l := s.open(t, t.TempDir(), cfg)
			ctx := ctxT(t)
			d := draft("v1", "tm")
			d.Key, d.Type = "doc", "create"
			r := appendOK(t, l, d)[0]
			if !r.Time.Equal(r.Time.Truncate(time.Microsecond)) {
				t.Fatalf("Append returned time %v: not whole microseconds", r.Time.Format(time.RFC3339Nano))
			}
			wire, err := event.ParseTime(r.Time.UTC().Format(event.TimeFormat))
			if err != nil || !wire.Equal(r.Time) {
				t.Fatalf("time %v written as %s reads back as %v (%v)", r.Time, r.Time.UTC().Format(event.TimeFormat), wire, err)
			}
			p := readOK(t, l, "tm", store.Query{Limit: 10})
			if len(p.Events) != 1 || !p.Events[0].Time.Equal(r.Time) {
				t.Fatalf("Read: %v, want one event at %v", p.Events, r.Time)
			}
			e, ok, err := l.Latest(ctx, "tm", "doc")
			if err != nil || !ok || !e.Time.Equal(r.Time) {
				t.Fatalf("Latest: %v %v %v, want the event at %v", e, ok, err, r.Time)
			}
			if dl, ok := l.(store.DocumentLister); ok {
				docs, err := dl.Documents(ctx, "tm", "", 10)
				if err != nil || len(docs) != 1 || !docs[0].Time.Equal(r.Time) {
					t.Fatalf("Documents: %v %v, want the event at %v", docs, err, r.Time)
				}
			}
			dup := idem("v2", "same", "tm")
			r1 := appendOK(t, l, dup)[0]
			r2 := appendOK(t, l, dup)[0]
			if !r2.Duplicate || !r2.Time.Equal(r1.Time) {
				t.Fatalf("a duplicate answers %+v, want the first result's time %v", r2, r1.Time)
			}
		})
	}
}

func activityIndex(t *testing.T, l store.Log) store.ActivityIndex {
	t.Helper()
	ai, ok := l.(store.ActivityIndex)
	if !ok {
		t.Skip("backend does not implement store.ActivityIndex")
	}
	return ai
}

func activeAll(t *testing.T, ai store.ActivityIndex, after store.Activity, limit int) []store.Activity {
	t.Helper()
	var out []store.Activity
	for range 1000 {
		page, err := ai.Active(ctxT(t), after, limit)
		if err != nil {
			t.Fatalf("Active(%v, %d): %v", after, limit, err)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		after = page[len(page)-1]
	}
	t.Fatal("Active: more than 1000 pages")
	return nil
}

func sameActivity(a, b []store.Activity) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Topic != b[i].Topic || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

// checkIndex checks a full listing of the index against the latest event
// time of each topic: each listed once, at that time or later (a backend
// may put entries ahead), in (time, topic) order.
func checkIndex(t *testing.T, got []store.Activity, latest map[string]time.Time) {
	t.Helper()
	seen := map[string]bool{}
	for i, a := range got {
		lt, ok := latest[a.Topic]
		switch {
		case !ok || seen[a.Topic]:
			t.Fatalf("index %v: %s listed but not expected, or twice", got, a.Topic)
		case a.Time.Before(lt):
			t.Fatalf("index %v: %s at %v, behind its latest event at %v", got, a.Topic, a.Time, lt)
		case i > 0 && (a.Time.Before(got[i-1].Time) || a.Time.Equal(got[i-1].Time) && a.Topic <= got[i-1].Topic):
			t.Fatalf("index %v: not in (time, topic) order at %d", got, i)
		}
		seen[a.Topic] = true
	}
	if len(seen) != len(latest) {
		t.Fatalf("index %v: want the topics of %v", got, latest)
	}
}

// checkPaging: paging from any entry, or from a time, gives the rest of
// the full listing.
func checkPaging(t *testing.T, ai store.ActivityIndex, all []store.Activity) {
	t.Helper()
	for _, limit := range []int{1, 2} {
		if got := activeAll(t, ai, store.Activity{}, limit); !sameActivity(got, all) {
			t.Fatalf("Active in pages of %d = %v, want %v", limit, got, all)
		}
	}
	for i, a := range all {
		if got := activeAll(t, ai, a, 10); !sameActivity(got, all[i+1:]) {
			t.Fatalf("Active after %v = %v, want %v", a, got, all[i+1:])
		}
		from := i
		for from > 0 && all[from-1].Time.Equal(a.Time) {
			from--
		}
		if got := activeAll(t, ai, store.Activity{Time: a.Time}, 10); !sameActivity(got, all[from:]) {
			t.Fatalf("Active from %v (every topic at that time) = %v, want %v", a.Time, got, all[from:])
		}
	}
}

// testActivity checks store.ActivityIndex.Active: one entry per topic at
// or after its latest event's time, (time, topic) order, paging strictly
// after an entry, entries moving forward on append, and surviving
// reopening and retention.
func (s *suite) testActivity(t *testing.T) {
	clock := NewClock()
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{Now: clock.Now})
	ai := activityIndex(t, l)
	if got := activeAll(t, ai, store.Activity{}, 10); len(got) != 0 {
		t.Fatalf("empty store lists %v", got)
	}
	latest := map[string]time.Time{}
	add := func(rs ...store.Result) {
		for _, r := range rs {
			latest[r.Topic] = r.Time
		}
	}
	r1 := appendOK(t, l, draft("1", "ax/1"))[0]
	add(r1)
	clock.Advance(time.Second)
	r2 := appendOK(t, l, draft("2", "ax/2"))[0]
	add(r2)
	clock.Advance(time.Second)
	r3 := appendOK(t, l, draft("3", "ax/3", "ax/1"))
	add(r3...)
	if !r3[0].Time.Equal(r3[1].Time) || !r3[0].Time.After(r2.Time) || !r2.Time.After(r1.Time) {
		t.Fatalf("times %v %v %v: want increasing, one per append", r1.Time, r2.Time, r3)
	}
	all := activeAll(t, ai, store.Activity{}, 10)
	checkIndex(t, all, latest)
	checkPaging(t, ai, all)
	if got := activeAll(t, ai, all[len(all)-1], 10); len(got) != 0 {
		t.Fatalf("Active after the last entry = %v", got)
	}
	// Reading moves nothing; an append moves its topic's entry forward
	// (to its time or later), and no other.
	readAll(t, l, "ax/2")
	if got := activeAll(t, ai, store.Activity{}, 10); !sameActivity(got, all) {
		t.Fatalf("after a read: %v, want %v", got, all)
	}
	clock.Advance(time.Hour)
	r4 := appendOK(t, l, draft("4", "ax/2"))[0]
	add(r4)
	moved := activeAll(t, ai, store.Activity{}, 10)
	checkIndex(t, moved, latest)
	if last := moved[len(moved)-1]; last.Topic != "ax/2" {
		t.Fatalf("after an append to ax/2 an hour later: %v, want ax/2 last", moved)
	}
	if !sameActivity(moved[:2], without(all, "ax/2")) {
		t.Fatalf("after an append to ax/2: %v; the others moved (were %v)", moved, all)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = s.open(t, dir, store.Config{Now: clock.Now})
	if got := activeAll(t, activityIndex(t, l), store.Activity{}, 10); !sameActivity(got, moved) {
		t.Fatalf("after reopening: %v, want %v", got, moved)
	}
	// Retention empties logs but leaves their topics indexed.
	_ = l.Close()
	clock.Advance(2 * time.Hour)
	l = s.open(t, dir, store.Config{Now: clock.Now, Retention: store.Retention{MaxAge: time.Hour}})
	trimIfPossible(t, l)
	if h := headOK(t, l, "ax/2"); h.First <= h.Last {
		t.Fatalf("ax/2 after its events expired: head %+v", h)
	}
	if got := activeAll(t, activityIndex(t, l), store.Activity{}, 10); !sameActivity(got, moved) {
		t.Fatalf("after retention emptied the logs: %v, want %v", got, moved)
	}
}

func without(as []store.Activity, topic string) []store.Activity {
	var out []store.Activity
	for _, a := range as {
		if a.Topic != topic {
			out = append(out, a)
		}
	}
	return out
}

// testWatermark checks store.ActivityIndex.Watermark against the real
// clock and concurrent appends: an event that was not readable when
// Watermark returned has a later time.
func (s *suite) testWatermark(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	ai := activityIndex(t, l)
	ctx := ctxT(t)
	r := appendOK(t, l, draft("0", "wm/0"))[0]
	w, err := ai.Watermark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after := appendOK(t, l, draft("1", "wm/0"))[0]; !after.Time.After(w) {
		t.Fatalf("an append after Watermark %v got time %v", w, after.Time)
	}
	if w.Before(r.Time.Add(-10 * time.Second)) {
		t.Fatalf("Watermark %v lags an append already acknowledged (%v) by more than 10s", w, r.Time)
	}

	// Appends in flight while Watermark is asked for.
	const writers = 4
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("wm/%d", i)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Append(context.Background(), []event.Draft{draft("x", topic)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	type mark struct {
		w     time.Time
		heads map[string]uint64
	}
	var marks []mark
	for range 20 {
		w, err := ai.Watermark(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := mark{w: w, heads: map[string]uint64{}}
		for i := range writers {
			topic := fmt.Sprintf("wm/%d", i)
			m.heads[topic] = headOK(t, l, topic).Last
		}
		marks = append(marks, m)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range writers {
		topic := fmt.Sprintf("wm/%d", i)
		evs := readAll(t, l, topic)
		for _, m := range marks {
			// Events after the head read that followed Watermark were not
			// readable when it returned.
			for _, e := range evs {
				if e.Seq > m.heads[topic] && !e.Time.After(m.w) {
					t.Fatalf("%s seq %d (time %v) became readable after Watermark returned %v", topic, e.Seq, e.Time, m.w)
				}
			}
		}
	}
}

// testTimeAfterReopen: a topic's times never go backwards, even when the
// store is reopened with a clock that went back.
func (s *suite) testTimeAfterReopen(t *testing.T) {
	clock := NewClock()
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{Now: clock.Now})
	r1 := appendOK(t, l, draft("1", "tr"))[0]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	back := NewClock()
	back.Advance(-time.Hour)
	l = s.open(t, dir, store.Config{Now: back.Now})
	r2 := appendOK(t, l, draft("2", "tr"))[0]
	if r2.Time.Before(r1.Time) {
		t.Fatalf("time went back after reopening with an earlier clock: %v then %v", r1.Time, r2.Time)
	}
}
