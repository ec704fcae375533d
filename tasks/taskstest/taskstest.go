// Package taskstest is the conformance suite every tasks.Queue backend must
// pass. A backend's own test calls Run with a Backend that opens it; each
// subtest opens fresh queues in its own directory (or key prefix) and fails
// if the queue breaks the contract documented in package tasks.
package taskstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/fakeclock"
	"github.com/hubbub/hubbub/tasks"
)

// Backend opens queues for the suite.
type Backend struct {
	// Open opens (or reopens) the queue kept under dir, deciding what is
	// due with now. The suite closes every queue it opens. Open is called
	// again with the same dir after Close to test durability.
	Open func(t *testing.T, dir string, now func() time.Time) tasks.Queue
	// ReleasesLeasesOnOpen is true for single-node backends whose Open
	// makes every running task pending again at once (Attempt+1); false for
	// shared backends (Redis), where leases outlive a client.
	ReleasesLeasesOnOpen bool
}

// Run runs the whole suite against b.
func Run(t *testing.T, b Backend) {
	s := &suite{b: b}
	t.Run("EnqueueClaimComplete", s.testEnqueueClaimComplete)
	t.Run("DedupPending", s.testDedupPending)
	t.Run("DedupRunning", s.testDedupRunning)
	t.Run("ClaimOrder", s.testClaimOrder)
	t.Run("Lease", s.testLease)
	t.Run("LeaseExpiryMerges", s.testLeaseExpiryMerges)
	t.Run("Retry", s.testRetry)
	t.Run("RetryMerges", s.testRetryMerges)
	t.Run("Dead", s.testDead)
	t.Run("NextDue", s.testNextDue)
	t.Run("Errors", s.testErrors)
	t.Run("Durable", s.testDurable)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("ConcurrentDedup", s.testConcurrentDedup)
}

type suite struct{ b Backend }

// waitTimeout bounds every call in the suite.
const waitTimeout = 30 * time.Second

// Clock is a fake clock, safe for concurrent use (internal/fakeclock).
type Clock = fakeclock.Clock

// NewClock returns a clock set to a fixed time with a sub-microsecond part,
// to catch backends that lose precision below what they promise.
func NewClock() *Clock { return fakeclock.New() }

// env is one subtest's directory, clock and open queue.
type env struct {
	t   *testing.T
	s   *suite
	dir string
	clk *Clock
	q   tasks.Queue
	ctx context.Context
}

func (s *suite) env(t *testing.T) *env {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	e := &env{t: t, s: s, dir: t.TempDir(), clk: NewClock(), ctx: ctx}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	q := e.s.b.Open(e.t, e.dir, e.clk.Now)
	if q == nil {
		e.t.Fatal("Backend.Open returned nil")
	}
	e.q = q
	e.t.Cleanup(func() { _ = q.Close() })
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.q.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open()
}

func (e *env) enqueue(t tasks.Task) (string, bool) {
	e.t.Helper()
	id, added, err := e.q.Enqueue(e.ctx, t)
	if err != nil {
		e.t.Fatalf("Enqueue(%s %q): %v", t.Kind, t.Key, err)
	}
	if !tasks.ValidID(id) {
		e.t.Fatalf("Enqueue returned id %q", id)
	}
	return id, added
}

func (e *env) add(kind, key string, runAt time.Time) string {
	e.t.Helper()
	id, added := e.enqueue(tasks.Task{Kind: kind, Key: key, RunAt: runAt})
	if !added {
		e.t.Fatalf("Enqueue(%s %q) was deduplicated", kind, key)
	}
	return id
}

func (e *env) claim(kind string, n int, lease time.Duration) []tasks.Task {
	e.t.Helper()
	ts, err := e.q.Claim(e.ctx, kind, n, lease)
	if err != nil {
		e.t.Fatalf("Claim(%s, %d): %v", kind, n, err)
	}
	for _, t := range ts {
		if t.State != tasks.Running || t.Kind != kind {
			e.t.Fatalf("Claim returned %+v", t)
		}
	}
	return ts
}

func (e *env) claimIDs(kind string, n int, lease time.Duration) []string {
	e.t.Helper()
	var ids []string
	for _, t := range e.claim(kind, n, lease) {
		ids = append(ids, t.ID)
	}
	return ids
}

func (e *env) get(id string) tasks.Task {
	e.t.Helper()
	t, err := e.q.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return t
}

