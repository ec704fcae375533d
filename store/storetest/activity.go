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

// testActivity checks store.ActivityIndex.Active: one entry per topic at
// its latest event's time, (time, topic) order, paging strictly after an
// entry, entries moving forward on append, and surviving reopening.
func (s *suite) testActivity(t *testing.T) {
	clock := NewClock()
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{Now: clock.Now})
	ai := activityIndex(t, l)
	if got := activeAll(t, ai, store.Activity{}, 10); len(got) != 0 {
		t.Fatalf("empty store lists %v", got)
	}
	r1 := appendOK(t, l, draft("1", "ax/1"))[0]
	clock.Advance(time.Second)
	r2 := appendOK(t, l, draft("2", "ax/2"))[0]
	clock.Advance(time.Second)
	r3 := appendOK(t, l, draft("3", "ax/3", "ax/1"))
	want := []store.Activity{{Time: r2.Time, Topic: "ax/2"}, {Time: r3[1].Time, Topic: "ax/1"}, {Time: r3[0].Time, Topic: "ax/3"}}
	if !r3[0].Time.Equal(r3[1].Time) || !r3[0].Time.After(r2.Time) || !r2.Time.After(r1.Time) {
		t.Fatalf("times %v %v %v: want increasing, one per append", r1.Time, r2.Time, r3)
	}
	for _, limit := range []int{1, 2, 10} {
		if got := activeAll(t, ai, store.Activity{}, limit); !sameActivity(got, want) {
			t.Fatalf("Active from the start, pages of %d = %v, want %v", limit, got, want)
		}
	}
	if got := activeAll(t, ai, store.Activity{Time: r1.Time}, 10); !sameActivity(got, want) {
		t.Fatalf("Active after %v = %v, want %v", r1.Time, got, want)
	}
	if got := activeAll(t, ai, store.Activity{Time: r3[0].Time}, 10); !sameActivity(got, want[1:]) {
		t.Fatalf("Active from %v (every topic at that time) = %v, want %v", r3[0].Time, got, want[1:])
	}
	if got := activeAll(t, ai, want[1], 10); !sameActivity(got, want[2:]) {
		t.Fatalf("Active after %v = %v, want %v", want[1], got, want[2:])
	}
	if got := activeAll(t, ai, want[2], 10); len(got) != 0 {
		t.Fatalf("Active after the last entry = %v", got)
	}
	// Reading moves nothing; an append moves its topic's entry forward.
	readAll(t, l, "ax/2")
	clock.Advance(time.Second)
	r4 := appendOK(t, l, draft("4", "ax/2"))[0]
	want = []store.Activity{want[1], want[2], {Time: r4.Time, Topic: "ax/2"}}
	if got := activeAll(t, ai, store.Activity{}, 10); !sameActivity(got, want) {
		t.Fatalf("after an append to ax/2: %v, want %v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = s.open(t, dir, store.Config{Now: clock.Now})
	if got := activeAll(t, activityIndex(t, l), store.Activity{}, 10); !sameActivity(got, want) {
		t.Fatalf("after reopening: %v, want %v", got, want)
	}
	// Retention empties logs but leaves their topics indexed.
	_ = l.Close()
	clock.Advance(2 * time.Hour)
	l = s.open(t, dir, store.Config{Now: clock.Now, Retention: store.Retention{MaxAge: time.Hour}})
	trimIfPossible(t, l)
	if h := headOK(t, l, "ax/2"); h.First <= h.Last {
		t.Fatalf("ax/2 after its events expired: head %+v", h)
	}
	if got := activeAll(t, activityIndex(t, l), store.Activity{}, 10); !sameActivity(got, want) {
		t.Fatalf("after retention emptied the logs: %v, want %v", got, want)
	}
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
