package redis_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/redis"
	"github.com/hubbub/hubbub/tasks/taskstest"
)

// twoNodes opens two queues on one prefix, as two hubbub nodes sharing a
// Redis would (now nil: the real clock).
func twoNodes(t *testing.T, now func() time.Time) (a, b *redis.Queue, prefix string) {
	t.Helper()
	prefix = newPrefix(t, rawClient(t))
	a, b = openQueue(t, prefix, now), openQueue(t, prefix, now)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b, prefix
}

// TestTakeOver: node A claims a task and dies (it never completes nor
// extends); when the lease ends node B claims it with Attempt+1, and B's
// Open did not release A's lease early.
func TestTakeOver(t *testing.T) {
	clk := taskstest.NewClock()
	a, b, prefix := twoNodes(t, clk.Now)
	ctx := t.Context()
	id, _, err := a.Enqueue(ctx, tasks.Task{Kind: "deliver", Key: "sub-1", Payload: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := a.Claim(ctx, "deliver", 1, 10*time.Second)
	if err != nil || len(ts) != 1 || ts[0].ID != id {
		t.Fatalf("A Claim = %+v, %v", ts, err)
	}
	if err := a.Close(); err != nil { // A dies
		t.Fatal(err)
	}
	// A node started now sees the lease and leaves it alone.
	c := openQueue(t, prefix, clk.Now)
	defer c.Close()
	if g, err := c.Get(ctx, id); err != nil || g.State != tasks.Running {
		t.Fatalf("after a new node opened: %+v, %v", g, err)
	}
	if at, ok, err := b.NextDue(ctx, "deliver"); err != nil || !ok || !at.Equal(ts[0].LeaseUntil) {
		t.Fatalf("B NextDue = %v, %v, %v; want the lease end %v", at, ok, err, ts[0].LeaseUntil)
	}
	clk.Advance(9 * time.Second)
	if got, err := b.Claim(ctx, "deliver", 1, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("B claimed %+v, %v before A's lease ended", got, err)
	}
	clk.Advance(time.Second)
	got, err := b.Claim(ctx, "deliver", 1, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].Attempt != 1 ||
		got[0].LastError != "lease expired" || string(got[0].Payload) != "p" {
		t.Fatalf("B Claim after A's lease ended = %+v, %v", got, err)
	}
	if err := b.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
		t.Fatalf("Get after B completed: %v", err)
	}
}

// TestRunningGuardAcrossNodes: a follow-up enqueued on node B while node A
// runs the key is not claimable on B until A's run ends.
func TestRunningGuardAcrossNodes(t *testing.T) {
	clk := taskstest.NewClock()
	a, b, _ := twoNodes(t, clk.Now)
	ctx := t.Context()
	first, _, err := a.Enqueue(ctx, tasks.Task{Kind: "deliver", Key: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := a.Claim(ctx, "deliver", 10, time.Minute); err != nil || len(ts) != 1 {
		t.Fatalf("A Claim = %+v, %v", ts, err)
	}
	second, added, err := b.Enqueue(ctx, tasks.Task{Kind: "deliver", Key: "sub"})
	if err != nil || !added || second == first {
		t.Fatalf("B Enqueue while A runs = %s, %v, %v", second, added, err)
	}
	if ts, err := b.Claim(ctx, "deliver", 10, time.Minute); err != nil || len(ts) != 0 {
		t.Fatalf("B claimed %+v, %v while A runs the key", ts, err)
	}
	if at, ok, err := b.NextDue(ctx, "deliver"); err != nil || !ok || !at.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("B NextDue = %v, %v, %v; want A's lease end", at, ok, err)
	}
	if err := a.Complete(ctx, first); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Claim(ctx, "deliver", 10, time.Minute)
	if err != nil || len(ts) != 1 || ts[0].ID != second {
		t.Fatalf("B Claim after A's run = %+v, %v", ts, err)
	}
}

// TestConcurrentClaimsTwoNodes: consumers on two nodes claim at once; no
// task is handed to two consumers, no two runs of one key overlap, and
// every task runs. Keyed tasks get a follow-up, enqueued on the other node
// while they run. Idle consumers wait for the queues' notifications.
func TestConcurrentClaimsTwoNodes(t *testing.T) {
	a, b, _ := twoNodes(t, nil)
	nodes := []*redis.Queue{a, b}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const plain, keys, perNode = 400, 50, 4
	total := int64(plain + 2*keys)
	var (
		mu      sync.Mutex
		runs    = map[string]int{}    // id -> runs
		running = map[string]string{} // key -> id
		done    atomic.Int64
		failed  atomic.Bool
	)
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
		cancel()
	}
	wakes := make([]chan struct{}, 2*perNode)
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	wakeAll := func(string) {
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
	for _, q := range nodes {
		defer q.OnReady(wakeAll)()
	}
	for i := range plain {
		if _, _, err := nodes[i%2].Enqueue(ctx, tasks.Task{Kind: "c", Payload: []byte("plain")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range keys {
		if _, _, err := nodes[i%2].Enqueue(ctx, tasks.Task{Kind: "c", Key: fmt.Sprint("k", i), Payload: []byte("first")}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for c := range 2 * perNode {
		q, other := nodes[c%2], nodes[1-c%2]
		wg.Go(func() {
			for done.Load() < total && ctx.Err() == nil {
				ts, err := q.Claim(ctx, "c", 5, time.Hour)
				if err != nil {
					if ctx.Err() == nil {
						fail("Claim: %v", err)
					}
					return
				}
				if len(ts) == 0 {
					select {
					case <-wakes[c]:
					case <-ctx.Done():
					}
					continue
				}
				mu.Lock()
				for _, tk := range ts {
					runs[tk.ID]++
					if runs[tk.ID] > 1 {
						fail("task %s handed out twice", tk.ID)
					}
					if tk.Key != "" {
						if r, busy := running[tk.Key]; busy {
							fail("key %s claimed (%s) while %s runs", tk.Key, tk.ID, r)
						}
						running[tk.Key] = tk.ID
					}
				}
				mu.Unlock()
				for _, tk := range ts {
					if string(tk.Payload) == "first" {
						_, added, err := other.Enqueue(ctx, tasks.Task{Kind: "c", Key: tk.Key, Payload: []byte("second")})
						if err != nil || !added {
							fail("follow-up Enqueue = %v, %v", added, err)
							return
						}
					}
					runtime.Gosched()
					mu.Lock()
					delete(running, tk.Key)
					mu.Unlock()
					if err := q.Complete(ctx, tk.ID); err != nil {
						fail("Complete: %v", err)
						return
					}
					if done.Add(1) == total {
						wakeAll("")
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("timed out with %d of %d done", done.Load(), total)
	}
	if int64(len(runs)) != total {
		t.Fatalf("%d distinct tasks ran, want %d", len(runs), total)
	}
	st, err := a.Stats(t.Context())
	if err != nil || st["c"] != (tasks.Counts{}) {
		t.Fatalf("Stats after = %+v, %v", st, err)
	}
}