func (e *env) gone(id string) {
	e.t.Helper()
	if t, err := e.q.Get(e.ctx, id); !errors.Is(err, tasks.ErrNotFound) {
		e.t.Fatalf("Get(%s) = %+v, %v; want ErrNotFound", id, t, err)
	}
}

func (e *env) ok(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *env) stats(kind string, want tasks.Counts) {
	e.t.Helper()
	st, err := e.q.Stats(e.ctx)
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	if st[kind] != want {
		e.t.Fatalf("Stats[%s] = %+v, want %+v", kind, st[kind], want)
	}
}

func (e *env) nextDue(kind string) (time.Time, bool) {
	e.t.Helper()
	at, ok, err := e.q.NextDue(e.ctx, kind)
	if err != nil {
		e.t.Fatalf("NextDue(%s): %v", kind, err)
	}
	return at, ok
}

func (e *env) wantNextDue(kind string, want time.Time) {
	e.t.Helper()
	at, ok := e.nextDue(kind)
	if !ok || !at.Equal(want) {
		e.t.Fatalf("NextDue(%s) = %v, %v; want %v", kind, at, ok, want)
	}
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func (s *suite) testEnqueueClaimComplete(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	in := tasks.Task{Kind: "deliver", Key: "sub-1", Payload: []byte("p\x00ayload"), Attempt: 7, LastError: "x", ID: "ignored"}
	id, added := e.enqueue(in)
	if !added {
		t.Fatal("first Enqueue not added")
	}
	got := e.get(id)
	if got.ID != id || got.Kind != "deliver" || got.Key != "sub-1" || string(got.Payload) != "p\x00ayload" ||
		got.Attempt != 0 || got.LastError != "" || got.State != tasks.Pending || !got.RunAt.Equal(now) {
		t.Fatalf("Get after Enqueue = %+v", got)
	}
	e.stats("deliver", tasks.Counts{Pending: 1})
	if ts := e.claim("verify", 10, time.Minute); len(ts) != 0 {
		t.Fatalf("Claim of another kind returned %v", ts)
	}
	ts := e.claim("deliver", 10, time.Minute)
	if len(ts) != 1 {
		t.Fatalf("Claim returned %d tasks, want 1", len(ts))
	}
	c := ts[0]
	if c.ID != id || string(c.Payload) != "p\x00ayload" || c.Attempt != 0 || !c.RunAt.Equal(now) ||
		!c.LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("claimed %+v", c)
	}
	if g := e.get(id); g.State != tasks.Running || !g.LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("Get after Claim = %+v", g)
	}
	e.stats("deliver", tasks.Counts{Running: 1})
	if ts := e.claim("deliver", 10, time.Minute); len(ts) != 0 {
		t.Fatalf("second Claim returned %v", ts)
	}
	e.ok("Complete", e.q.Complete(e.ctx, id))
	e.gone(id)
	e.stats("deliver", tasks.Counts{})
	if _, ok := e.nextDue("deliver"); ok {
		t.Fatal("NextDue reports a task after Complete")
	}
	// No key: no dedup.
	a := e.add("fetch", "", time.Time{})
	b := e.add("fetch", "", time.Time{})
	if a == b {
		t.Fatal("two tasks without key got one id")
	}
	e.stats("fetch", tasks.Counts{Pending: 2})
}

func (s *suite) testDedupPending(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	id := e.add("deliver", "sub", now.Add(time.Hour))
	for i := range 3 {
		got, added := e.enqueue(tasks.Task{Kind: "deliver", Key: "sub", RunAt: now.Add(2 * time.Hour), Payload: []byte{byte(i)}})
		if added || got != id {
			t.Fatalf("Enqueue of a pending key = %s, %v; want %s, false", got, added, id)
		}
	}
	e.wantNextDue("deliver", now.Add(time.Hour)) // never moved later
	// Earlier: the pending task moves earlier.
	if got, added := e.enqueue(tasks.Task{Kind: "deliver", Key: "sub", RunAt: now.Add(time.Minute)}); added || got != id {
		t.Fatalf("earlier Enqueue = %s, %v", got, added)
	}
	e.wantNextDue("deliver", now.Add(time.Minute))
	if g := e.get(id); !g.RunAt.Equal(now.Add(time.Minute)) || g.Payload != nil {
		t.Fatalf("pending task after dedup = %+v (payload must be the first one's: none)", g)
	}
	// Same key, other kind: separate.
	other := e.add("fetch", "sub", time.Time{})
	if other == id {
		t.Fatal("dedup across kinds")
	}
	e.stats("deliver", tasks.Counts{Pending: 1})
	e.clk.Advance(time.Minute)
	sameIDs(t, "claim", e.claimIDs("deliver", 10, time.Minute), []string{id})
}

