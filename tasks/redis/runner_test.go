package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/tasks"
)

// TestRunnersTwoNodes runs a tasks.Runner on each of two nodes, with
// deliveries enqueued on both: runs of one key never overlap across the
// nodes, and every enqueue is followed by a run that sees it (the handler
// records the latest enqueue of its key it has seen when it starts).
func TestRunnersTwoNodes(t *testing.T) {
	a, b, _ := twoNodes(t, nil)
	const keys, perNode = 10, 150
	var (
		want, seen [keys]atomic.Int64
		inflight   [keys]atomic.Bool
		failed     atomic.Bool
		runs       atomic.Int64
	)
	progress := make(chan struct{}, 1)
	handler := func(_ context.Context, tk tasks.Task) error {
		var k int
		if _, err := fmt.Sscan(tk.Key, &k); err != nil {
			return tasks.Permanent(err)
		}
		if !inflight[k].CompareAndSwap(false, true) {
			failed.Store(true)
			t.Errorf("key %d runs on two workers at once", k)
		}
		w := want[k].Load()
		runtime.Gosched()
		inflight[k].Store(false)
		for s := seen[k].Load(); s < w && !seen[k].CompareAndSwap(s, w); s = seen[k].Load() {
		}
		runs.Add(1)
		select {
		case progress <- struct{}{}:
		default:
		}
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	runners := make([]*tasks.Runner, 2)
	for i, q := range []tasks.Queue{a, b} {
		r := tasks.NewRunner(q, tasks.Options{Logger: slog.New(slog.DiscardHandler)})
		r.Handle("deliver", handler, tasks.KindOptions{Concurrency: 4, Lease: 5 * time.Second})
		runners[i] = r
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	var seq atomic.Int64
	var pwg sync.WaitGroup
	for _, r := range runners {
		pwg.Go(func() {
			for i := range perNode {
				k := i % keys
				s := seq.Add(1)
				for w := want[k].Load(); w < s && !want[k].CompareAndSwap(w, s); w = want[k].Load() {
				}
				if _, _, err := r.Enqueue(ctx, tasks.Task{Kind: "deliver", Key: fmt.Sprint(k)}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		})
	}
	pwg.Wait()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	caughtUp := func() bool {
		for k := range keys {
			if seen[k].Load() < want[k].Load() {
				return false
			}
		}
		return true
	}
	for !caughtUp() && !failed.Load() {
		select {
		case <-progress:
		case <-deadline.C:
			t.Fatalf("timed out after %d runs", runs.Load())
		}
	}
	cancel()
	wg.Wait()
	t.Logf("%d enqueues, %d runs", 2*perNode, runs.Load())
}

// TestRunnerTakesOverDeadNode: a node claims a delivery and dies; the
// Runner on the other node runs it once the lease ends, with Attempt 1.
func TestRunnerTakesOverDeadNode(t *testing.T) {
	a, b, _ := twoNodes(t, nil)
	ctx := t.Context()
	id, _, err := a.Enqueue(ctx, tasks.Task{Kind: "deliver", Key: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := a.Claim(ctx, "deliver", 1, 300*time.Millisecond); err != nil || len(ts) != 1 {
		t.Fatalf("Claim = %+v, %v", ts, err)
	}
	if err := a.Close(); err != nil { // dies without Complete or Extend
		t.Fatal(err)
	}
	got := make(chan tasks.Task, 1)
	r := tasks.NewRunner(b, tasks.Options{Logger: slog.New(slog.DiscardHandler)})
	r.Handle("deliver", func(_ context.Context, tk tasks.Task) error {
		select {
		case got <- tk:
		default:
		}
		return nil
	}, tasks.KindOptions{Lease: 5 * time.Second})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	select {
	case tk := <-got:
		if tk.ID != id || tk.Attempt != 1 {
			t.Fatalf("taken over: %+v", tk)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other node never ran the task")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
		t.Fatalf("task after the run: %v", err)
	}
}
