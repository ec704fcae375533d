package cluster

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
)

func newTestRegistry(t *testing.T) *Registry {
	t.Helper()
	c := redistest.Client(t, "cluster node registry")
	return NewRegistry(c, redistest.Prefix(t, c), slog.New(slog.DiscardHandler))
}

// Claim: a free ID passes at once; an ID whose record keeps being written
// by another process is refused; an ID whose writer died (its record stays
// until it expires) passes once the record expires.
func TestClaim(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t)
	ctx := context.Background()

	if err := r.Claim(ctx, "free", "i-1"); err != nil {
		t.Fatalf("claim of a free id: %v", err)
	}

	// A live node: Run beats every HeartbeatEvery.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx, func() Node { return Node{ID: "taken", Address: "127.0.0.1:1", Instance: "live"} })
	}()
	t.Cleanup(func() { stop(); <-done })
	waitRecord(t, r, "taken")
	err := r.Claim(ctx, "taken", "newcomer")
	var dup *DuplicateError
	if !errors.As(err, &dup) || dup.Other.Address != "127.0.0.1:1" {
		t.Fatalf("claim of a live node's id = %v, want a DuplicateError naming 127.0.0.1:1", err)
	}
	// The process itself may claim its own id (a restart of the heartbeat).
	if err := r.Claim(ctx, "taken", "live"); err != nil {
		t.Fatalf("claim by the same instance: %v", err)
	}

	// A crashed node: one beat, then silence.
	if _, err := r.Beat(ctx, Node{ID: "crashed", Instance: "dead"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Claim(ctx, "crashed", "restarted"); err != nil {
		t.Fatalf("claim of a dead node's id = %v, want nil once its record expired", err)
	}
	if _, ok, err := r.Get(ctx, "crashed"); err != nil || ok {
		t.Fatalf("the dead node's record is still there after Claim (%v, %v)", ok, err)
	}
}

// Beat reports a record of the same ID that another instance wrote.
func TestBeatReportsAnotherInstance(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t)
	ctx := context.Background()
	for i, c := range []struct {
		instance  string
		wantOther string
	}{
		{"a", ""},  // no record before
		{"a", ""},  // its own
		{"b", "a"}, // another process's
		{"a", "b"},
	} {
		other, err := r.Beat(ctx, Node{ID: "n", Instance: c.instance})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if other != nil {
			got = other.Instance
		}
		if got != c.wantOther {
			t.Errorf("beat %d by %s: other = %q, want %q", i, c.instance, got, c.wantOther)
		}
	}
}

func waitRecord(t *testing.T, r *Registry, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := r.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record of %s within 10s", id)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}