func (s *suite) testDedupRunning(t *testing.T) {
	e := s.env(t)
	first := e.add("deliver", "sub", time.Time{})
	sameIDs(t, "claim", e.claimIDs("deliver", 1, time.Minute), []string{first})
	// Running tasks do not hold their key: a follow-up is added.
	second, added := e.enqueue(tasks.Task{Kind: "deliver", Key: "sub"})
	if !added || second == first {
		t.Fatalf("Enqueue while running = %s, %v; want a new task", second, added)
	}
	// ... and it holds the key itself.
	if got, added := e.enqueue(tasks.Task{Kind: "deliver", Key: "sub"}); added || got != second {
		t.Fatalf("third Enqueue = %s, %v; want %s, false", got, added, second)
	}
	e.stats("deliver", tasks.Counts{Pending: 1, Running: 1})
	// Runs of one key never overlap: the follow-up waits for the first run,
	// while other keys are claimed meanwhile.
	now := e.clk.Now()
	other := e.add("deliver", "other", time.Time{})
	sameIDs(t, "claim while the key runs", e.claimIDs("deliver", 10, time.Minute), []string{other})
	e.ok("Complete other", e.q.Complete(e.ctx, other))
	e.wantNextDue("deliver", now.Add(time.Minute)) // the first run's lease end, not second's RunAt
	e.ok("Complete first", e.q.Complete(e.ctx, first))
	e.wantNextDue("deliver", now)
	sameIDs(t, "claim after the run", e.claimIDs("deliver", 10, time.Minute), []string{second})
	e.ok("Complete second", e.q.Complete(e.ctx, second))
	e.stats("deliver", tasks.Counts{})
	// The same after Retry and Dead, and when the lease ends.
	a := e.add("deliver", "k", time.Time{})
	e.claim("deliver", 1, time.Minute)
	b := e.add("deliver", "k2", time.Time{})
	sameIDs(t, "claim b", e.claimIDs("deliver", 1, time.Minute), []string{b})
	c := e.add("deliver", "k2", time.Time{})
	if ts := e.claim("deliver", 10, time.Minute); len(ts) != 0 {
		t.Fatalf("claimed %v while its key runs", ts)
	}
	e.ok("Dead b", e.q.Dead(e.ctx, b, "x"))
	sameIDs(t, "claim after Dead", e.claimIDs("deliver", 10, time.Minute), []string{c})
	e.clk.Advance(time.Minute) // a's and c's leases end: both come back
	got := e.claimIDs("deliver", 10, time.Minute)
	slices.Sort(got)
	want := []string{a, c}
	slices.Sort(want)
	sameIDs(t, "claim after the leases ended", got, want)
}

func (s *suite) testClaimOrder(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	c := e.add("k", "", now.Add(3*time.Second))
	a := e.add("k", "", now.Add(-time.Hour))
	future := e.add("k", "", now.Add(time.Hour))
	b := e.add("k", "x", now.Add(-time.Minute))
	d := e.add("k", "", now) // due exactly now
	e.add("k2", "", now.Add(-2*time.Hour))
	sameIDs(t, "first claim", e.claimIDs("k", 2, time.Minute), []string{a, b})
	sameIDs(t, "second claim", e.claimIDs("k", 10, time.Minute), []string{d})
	e.clk.Advance(3 * time.Second)
	sameIDs(t, "third claim", e.claimIDs("k", 10, time.Minute), []string{c})
	e.wantNextDue("k", now.Add(time.Minute)) // the first lease to end
	e.clk.Advance(time.Hour)
	// Every lease has ended: the tasks come back at their old RunAt, so
	// they are claimed in the same order, before future.
	got := e.claimIDs("k", 10, time.Minute)
	sameIDs(t, "after leases end", got, []string{a, b, d, c, future})
	for _, id := range got[:4] {
		if g := e.get(id); g.Attempt != 1 {
			t.Fatalf("task %s released from an ended lease has Attempt %d, want 1", id, g.Attempt)
		}
	}
	if g := e.get(future); g.Attempt != 0 {
		t.Fatalf("Attempt of a first run = %d", g.Attempt)
	}
}

