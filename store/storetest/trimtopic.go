package storetest

import (
	"fmt"
	"testing"

	"github.com/hubbub/hubbub/store"
)

func (s *suite) testTrimTopic(t *testing.T) {
	dir := t.TempDir()
	l := s.open(t, dir, store.Config{})
	tr, ok := l.(store.TopicTrimmer)
	if !ok {
		t.Skip("backend does not implement store.TopicTrimmer")
	}
	ctx := ctxT(t)
	keyed := draft("k", "tt")
	keyed.Key = "doc"
	epoch := appendOK(t, l, draft("1", "tt"), keyed)[0].Epoch
	for i := 3; i <= 10; i++ {
		appendOK(t, l, draft(fmt.Sprint(i), "tt"))
	}
	appendOK(t, l, draft("o", "tt/other"))

	for _, tc := range []struct {
		keep        uint64
		first, last uint64
	}{
		{3, 8, 10},  // the newest three stay
		{5, 8, 10},  // holds fewer than keep: unchanged
		{3, 8, 10},  // again: unchanged
		{0, 11, 10}, // everything goes; the head keeps epoch and Last
	} {
		h, err := tr.TrimTopic(ctx, "tt", tc.keep)
		want := store.Head{Epoch: epoch, First: tc.first, Last: tc.last}
		if err != nil || h != want {
			t.Fatalf("TrimTopic(keep %d) = %+v, %v; want %+v", tc.keep, h, err, want)
		}
		if got := headOK(t, l, "tt"); got != want {
			t.Fatalf("Head after TrimTopic(keep %d) = %+v, want %+v", tc.keep, got, want)
		}
		if tc.first == 8 {
			if got := seqs(readAll(t, l, "tt")); !equalSeqs(got, seqRange(8, 10)) {
				t.Fatalf("after TrimTopic(keep 3) the log holds %v, want 8..10", got)
			}
			if p := readOK(t, l, "tt", store.Query{After: 2, Limit: 100}); !equalSeqs(seqs(p.Events), seqRange(8, 10)) {
				t.Fatalf("Read(after 2) after the trim = %v, want 8..10", seqs(p.Events))
			}
		}
	}
	if got := readAll(t, l, "tt"); len(got) != 0 {
		t.Fatalf("after TrimTopic(keep 0) the log holds %v", seqs(got))
	}
	// The latest-by-key view is kept, as with count retention.
	if e, ok, err := l.Latest(ctx, "tt", "doc"); err != nil || !ok || e.Seq != 2 {
		t.Fatalf("Latest(doc) after the trims = %v, %v, %v; want seq 2", e, ok, err)
	}
	// Seqs go on after the trimmed ones, in the same epoch.
	if r := appendOK(t, l, draft("11", "tt"))[0]; r.Seq != 11 || r.Epoch != epoch {
		t.Fatalf("append after the trim stored %+v, want seq 11 in epoch %s", r, epoch)
	}
	if h := headOK(t, l, "tt/other"); h.First != 1 || h.Last != 1 {
		t.Fatalf("another topic's head = %+v, want 1..1", h)
	}
	// An unknown topic is left unknown.
	if h, err := tr.TrimTopic(ctx, "tt/never", 0); err != nil || h != (store.Head{First: 1}) {
		t.Fatalf("TrimTopic(unknown) = %+v, %v", h, err)
	}
	if h := headOK(t, l, "tt/never"); h.Epoch != "" {
		t.Fatalf("TrimTopic created topic tt/never: %+v", h)
	}
	// The trim is durable.
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = s.open(t, dir, store.Config{})
	if h := headOK(t, l, "tt"); h != (store.Head{Epoch: epoch, First: 11, Last: 11}) {
		t.Fatalf("head after reopen = %+v, want 11..11", h)
	}
}
