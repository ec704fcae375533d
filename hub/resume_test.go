package hub_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/fakeclock"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

// resumeReq is a subscription to patterns, resuming from cursor ("" for
// none), as a transport would build it.
func resumeReq(t *testing.T, cursor string, patterns ...string) hub.SubscribeRequest {
	t.Helper()
	c, w, err := event.ParseWatermarked(cursor, "")
	if err != nil {
		t.Fatal(err)
	}
	return hub.SubscribeRequest{Topics: patterns, Cursor: c, Watermark: w}
}

// got is what a subscription delivered: per topic the seqs in order, and
// the resets.
type got struct {
	seqs   map[string][]uint64
	resets []hub.Reset
}

// drain takes messages until n events arrived, then makes sure nothing else
// is ready.
func drain(t *testing.T, s *hub.Subscription, n int) got {
	t.Helper()
	g := got{seqs: map[string][]uint64{}}
	items, resets := collect(t, s, n)
	for _, it := range items {
		g.seqs[it.Topic] = append(g.seqs[it.Topic], it.Seq)
	}
	for _, r := range resets {
		g.resets = append(g.resets, *r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if msgs, err := s.Next(ctx, nil); err == nil {
		t.Fatalf("more than the %d events expected: %+v", n, msgs)
	}
	return g
}

func wantTopicSeqs(t *testing.T, g got, want map[string][]uint64) {
	t.Helper()
	for topic, w := range want {
		if !slices.Equal(g.seqs[topic], w) {
			t.Errorf("%s: got seqs %v, want %v (all: %v)", topic, g.seqs[topic], w, g.seqs)
		}
	}
	for topic := range g.seqs {
		if _, ok := want[topic]; !ok {
			t.Errorf("%s: got seqs %v, want none", topic, g.seqs[topic])
		}
	}
}

// TestPatternResumeComplete (issue 12, item 1): a pattern subscriber that
// resumes with its cursor gets, exactly once, what was published while it
// was away to every matching topic: one it knew, one created meanwhile,
// and an older one that had no events during its last connection.
func TestPatternResumeComplete(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publish(t, f.hub, "q/old", 3) // before the subscription: never wanted
	s := sub(t, f.hub, resumeReq(t, "", "q/**"))
	publish(t, f.hub, "q/a", 2)
	publish(t, f.hub, "other/x", 1)
	wantTopicSeqs(t, drain(t, s, 2), map[string][]uint64{"q/a": {1, 2}})
	cursor := s.Cursor()
	s.Close()

	publish(t, f.hub, "q/a", 1)
	publish(t, f.hub, "q/new", 2)
	publish(t, f.hub, "q/old", 1)
	publish(t, f.hub, "other/y", 1)

	s2 := sub(t, f.hub, resumeReq(t, cursor, "q/**"))
	publish(t, f.hub, "q/new", 1) // live, after the resume
	g := drain(t, s2, 5)
	wantTopicSeqs(t, g, map[string][]uint64{"q/a": {3}, "q/new": {1, 2, 3}, "q/old": {4}})
	if len(g.resets) != 0 {
		t.Fatalf("unexpected resets %+v", g.resets)
	}
}

// TestPatternResumeBeforeAnyEvent: the cursor a pattern subscription has
// before it got any event (SSE sends it as a bare id) resumes too.
func TestPatternResumeBeforeAnyEvent(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	publish(t, f.hub, "q/a", 1)
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	cursor := s.Cursor()
	s.Close()
	publish(t, f.hub, "q/a", 2)
	publish(t, f.hub, "q/b", 1)
	s2 := sub(t, f.hub, resumeReq(t, cursor, "q/*"))
	wantTopicSeqs(t, drain(t, s2, 3), map[string][]uint64{"q/a": {2, 3}, "q/b": {1}})
}

// TestPatternResumeOldCursor: a cursor from before watermarks behaves as it
// always did: the topics it names resume, others start live.
func TestPatternResumeOldCursor(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	res := publish(t, f.hub, "q/a", 1)
	old := event.Cursor{"q/a": res[0].Position()}.Encode("")
	publish(t, f.hub, "q/a", 1)
	publish(t, f.hub, "q/b", 1)
	s := sub(t, f.hub, resumeReq(t, old, "q/*"))
	publish(t, f.hub, "q/c", 1)
	wantTopicSeqs(t, drain(t, s, 2), map[string][]uint64{"q/a": {2}, "q/c": {1}})
	if _, w, _ := event.ParseWatermarked(s.Cursor(), ""); w.IsZero() {
		t.Fatal("the new cursor has no watermark")
	}
}

// TestPatternResumeTrimmed: events retention removed while the subscriber
// was away are told with a reset naming the topic.
func TestPatternResumeTrimmed(t *testing.T) {
	f := newHub(t, store.Retention{MaxEvents: 2}, true, hub.Options{Retention: store.Retention{MaxEvents: 2}})
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	cursor := s.Cursor()
	s.Close()
	publish(t, f.hub, "q/full", 5) // holds 4 and 5
	publish(t, f.hub, "q/fits", 2) // holds 1 and 2: nothing lost
	s2 := sub(t, f.hub, resumeReq(t, cursor, "q/*"))
	g := drain(t, s2, 4)
	wantTopicSeqs(t, g, map[string][]uint64{"q/full": {4, 5}, "q/fits": {1, 2}})
	if len(g.resets) != 1 || g.resets[0].Topic != "q/full" || g.resets[0].Reason != hub.ResetTrimmed || g.resets[0].Cursor.Seq != 3 {
		t.Fatalf("resets %+v, want one trimmed reset of q/full to seq 3", g.resets)
	}
}

// TestPatternResumeAgedOut: a topic whose old events expired by age before
// the cursor's watermark resumes without a reset (nothing it wanted was
// lost); one whose events after the watermark expired gets a reset.
func TestPatternResumeAgedOut(t *testing.T) {
	clock := fakeclock.New()
	ret := store.Retention{MaxAge: time.Hour}
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{Retention: ret, OnCommit: b.OnCommit, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h := hub.New(st, b, hub.Options{Retention: ret, Now: clock.Now})
	trim := func() {
		t.Helper()
		if err := st.TrimExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, h, "q/aged", 1)
	clock.Advance(2 * time.Hour)
	trim() // seq 1 expires, long before the subscription
	s := sub(t, h, resumeReq(t, "", "q/*"))
	cursor := s.Cursor()
	s.Close()
	publish(t, h, "q/aged", 1)
	s2 := sub(t, h, resumeReq(t, cursor, "q/*"))
	g := drain(t, s2, 1)
	wantTopicSeqs(t, g, map[string][]uint64{"q/aged": {2}})
	if len(g.resets) != 0 {
		t.Fatalf("resets %+v, want none: what expired was older than the cursor", g.resets)
	}
	cursor = s2.Cursor()
	s2.Close()

	clock.Advance(time.Second)
	publish(t, h, "q/lost", 1) // after the cursor, then expired
	clock.Advance(3 * time.Hour)
	trim()
	s3 := sub(t, h, resumeReq(t, cursor, "q/*"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := s3.Next(ctx, nil)
	if err != nil || len(msgs) != 1 || msgs[0].Reset == nil || msgs[0].Reset.Topic != "q/lost" || msgs[0].Reset.Reason != hub.ResetTrimmed {
		t.Fatalf("got %+v %v, want one trimmed reset of q/lost", msgs, err)
	}
}

// TestPatternResumeBounds: past ResumeTopics, topics are named in
// resume-limit resets, then the pattern; nothing is silent.
func TestPatternResumeBounds(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{ResumeTopics: 2})
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	cursor := s.Cursor()
	s.Close()
	for i := range 6 {
		publish(t, f.hub, fmt.Sprintf("q/%d", i), 1)
	}
	s2 := sub(t, f.hub, resumeReq(t, cursor, "q/*"))
	g := drain(t, s2, 2)
	var limited []string
	for _, r := range g.resets {
		if r.Reason != hub.ResetLimit {
			t.Fatalf("reset %+v, want %s", r, hub.ResetLimit)
		}
		limited = append(limited, r.Topic)
	}
	// Two resumed (the oldest activity first), two named, then the pattern.
	wantTopicSeqs(t, g, map[string][]uint64{"q/0": {1}, "q/1": {1}})
	if !slices.Equal(limited, []string{"q/2", "q/3", "q/*"}) {
		t.Fatalf("resume-limit resets for %v, want [q/2 q/3 q/*]", limited)
	}
	// What goes on live is delivered.
	publish(t, f.hub, "q/5", 1)
	wantTopicSeqs(t, drain(t, s2, 1), map[string][]uint64{"q/5": {2}})
}

// TestPatternCursorStaysSmall: after a resume, topics whose last event
// delivered is at or before the new watermark leave the cursor, and
// resuming from the smaller cursor still delivers exactly once.
func TestPatternCursorStaysSmall(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	for i := range 5 {
		publish(t, f.hub, fmt.Sprintf("q/%d", i), 1)
	}
	drain(t, s, 5)
	big := s.Cursor()
	if c, _, _ := event.ParseWatermarked(big, ""); len(c) != 5 {
		t.Fatalf("cursor names %d topics, want the 5 delivered", len(c))
	}
	s.Close()
	s2 := sub(t, f.hub, resumeReq(t, big, "q/*"))
	// The resume reads the five from the log and finds nothing new.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if msgs, err := s2.Next(ctx, nil); err == nil {
		t.Fatalf("resume with nothing new delivered %+v", msgs)
	}
	small := s2.Cursor()
	if c, _, _ := event.ParseWatermarked(small, ""); len(c) != 0 {
		t.Fatalf("cursor after a quiet resume names %v, want none", c)
	}
	s2.Close()
	publish(t, f.hub, "q/1", 1)
	publish(t, f.hub, "q/9", 1)
	s3 := sub(t, f.hub, resumeReq(t, small, "q/*"))
	wantTopicSeqs(t, drain(t, s3, 2), map[string][]uint64{"q/1": {2}, "q/9": {1}})
}

// TestPatternLiveOldEventDropped: an event of a topic the subscription does
// not know, from before its watermark (as a cross-node bridge may replay
// after repairing a gap), is not delivered.
func TestPatternLiveOldEventDropped(t *testing.T) {
	f := newHub(t, store.Retention{}, false, hub.Options{})
	res := publish(t, f.hub, "q/a", 1)
	old := &event.Event{Topic: "q/a", Epoch: res[0].Epoch, Seq: 1, Type: event.DefaultType, Time: res[0].Time}
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	f.broker.Publish([]*event.Event{old})
	res = publish(t, f.hub, "q/a", 1)
	f.broker.Publish([]*event.Event{{Topic: "q/a", Epoch: res[0].Epoch, Seq: 2, Type: event.DefaultType, Time: res[0].Time}})
	wantTopicSeqs(t, drain(t, s, 1), map[string][]uint64{"q/a": {2}})
}

// TestPatternResumeMidCatchUp: the cursor of a message in the middle of a
// catch-up (as a client that leaves then holds) keeps the topic, although
// its events are all older than the new watermark: the rest follow.
func TestPatternResumeMidCatchUp(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	s := sub(t, f.hub, resumeReq(t, "", "q/*"))
	publish(t, f.hub, "q/a", 1)
	drain(t, s, 1)
	cursor := s.Cursor()
	s.Close()
	publish(t, f.hub, "q/a", 40) // seqs 2..41, while away
	s2 := sub(t, f.hub, resumeReq(t, cursor, "q/*"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := s2.Next(ctx, nil)
	if err != nil || len(msgs) < 5 || len(msgs) >= 40 {
		t.Fatalf("first catch-up page: %d messages, %v; want a part of the 40", len(msgs), err)
	}
	if msgs[4].Item == nil || msgs[4].Item.Seq != 6 {
		t.Fatalf("fifth message %+v, want seq 6", msgs[4])
	}
	mid := msgs[4].Cursor
	s2.Close()
	s3 := sub(t, f.hub, resumeReq(t, mid, "q/*"))
	got := drain(t, s3, 35)
	wantTopicSeqs(t, got, map[string][]uint64{"q/a": seqRangeU(7, 41)})
}

func seqRangeU(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}