func (s *suite) testLease(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	id := e.add("k", "", time.Time{})
	e.claim("k", 1, 10*time.Second)
	e.wantNextDue("k", now.Add(10*time.Second))
	e.clk.Advance(9 * time.Second)
	if ts := e.claim("k", 1, time.Minute); len(ts) != 0 {
		t.Fatal("leased task claimed again before its lease ended")
	}
	e.ok("Extend", e.q.Extend(e.ctx, id, 10*time.Second)) // until now+19s
	e.wantNextDue("k", now.Add(19*time.Second))
	e.clk.Advance(9 * time.Second)
	if ts := e.claim("k", 1, time.Minute); len(ts) != 0 {
		t.Fatal("extended lease not honoured")
	}
	e.clk.Advance(time.Second) // exactly at the end of the lease: it ended
	ts := e.claim("k", 1, time.Minute)
	if len(ts) != 1 || ts[0].ID != id || ts[0].Attempt != 1 || ts[0].LastError == "" {
		t.Fatalf("claim after the lease ended = %+v; want the task with Attempt 1 and a LastError", ts)
	}
	e.stats("k", tasks.Counts{Running: 1})
	// A lease that ended but was not reclaimed can still be extended.
	e.clk.Advance(2 * time.Minute)
	e.ok("Extend after end", e.q.Extend(e.ctx, id, time.Minute))
	if ts := e.claim("k", 1, time.Minute); len(ts) != 0 {
		t.Fatal("task claimed after a late Extend")
	}
	// The lease ends again: redelivered with Attempt 2.
	e.clk.Advance(2 * time.Minute)
	if ts := e.claim("k", 1, time.Minute); len(ts) != 1 || ts[0].ID != id || ts[0].Attempt != 2 {
		t.Fatalf("second redelivery = %+v", ts)
	}
	e.ok("Complete", e.q.Complete(e.ctx, id))
	for name, err := range map[string]error{
		"Extend":   e.q.Extend(e.ctx, id, time.Minute),
		"Complete": e.q.Complete(e.ctx, id),
		"Retry":    e.q.Retry(e.ctx, id, time.Time{}, "x"),
	} {
		if !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("%s of a completed task: %v, want ErrNotFound", name, err)
		}
	}
}

func (s *suite) testLeaseExpiryMerges(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	first := e.add("deliver", "sub", time.Time{})
	e.claim("deliver", 1, time.Minute)
	second := e.add("deliver", "sub", now.Add(time.Hour))
	e.clk.Advance(time.Minute)
	ts := e.claim("deliver", 10, time.Minute)
	if len(ts) != 1 || ts[0].ID != second || !ts[0].RunAt.Equal(now) || ts[0].Attempt != 1 {
		t.Fatalf("claim after lease expiry = %+v; want %s merged at %v, Attempt 1", ts, second, now)
	}
	e.gone(first)
	e.stats("deliver", tasks.Counts{Running: 1})
}

func (s *suite) testRetry(t *testing.T) {
	e := s.env(t)
	id := e.add("k", "key", time.Time{})
	for attempt := range 3 {
		ts := e.claim("k", 1, time.Minute)
		if len(ts) != 1 || ts[0].ID != id || ts[0].Attempt != attempt {
			t.Fatalf("claim %d = %+v", attempt, ts)
		}
		if attempt > 0 && ts[0].LastError != fmt.Sprintf("boom %d", attempt-1) {
			t.Fatalf("LastError = %q", ts[0].LastError)
		}
		at := e.clk.Now().Add(time.Duration(attempt+1) * time.Second)
		e.ok("Retry", e.q.Retry(e.ctx, id, at, fmt.Sprintf("boom %d", attempt)))
		if g := e.get(id); g.State != tasks.Pending || g.Attempt != attempt+1 || !g.RunAt.Equal(at) {
			t.Fatalf("after Retry: %+v", g)
		}
		e.stats("k", tasks.Counts{Pending: 1})
		// The key is held again.
		if got, added := e.enqueue(tasks.Task{Kind: "k", Key: "key", RunAt: at.Add(time.Hour)}); added || got != id {
			t.Fatalf("Enqueue after Retry = %s, %v", got, added)
		}
		if ts := e.claim("k", 1, time.Minute); len(ts) != 0 {
			t.Fatal("retried task claimed before its RunAt")
		}
		e.clk.Advance(time.Duration(attempt+1) * time.Second)
	}
	if err := e.q.Retry(e.ctx, id, time.Time{}, "x"); !errors.Is(err, tasks.ErrNotRunning) {
		t.Fatalf("Retry of a pending task: %v, want ErrNotRunning", err)
	}
}

