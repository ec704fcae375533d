package redisrecords_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/recordstest"
	"github.com/hubbub/hubbub/websub/redisrecords"
)

func redisAddr() string { return redistest.Addr() }

func redisURL() string                        { return "redis://" + redisAddr() + "/0" }
func rawClient(tb testing.TB) *goredis.Client { return redistest.Client(tb, "Redis webhook records") }

func newPrefix(tb testing.TB) string { return redistest.Prefix(tb, rawClient(tb)) }

// open opens records on prefix, closed when the test ends.
func open(tb testing.TB, prefix string) *redisrecords.Records {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := redisrecords.Open(ctx, redisURL(), prefix, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

func sub(topic, cb string) websub.Subscription {
	return websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, Callback: cb, LogTopic: topic,
		State: websub.StateActive, Expires: time.Unix(2e9, 0).UTC()}
}

// TestRecords is pebblerecords' TestRecords; "reopen" is a new Records on
// the same prefix.
func TestRecords(t *testing.T) {
	prefix := newPrefix(t)
	ctx := t.Context()
	r := open(t, prefix)
	for i := range 5 {
		if err := r.Put(ctx, sub(fmt.Sprintf("t%d", i%2), fmt.Sprintf("http://x/%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	bad := sub("t", "http://x/")
	bad.ID = "nope"
	if r.Put(ctx, bad) == nil {
		t.Fatal("a record with a wrong id was stored")
	}
	if n := len(r.ListByTopic("t0")); n != 3 || r.Count("t1") != 2 {
		t.Fatalf("by topic: %d %d", n, r.Count("t1"))
	}
	id := websub.SubscriptionID("t0", "http://x/0")
	s, err := r.Update(ctx, id, func(s *websub.Subscription) error {
		s.Cursor = event.Position{Epoch: "e", Seq: 7}
		return nil
	})
	if err != nil || s.Cursor.Seq != 7 {
		t.Fatalf("update: %+v %v", s, err)
	}
	if _, err := r.Update(ctx, "missing", func(*websub.Subscription) error { return nil }); !errors.Is(err, websub.ErrNotFound) {
		t.Fatalf("update of a missing record: %v", err)
	}
	if ok, err := r.Delete(ctx, websub.SubscriptionID("t1", "http://x/1")); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := r.Delete(ctx, websub.SubscriptionID("t1", "http://x/1")); ok || err != nil {
		t.Fatalf("second delete: %v %v", ok, err)
	}
	if err := r.PutFetchState(ctx, "http://f/", websub.FetchState{ETag: `"1"`}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := r.Get(ctx, id); !errors.Is(err, redisrecords.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if r.ListByTopic("t0") != nil || r.Count("t0") != 0 {
		t.Fatal("ListByTopic or Count after Close returned records")
	}

	r = open(t, prefix)
	got, ok, err := r.Get(ctx, id)
	if !ok || err != nil || got.Cursor.Seq != 7 || got.Cursor.Epoch != "e" {
		t.Fatalf("after reopen: %+v %v %v", got, ok, err)
	}
	if !got.Expires.Equal(time.Unix(2e9, 0)) || got.State != websub.StateActive {
		t.Fatalf("fields after reopen: %+v", got)
	}
	if n, err := r.Len(ctx); r.Count("t0") != 3 || r.Count("t1") != 1 || n != 4 || err != nil {
		t.Fatalf("index after reopen: %d %d %d %v", r.Count("t0"), r.Count("t1"), n, err)
	}
	var all []websub.Subscription
	after := ""
	for range 10 {
		page, err := r.List(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(all) != 4 {
		t.Fatalf("listed %d", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatal("List out of order")
		}
	}
	if page, err := r.List(ctx, "", 0); page != nil || err != nil {
		t.Fatalf("List with limit 0: %v %v", page, err)
	}
	if st, ok, err := r.FetchState(ctx, "http://f/"); !ok || err != nil || st.ETag != `"1"` {
		t.Fatalf("fetch state: %+v %v %v", st, ok, err)
	}
	if _, ok, err := r.FetchState(ctx, "http://other/"); ok || err != nil {
		t.Fatalf("fetch state of an unknown topic: %v %v", ok, err)
	}
	if _, ok, err := r.Get(ctx, "missing"); ok || err != nil {
		t.Fatalf("Get of a missing record: %v %v", ok, err)
	}
}

// TestPutReplaces: Put replaces the record of the same (topic, callback),
// moving it between topic indexes when its LogTopic changed.
func TestPutReplaces(t *testing.T) {
	ctx := t.Context()
	r := open(t, newPrefix(t))
	s := sub("http://a/", "http://cb/")
	s.Failures = 3
	if err := r.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	s2 := sub("http://a/", "http://cb/")
	s2.LogTopic = "local"
	if err := r.Put(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if r.Count("http://a/") != 0 || r.Count("local") != 1 {
		t.Fatalf("index after re-Put: %d %d", r.Count("http://a/"), r.Count("local"))
	}
	got, ok, err := r.Get(ctx, s.ID)
	if !ok || err != nil || got.Failures != 0 || got.LogTopic != "local" {
		t.Fatalf("after re-Put: %+v %v %v", got, ok, err)
	}
	if n, _ := r.Len(ctx); n != 1 {
		t.Fatalf("Len %d", n)
	}
	// Update may move it too.
	if _, err := r.Update(ctx, s.ID, func(s *websub.Subscription) error { s.LogTopic = "other"; return nil }); err != nil {
		t.Fatal(err)
	}
	if r.Count("local") != 0 || len(r.ListByTopic("other")) != 1 || len(r.ListByTopic("local")) != 0 {
		t.Fatal("Update did not move the record between topics")
	}
	if ok, err := r.Delete(ctx, s.ID); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if r.Count("other") != 0 || len(r.ListByTopic("other")) != 0 {
		t.Fatal("index after Delete")
	}
	if page, err := r.List(ctx, "", 10); len(page) != 0 || err != nil {
		t.Fatalf("List after Delete: %v %v", page, err)
	}
}

// TestUpdateSemantics: ErrNoChange stores nothing, other errors abort and
// are returned, the id may not change.
func TestUpdateSemantics(t *testing.T) {
	ctx := t.Context()
	r := open(t, newPrefix(t))
	s := sub("t", "http://cb/")
	if err := r.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := r.Update(ctx, s.ID, func(s *websub.Subscription) error {
		s.Failures = 9
		return websub.ErrNoChange
	})
	if err != nil || got.Failures != 0 {
		t.Fatalf("ErrNoChange: %+v %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := r.Update(ctx, s.ID, func(s *websub.Subscription) error {
		s.Failures = 9
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if _, err := r.Update(ctx, s.ID, func(s *websub.Subscription) error {
		s.ID = "other"
		return nil
	}); err == nil {
		t.Fatal("Update changed the id")
	}
	if got, _, _ := r.Get(ctx, s.ID); got.Failures != 0 {
		t.Fatalf("an aborted Update stored: %+v", got)
	}
	if _, err := redisrecords.Open(ctx, redisURL(), "a{b}", nil); err == nil {
		t.Fatal("Open accepted a prefix with braces")
	}
	if _, err := redisrecords.Open(ctx, redisURL(), "", nil); err == nil {
		t.Fatal("Open accepted an empty prefix")
	}
}

// TestTwoNodes: two Records on one Redis and prefix see each other's
// changes, and concurrent Updates from both lose none.
func TestTwoNodes(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix(t)
	a, b := open(t, prefix), open(t, prefix)
	s := sub("t", "http://cb/")
	if err := a.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := b.Get(ctx, s.ID); !ok || err != nil || got.Callback != "http://cb/" {
		t.Fatalf("b does not see a's Put: %+v %v %v", got, ok, err)
	}
	if b.Count("t") != 1 || len(b.ListByTopic("t")) != 1 {
		t.Fatal("b's topic index misses a's Put")
	}
	if _, err := b.Update(ctx, s.ID, func(s *websub.Subscription) error { s.LastError = "x"; return nil }); err != nil {
		t.Fatal(err)
	}
	if l := a.ListByTopic("t"); len(l) != 1 || l[0].LastError != "x" {
		t.Fatalf("a does not see b's Update: %+v", l)
	}

	const n = 50
	var wg sync.WaitGroup
	var calls [2]int
	for i, r := range []*redisrecords.Records{a, b} {
		wg.Go(func() {
			for range n {
				if _, err := r.Update(ctx, s.ID, func(s *websub.Subscription) error {
					calls[i]++
					s.Failures++
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, r := range []*redisrecords.Records{a, b} {
		got, _, err := r.Get(ctx, s.ID)
		if err != nil || got.Failures != 2*n || got.LastError != "x" {
			t.Fatalf("after concurrent Updates: failures %d, %v", got.Failures, err)
		}
	}
	t.Logf("fn calls for %d updates: %d (retries %d)", 2*n, calls[0]+calls[1], calls[0]+calls[1]-2*n)

	if ok, err := a.Delete(ctx, s.ID); !ok || err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, s.ID); ok {
		t.Fatal("b still sees a deleted record")
	}
	// b's cached count follows once the change notice arrives.
	waitCount(t, b, "t", 0)
	if _, err := b.Update(ctx, s.ID, func(*websub.Subscription) error { return nil }); !errors.Is(err, websub.ErrNotFound) {
		t.Fatalf("Update after the other node's Delete: %v", err)
	}
}

// TestConcurrentPutsListByTopic: many subscriptions on a topic from both
// nodes, all listed by either.
func TestConcurrentPutsListByTopic(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix(t)
	a, b := open(t, prefix), open(t, prefix)
	var wg sync.WaitGroup
	for i, r := range []*redisrecords.Records{a, b} {
		wg.Go(func() {
			for j := range 20 {
				if err := r.Put(ctx, sub("t", fmt.Sprintf("http://cb/%d/%d", i, j))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, r := range []*redisrecords.Records{a, b} {
		l := r.ListByTopic("t")
		if len(l) != 40 || r.Count("t") != 40 {
			t.Fatalf("by topic: %d %d", len(l), r.Count("t"))
		}
		ids := make([]string, len(l))
		for i, s := range l {
			ids[i] = s.ID
		}
		sort.Strings(ids)
		page, err := r.List(ctx, "", 100)
		if err != nil || len(page) != 40 {
			t.Fatalf("List: %d %v", len(page), err)
		}
		for i := range page {
			if page[i].ID != ids[i] {
				t.Fatal("List and ListByTopic disagree")
			}
		}
	}
}

// waitCount waits (2 s at most) until r counts n subscriptions of topic:
// another node's change is counted once its notice arrives.
func waitCount(t *testing.T, r *redisrecords.Records, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for r.Count(topic) != n {
		if time.Now().After(deadline) {
			t.Fatalf("Count(%q) = %d, want %d, 2s after the change", topic, r.Count(topic), n)
		}
		time.Sleep(time.Millisecond) // polling for a Pub/Sub notice, with a deadline
	}
}

// TestCountFollowsOtherNodes: a count cached on one node follows Puts,
// topic moves and Deletes made on another.
func TestCountFollowsOtherNodes(t *testing.T) {
	prefix := newPrefix(t)
	ctx := t.Context()
	a, b := open(t, prefix), open(t, prefix)
	if n := b.Count("ct"); n != 0 { // cached: 0
		t.Fatalf("Count of an empty topic = %d", n)
	}
	s1, s2 := sub("ct", "http://x/1"), sub("ct", "http://x/2")
	for _, s := range []websub.Subscription{s1, s2} {
		if err := a.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, b, "ct", 2)
	// Re-putting the same subscription changes no set: still 2.
	if err := a.Put(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if n := b.Count("ct"); n != 2 {
		t.Fatalf("Count after a re-put = %d", n)
	}
	// Moving s2 to another log topic changes both counts.
	if _, err := a.Update(ctx, s2.ID, func(s *websub.Subscription) error { s.LogTopic = "ct2"; return nil }); err != nil {
		t.Fatal(err)
	}
	waitCount(t, b, "ct", 1)
	waitCount(t, b, "ct2", 1)
	if _, err := a.Delete(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	waitCount(t, b, "ct", 0)
}

// TestDeleteIf: the subscription goes only when the condition holds for
// the stored record, judged again when another node changed it between
// the read and the delete.
func TestDeleteIf(t *testing.T) {
	prefix := newPrefix(t)
	ctx := t.Context()
	a, b := open(t, prefix), open(t, prefix)
	s := sub("t", "http://x/1")
	s.Expires = time.Unix(1e9, 0).UTC() // expired
	if err := a.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	expired := func(c websub.Subscription) bool { return c.Expired(time.Unix(1.5e9, 0)) }
	// The first time the condition is asked, another node renews the
	// lease: the delete must notice, ask again, and keep it.
	calls := 0
	renewing := func(c websub.Subscription) bool {
		calls++
		if calls == 1 {
			renewed := s
			renewed.Expires = time.Unix(2e9, 0).UTC()
			if err := b.Put(ctx, renewed); err != nil {
				t.Fatal(err)
			}
		}
		return expired(c)
	}
	if ok, err := a.DeleteIf(ctx, s.ID, renewing); ok || err != nil || calls != 2 {
		t.Fatalf("DeleteIf with a renewal in between = %v, %v after %d calls", ok, err, calls)
	}
	if _, ok, _ := a.Get(ctx, s.ID); !ok {
		t.Fatal("the renewed subscription was deleted")
	}
	if err := b.Put(ctx, s); err != nil { // expired again
		t.Fatal(err)
	}
	if ok, err := a.DeleteIf(ctx, s.ID, expired); !ok || err != nil {
		t.Fatalf("DeleteIf(expired) = %v, %v", ok, err)
	}
	if _, ok, _ := b.Get(ctx, s.ID); ok {
		t.Fatal("DeleteIf left the subscription")
	}
	if ok, err := a.DeleteIf(ctx, s.ID, expired); ok || err != nil {
		t.Fatalf("DeleteIf of a missing subscription = %v, %v", ok, err)
	}
}

// TestCountHost: the per-host count follows Put, Update, Delete and
// DeleteIf, across topics and ports, and survives a reopen.
func TestCountHost(t *testing.T) {
	prefix := newPrefix(t)
	r := open(t, prefix)
	recordstest.CountHost(t, r, func() websub.HostCounter { return open(t, prefix) })
}

func TestVerifications(t *testing.T) {
	prefix := newPrefix(t)
	recordstest.Verifications(t, open(t, prefix), func() websub.Records { return open(t, prefix) })
}
