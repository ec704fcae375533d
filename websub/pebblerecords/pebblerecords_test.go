package pebblerecords_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/pebblerecords"
	"github.com/hubbub/hubbub/websub/recordstest"
)

func sub(topic, cb string) websub.Subscription {
	return websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, Callback: cb, LogTopic: topic,
		State: websub.StateActive, Expires: time.Unix(2e9, 0).UTC()}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	r, err := pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
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
	if _, err := r.Update(ctx, "missing", func(*websub.Subscription) error { return nil }); err == nil {
		t.Fatal("update of a missing record succeeded")
	}
	if ok, err := r.Delete(ctx, websub.SubscriptionID("t1", "http://x/1")); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if err := r.PutFetchState(ctx, "http://f/", websub.FetchState{ETag: `"1"`}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get(ctx, id); err == nil {
		t.Fatal("Get after Close succeeded")
	}

	r, err = pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, ok, err := r.Get(ctx, id)
	if !ok || err != nil || got.Cursor.Seq != 7 || got.Cursor.Epoch != "e" {
		t.Fatalf("after reopen: %+v %v %v", got, ok, err)
	}
	if r.Count("t0") != 3 || r.Count("t1") != 1 || r.Len() != 4 {
		t.Fatalf("index after reopen: %d %d", r.Count("t0"), r.Count("t1"))
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
	if st, ok, err := r.FetchState(ctx, "http://f/"); !ok || err != nil || st.ETag != `"1"` {
		t.Fatalf("fetch state: %+v %v %v", st, ok, err)
	}
}

// TestDeleteIf: the subscription goes only when the condition holds for
// the stored record.
func TestDeleteIf(t *testing.T) {
	ctx := t.Context()
	r, err := pebblerecords.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := sub("t", "http://x/1")
	if err := r.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	expired := func(c websub.Subscription) bool { return c.Expired(time.Unix(3e9, 0)) }
	if ok, err := r.DeleteIf(ctx, s.ID, func(websub.Subscription) bool { return false }); ok || err != nil {
		t.Fatalf("DeleteIf(false) = %v, %v", ok, err)
	}
	if _, ok, _ := r.Get(ctx, s.ID); !ok {
		t.Fatal("a false condition deleted the subscription")
	}
	if ok, err := r.DeleteIf(ctx, s.ID, expired); !ok || err != nil {
		t.Fatalf("DeleteIf(expired) = %v, %v", ok, err)
	}
	if _, ok, _ := r.Get(ctx, s.ID); ok || r.Count("t") != 0 {
		t.Fatal("DeleteIf left the subscription")
	}
	if ok, err := r.DeleteIf(ctx, s.ID, expired); ok || err != nil {
		t.Fatalf("DeleteIf of a missing subscription = %v, %v", ok, err)
	}
}

// TestCountHost: the per-host count follows Put, Update, Delete and
// DeleteIf, across topics and ports, and is rebuilt on reopen.
func TestCountHost(t *testing.T) {
	dir := t.TempDir()
	r, err := pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recordstest.CountHost(t, r, func() websub.HostCounter { return reopen(t, dir, r) })
}

// reopen closes r and opens its records again, closed at the test's end.
func reopen(t *testing.T, dir string, r *pebblerecords.Records) *pebblerecords.Records {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	return r2
}

func TestVerifications(t *testing.T) {
	dir := t.TempDir()
	r, err := pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recordstest.Verifications(t, r, func() websub.Records { return reopen(t, dir, r) })
}

// UpdateLazy is seen at once, by readers and by the next update, and is
// durable after Close even when its own sync had not run yet.
func TestUpdateLazy(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	r, err := pebblerecords.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const subs, advances = 8, 50
	for i := range subs {
		if err := r.Put(ctx, sub("t", fmt.Sprintf("http://x/%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range subs {
		wg.Go(func() {
			id := websub.SubscriptionID("t", fmt.Sprintf("http://x/%d", i))
			for n := range advances {
				s, err := r.UpdateLazy(ctx, id, func(s *websub.Subscription) error {
					if s.Cursor.Seq != uint64(n) {
						return fmt.Errorf("cursor %d before advance %d: a lazy write was not seen", s.Cursor.Seq, n)
					}
					s.Cursor = event.Position{Epoch: "e", Seq: uint64(n + 1)}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if got, _, _ := r.Get(ctx, id); got.Cursor != s.Cursor {
					t.Errorf("Get after UpdateLazy: %v, want %v", got.Cursor, s.Cursor)
				}
			}
		})
	}
	wg.Wait()
	r = reopen(t, dir, r)
	for i := range subs {
		s, ok, err := r.Get(ctx, websub.SubscriptionID("t", fmt.Sprintf("http://x/%d", i)))
		if err != nil || !ok || s.Cursor.Seq != advances {
			t.Fatalf("after reopening: %+v %v %v, want cursor %d", s.Cursor, ok, err, advances)
		}
	}
}