func (s *suite) testRetryMerges(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	// Pending one is earlier: keep it.
	a := e.add("deliver", "s", time.Time{})
	e.claim("deliver", 1, time.Minute)
	b := e.add("deliver", "s", now.Add(time.Minute))
	e.ok("Retry", e.q.Retry(e.ctx, a, now.Add(time.Hour), "down"))
	e.gone(a)
	g := e.get(b)
	if !g.RunAt.Equal(now.Add(time.Minute)) || g.Attempt != 1 || g.LastError != "down" || g.State != tasks.Pending {
		t.Fatalf("merged task = %+v", g)
	}
	e.stats("deliver", tasks.Counts{Pending: 1})
	// Retried one is earlier: the pending one moves earlier.
	e.clk.Advance(time.Minute)
	sameIDs(t, "claim", e.claimIDs("deliver", 1, time.Minute), []string{b})
	c := e.add("deliver", "s", now.Add(time.Hour))
	e.ok("Retry", e.q.Retry(e.ctx, b, now.Add(2*time.Minute), "again"))
	e.gone(b)
	g = e.get(c)
	if !g.RunAt.Equal(now.Add(2*time.Minute)) || g.Attempt != 2 || g.LastError != "again" {
		t.Fatalf("merged task = %+v", g)
	}
	e.wantNextDue("deliver", now.Add(2*time.Minute))
	e.stats("deliver", tasks.Counts{Pending: 1})
}

func (s *suite) testDead(t *testing.T) {
	e := s.env(t)
	running := e.add("k", "a", time.Time{})
	e.claim("k", 1, time.Minute)
	pending := e.add("k", "b", time.Time{})
	e.ok("Dead running", e.q.Dead(e.ctx, running, "gave up"))
	e.ok("Dead pending", e.q.Dead(e.ctx, pending, "cancelled"))
	e.ok("Dead again", e.q.Dead(e.ctx, pending, "twice"))
	e.stats("k", tasks.Counts{Dead: 2})
	if ts := e.claim("k", 10, time.Minute); len(ts) != 0 {
		t.Fatalf("dead tasks claimed: %v", ts)
	}
	if _, ok := e.nextDue("k"); ok {
		t.Fatal("NextDue reports dead tasks")
	}
	g := e.get(running)
	if g.State != tasks.Dead || g.LastError != "gave up" || !g.DeadAt.Equal(e.clk.Now()) {
		t.Fatalf("dead task = %+v", g)
	}
	// The key is free again.
	if _, added := e.enqueue(tasks.Task{Kind: "k", Key: "b"}); !added {
		t.Fatal("key of a dead task still held")
	}
	for _, n := range []int{1, 5} {
		var got []string
		after := ""
		for {
			page, err := e.q.ListDead(e.ctx, "k", after, n)
			e.ok("ListDead", err)
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				if d.State != tasks.Dead {
					t.Fatalf("ListDead returned %+v", d)
				}
				got = append(got, d.ID)
			}
			after = page[len(page)-1].ID
		}
		sameIDs(t, fmt.Sprintf("ListDead pages of %d", n), got, []string{running, pending})
	}
	if l, err := e.q.ListDead(e.ctx, "other", "", 10); err != nil || len(l) != 0 {
		t.Fatalf("ListDead(other) = %v, %v", l, err)
	}
	for name, err := range map[string]error{
		"Complete": e.q.Complete(e.ctx, running),
		"Extend":   e.q.Extend(e.ctx, running, time.Minute),
		"Retry":    e.q.Retry(e.ctx, running, time.Time{}, ""),
	} {
		if !errors.Is(err, tasks.ErrNotRunning) {
			t.Fatalf("%s of a dead task: %v, want ErrNotRunning", name, err)
		}
	}
}

func (s *suite) testNextDue(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	if _, ok := e.nextDue("k"); ok {
		t.Fatal("NextDue of an empty queue")
	}
	e.add("k", "", now.Add(time.Hour))
	e.wantNextDue("k", now.Add(time.Hour))
	e.add("k", "", now.Add(-time.Hour))
	e.wantNextDue("k", now.Add(-time.Hour))
	e.claim("k", 1, 5*time.Minute)
	e.wantNextDue("k", now.Add(5*time.Minute))
	if _, ok := e.nextDue("k2"); ok {
		t.Fatal("NextDue of another kind")
	}
}

