package redisupstreams_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/upstream/redisupstreams"
)

func open(t *testing.T, prefix string) *redisupstreams.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := redisupstreams.Open(ctx, redistest.URL(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func up(i int) upstream.Upstream {
	spec := upstream.Spec{Hub: "http://hub.example/", Topic: fmt.Sprintf("http://feed.example/%d", i), Into: "in"}
	return upstream.Upstream{ID: upstream.ID(spec.Hub, spec.Topic, spec.Into), Hub: spec.Hub, Topic: spec.Topic,
		Into: spec.Into, State: upstream.StatePending, Secret: "s"}
}

// TestStore: what one node writes, another reads; List is in id order;
// Update and Delete report missing upstreams; Close ends use.
func TestStore(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t, "Redis upstreams"))
	a, b := open(t, prefix), open(t, prefix)
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		u := up(i)
		ids = append(ids, u.ID)
		if err := a.Put(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %d upstreams, %v; want 3", len(list), err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].ID >= list[i].ID {
			t.Fatalf("List is not in id order: %s then %s", list[i-1].ID, list[i].ID)
		}
	}
	got, ok, err := b.Get(ctx, ids[1])
	if err != nil || !ok || got.Topic != up(1).Topic || got.Secret != "s" {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	u, ok, err := b.Update(ctx, ids[1], func(u *upstream.Upstream) error { u.State = upstream.StateActive; return nil })
	if err != nil || !ok || u.State != upstream.StateActive {
		t.Fatalf("Update = %+v %v %v", u, ok, err)
	}
	if got, _, _ := a.Get(ctx, ids[1]); got.State != upstream.StateActive {
		t.Fatalf("the other node reads state %q after Update", got.State)
	}
	boom := errors.New("boom")
	if _, _, err := a.Update(ctx, ids[1], func(u *upstream.Upstream) error { u.State = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn = %v", err)
	}
	if got, _, _ := a.Get(ctx, ids[1]); got.State != upstream.StateActive {
		t.Fatalf("a failed Update changed the state to %q", got.State)
	}
	if err := b.Delete(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Get(ctx, ids[0]); ok || err != nil {
		t.Fatalf("Get after Delete = %v %v", ok, err)
	}
	if _, ok, err := a.Update(ctx, ids[0], func(*upstream.Upstream) error { t.Error("fn called for a missing upstream"); return nil }); ok || err != nil {
		t.Fatalf("Update of a deleted upstream = %v %v", ok, err)
	}
	_ = a.Close()
	if _, _, err := a.Get(ctx, ids[1]); !errors.Is(err, upstream.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

// TestConcurrentUpdates: two nodes updating one upstream never lose each
// other's changes.
func TestConcurrentUpdates(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t, "Redis upstreams"))
	a, b := open(t, prefix), open(t, prefix)
	ctx := t.Context()
	u := up(0)
	if err := a.Put(ctx, u); err != nil {
		t.Fatal(err)
	}
	const per = 50
	var wg sync.WaitGroup
	for _, s := range []*redisupstreams.Store{a, b, a, b} {
		wg.Go(func() {
			for range per {
				if _, _, err := s.Update(ctx, u.ID, func(u *upstream.Upstream) error { u.LeaseSeconds++; return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, _, err := a.Get(ctx, u.ID)
	if err != nil || got.LeaseSeconds != 4*per {
		t.Fatalf("after %d increments LeaseSeconds = %d (%v)", 4*per, got.LeaseSeconds, err)
	}
}

// TestCreate: Create stores only when the id is free, and returns what is
// stored either way.
func TestCreate(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Client(t, "Redis upstreams"))
	a, b := open(t, prefix), open(t, prefix)
	ctx := t.Context()
	first, second := up(1), up(1)
	first.Secret, second.Secret = "first", "second"
	got, created, err := a.Create(ctx, first)
	if err != nil || !created || got.Secret != "first" {
		t.Fatalf("Create = %+v %v %v", got, created, err)
	}
	got, created, err = b.Create(ctx, second)
	if err != nil || created || got.Secret != "first" {
		t.Fatalf("second Create = %+v %v %v; want the first one, not created", got, created, err)
	}
}