func (s *suite) testErrors(t *testing.T) {
	e := s.env(t)
	if _, _, err := e.q.Enqueue(e.ctx, tasks.Task{}); !errors.Is(err, tasks.ErrInvalid) {
		t.Fatalf("Enqueue without kind: %v", err)
	}
	if _, err := e.q.Claim(e.ctx, "k", 1, 0); !errors.Is(err, tasks.ErrInvalid) {
		t.Fatalf("Claim with zero lease: %v", err)
	}
	if ts, err := e.q.Claim(e.ctx, "k", 0, time.Minute); err != nil || len(ts) != 0 {
		t.Fatalf("Claim of 0 = %v, %v", ts, err)
	}
	for _, id := range []string{"", "nope", "0123456789abcdef01234567"} {
		if _, err := e.q.Get(e.ctx, id); !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if err := e.q.Complete(e.ctx, id); !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("Complete(%q): %v", id, err)
		}
	}
	id := e.add("k", "", time.Time{})
	if err := e.q.Complete(e.ctx, id); !errors.Is(err, tasks.ErrNotRunning) {
		t.Fatalf("Complete of a pending task: %v", err)
	}
	if err := e.q.Extend(e.ctx, id, time.Minute); !errors.Is(err, tasks.ErrNotRunning) {
		t.Fatalf("Extend of a pending task: %v", err)
	}
	canceled, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, _, err := e.q.Enqueue(canceled, tasks.Task{Kind: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a canceled context: %v", err)
	}
	e.ok("Close", e.q.Close())
	if _, _, err := e.q.Enqueue(e.ctx, tasks.Task{Kind: "k"}); !errors.Is(err, tasks.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	if _, err := e.q.Claim(e.ctx, "k", 1, time.Minute); !errors.Is(err, tasks.ErrClosed) {
		t.Fatalf("Claim after Close: %v", err)
	}
}

func (s *suite) testDurable(t *testing.T) {
	e := s.env(t)
	now := e.clk.Now()
	pending := e.add("deliver", "sub", now.Add(time.Hour))
	e.enqueue(tasks.Task{Kind: "deliver", Key: "sub", RunAt: now.Add(time.Minute)}) // moves it
	runningID := e.add("fetch", "url", time.Time{})
	e.claim("fetch", 1, time.Hour)
	retried := e.add("verify", "", time.Time{})
	e.claim("verify", 1, time.Hour)
	e.ok("Retry", e.q.Retry(e.ctx, retried, now.Add(time.Second), "503"))
	dead := e.add("verify", "", now.Add(time.Hour))
	e.ok("Dead", e.q.Dead(e.ctx, dead, "no"))
	payload := e.add("deliver", "", time.Time{})

	e.reopen()

	if g := e.get(pending); g.State != tasks.Pending || !g.RunAt.Equal(now.Add(time.Minute)) || g.Key != "sub" {
		t.Fatalf("pending after reopen: %+v", g)
	}
	if got, added := e.enqueue(tasks.Task{Kind: "deliver", Key: "sub"}); added || got != pending {
		t.Fatal("dedup key lost across reopen")
	}
	if g := e.get(retried); g.State != tasks.Pending || g.Attempt != 1 || g.LastError != "503" || !g.RunAt.Equal(now.Add(time.Second)) {
		t.Fatalf("retried after reopen: %+v", g)
	}
	if g := e.get(dead); g.State != tasks.Dead || g.LastError != "no" {
		t.Fatalf("dead after reopen: %+v", g)
	}
	if g := e.get(payload); g.State != tasks.Pending {
		t.Fatalf("task after reopen: %+v", g)
	}
	g := e.get(runningID)
	if s.b.ReleasesLeasesOnOpen {
		if g.State != tasks.Pending || g.Attempt != 1 {
			t.Fatalf("running task after reopen = %+v; want pending with Attempt 1", g)
		}
		e.stats("fetch", tasks.Counts{Pending: 1})
		sameIDs(t, "claim after reopen", e.claimIDs("fetch", 1, time.Minute), []string{runningID})
	} else {
		if g.State != tasks.Running {
			t.Fatalf("running task after reopen = %+v", g)
		}
		e.stats("fetch", tasks.Counts{Running: 1})
	}
	e.stats("deliver", tasks.Counts{Pending: 2})
	e.stats("verify", tasks.Counts{Pending: 1, Dead: 1})
	// New ids still sort after the old ones.
	if id := e.add("deliver", "", time.Time{}); id <= payload {
		t.Fatalf("id after reopen %s <= %s", id, payload)
	}
}
