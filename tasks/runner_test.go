package tasks_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/embedded"
)

// The runner tests run inside synctest bubbles: time is fake, so backoffs
// and leases of hours take no time, and synctest.Wait waits until every
// goroutine (runner, handlers, Pebble) is idle. The queue is the embedded
// one on an in-memory file system.

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newQueue(t *testing.T) *embedded.Queue {
	t.Helper()
	q, err := embedded.Open("tasks", embedded.WithFS(vfs.NewMem()), embedded.WithLogger(discard()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// start runs r until the returned stop is called; stop returns Run's error.
func start(t *testing.T, r *tasks.Runner) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor waits (in fake time) until ch is closed or a day passes.
func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(24 * time.Hour):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func enqueue(t *testing.T, r *tasks.Runner, task tasks.Task) string {
	t.Helper()
	id, _, err := r.Enqueue(t.Context(), task)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func get(t *testing.T, q tasks.Queue, id string) tasks.Task {
	t.Helper()
	task, err := q.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return task
}

func TestConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		const n = 40
		limits := map[string]int{"a": 3, "b": 1}
		var (
			inflight, peak = map[string]*atomic.Int64{}, map[string]*atomic.Int64{}
			done           atomic.Int64
			all            = make(chan struct{})
		)
		for kind, c := range limits {
			inflight[kind], peak[kind] = new(atomic.Int64), new(atomic.Int64)
			r.Handle(kind, func(ctx context.Context, task tasks.Task) error {
				cur := inflight[kind].Add(1)
				for p := peak[kind].Load(); cur > p && !peak[kind].CompareAndSwap(p, cur); p = peak[kind].Load() {
				}
				time.Sleep(time.Second) // the work, in fake time
				inflight[kind].Add(-1)
				if done.Add(1) == 2*n {
					close(all)
				}
				return nil
			}, tasks.KindOptions{Concurrency: c})
		}
		stop := start(t, r)
		for i := range n {
			for kind := range limits {
				enqueue(t, r, tasks.Task{Kind: kind, Payload: []byte{byte(i)}})
			}
		}
		waitFor(t, "all tasks", all)
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		for kind, c := range limits {
			if p := peak[kind].Load(); p != int64(c) {
				t.Errorf("kind %s: peak concurrency %d, want %d", kind, p, c)
			}
		}
		st, _ := q.Stats(t.Context())
		if len(st) != 0 {
			t.Fatalf("left in the queue: %v", st)
		}
	})
}

// failing returns a handler that records the time of each run and fails
// with errFn(run) until it returns nil; done is closed after `until` runs.
func recorder(until int, errFn func(run int) error) (tasks.Handler, *[]time.Time, chan struct{}) {
	var (
		mu    sync.Mutex
		times []time.Time
		done  = make(chan struct{})
	)
	return func(ctx context.Context, task tasks.Task) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == until {
			close(done)
		}
		return errFn(len(times))
	}, &times, done
}

func gaps(times []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]))
	}
	return out
}

func TestBackoff(t *testing.T) {
	boom := errors.New("boom")
	t.Run("Growth", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newQueue(t)
			r := tasks.NewRunner(q, tasks.Options{Logger: discard(), Jitter: func(c time.Duration) time.Duration { return c }})
			h, times, done := recorder(6, func(int) error { return boom })
			r.Handle("k", h, tasks.KindOptions{MaxAttempts: 6, Backoff: tasks.Backoff{Base: time.Second, Max: 10 * time.Second}})
			start(t, r)
			id := enqueue(t, r, tasks.Task{Kind: "k"})
			waitFor(t, "6 runs", done)
			synctest.Wait()
			want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
			if g := gaps(*times); !equalDurations(g, want) {
				t.Fatalf("gaps between runs %v, want %v", g, want)
			}
			task := get(t, q, id)
			if task.State != tasks.Dead || !strings.Contains(task.LastError, "6 attempts failed") || !strings.Contains(task.LastError, "boom") {
				t.Fatalf("after MaxAttempts: %+v", task)
			}
		})
	})
	t.Run("FullJitter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newQueue(t)
			r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
			b := tasks.Backoff{Base: time.Minute, Max: time.Hour}
			h, times, done := recorder(9, func(n int) error {
				if n == 9 {
					return nil
				}
				return boom
			})
			r.Handle("k", h, tasks.KindOptions{MaxAttempts: -1, Backoff: b})
			start(t, r)
			id := enqueue(t, r, tasks.Task{Kind: "k"})
			waitFor(t, "9 runs", done)
			synctest.Wait()
			var total time.Duration
			for i, g := range gaps(*times) {
				if g < 0 || g > b.Ceiling(i)+time.Millisecond {
					t.Fatalf("gap %d = %v, outside [0, %v]", i, g, b.Ceiling(i))
				}
				total += g
			}
			if total == 0 {
				t.Fatal("no jitter delay at all")
			}
			if _, err := q.Get(t.Context(), id); !errors.Is(err, tasks.ErrNotFound) {
				t.Fatalf("task not completed: %v", err)
			}
		})
	})
	t.Run("Ceiling", func(t *testing.T) {
		b := tasks.Backoff{Base: 100 * time.Millisecond, Max: time.Minute}
		for a, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 200 * time.Millisecond, 3: 800 * time.Millisecond, 10: time.Minute, 1000: time.Minute} {
			if got := b.Ceiling(a); got != want {
				t.Errorf("Ceiling(%d) = %v, want %v", a, got, want)
			}
		}
		if got := (tasks.Backoff{Max: 1<<63 - 1}).Ceiling(100); got != 1<<63-1 {
			t.Errorf("Ceiling overflowed: %v", got)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		h, times, done := recorder(3, func(n int) error {
			switch n {
			case 1:
				return tasks.RetryAfter(7*time.Second, errors.New("503"))
			case 2:
				return tasks.RetryAfter(90*time.Minute, nil)
			}
			return nil
		})
		r.Handle("k", h, tasks.KindOptions{Backoff: tasks.Backoff{Base: time.Hour}})
		start(t, r)
		id := enqueue(t, r, tasks.Task{Kind: "k"})
		waitFor(t, "3 runs", done)
		synctest.Wait()
		if g := gaps(*times); !equalDurations(g, []time.Duration{7 * time.Second, 90 * time.Minute}) {
			t.Fatalf("gaps %v, want [7s 1h30m]", g)
		}
		if _, err := q.Get(t.Context(), id); !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("task not completed: %v", err)
		}
	})
}

func TestPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		h, times, done := recorder(1, func(int) error {
			return tasks.Permanent(errors.New("410 gone"))
		})
		r.Handle("k", h, tasks.KindOptions{})
		start(t, r)
		id := enqueue(t, r, tasks.Task{Kind: "k"})
		waitFor(t, "a run", done)
		synctest.Wait()
		time.Sleep(time.Hour) // nothing else may happen
		synctest.Wait()
		if len(*times) != 1 {
			t.Fatalf("%d runs, want 1", len(*times))
		}
		dead, err := q.ListDead(t.Context(), "k", "", 10)
		if err != nil || len(dead) != 1 || dead[0].ID != id || dead[0].LastError != "410 gone" {
			t.Fatalf("ListDead = %+v, %v", dead, err)
		}
	})
}

// TestCrashLoop: a task whose runs keep dying with their worker (leases
// expire) is buried once it reached MaxAttempts, without another run.
func TestCrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		id, _, err := q.Enqueue(t.Context(), tasks.Task{Kind: "k"})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // three workers die
			if ts, err := q.Claim(t.Context(), "k", 1, time.Second); err != nil || len(ts) != 1 {
				t.Fatalf("Claim = %v, %v", ts, err)
			}
			time.Sleep(time.Second)
		}
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		var runs atomic.Int64
		r.Handle("k", func(context.Context, tasks.Task) error { runs.Add(1); return nil }, tasks.KindOptions{MaxAttempts: 3})
		start(t, r)
		synctest.Wait()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if task := get(t, q, id); task.State != tasks.Dead || runs.Load() != 0 {
			t.Fatalf("after 3 lost leases: %+v, %d runs", task, runs.Load())
		}
	})
}

// TestBurst: 1,000 enqueues of one key while its handler runs make exactly
// one follow-up run, which waits for the first run to end although slots
// are free.
func TestBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		started, release := make(chan struct{}), make(chan struct{})
		var runs atomic.Int64
		r.Handle("deliver", func(ctx context.Context, task tasks.Task) error {
			if runs.Add(1) == 1 {
				close(started)
				<-release
			}
			return nil
		}, tasks.KindOptions{Concurrency: 4})
		start(t, r)
		enqueue(t, r, tasks.Task{Kind: "deliver", Key: "sub-1"})
		waitFor(t, "first run", started)
		added := 0
		for range 1000 {
			_, a, err := r.Enqueue(t.Context(), tasks.Task{Kind: "deliver", Key: "sub-1"})
			if err != nil {
				t.Fatal(err)
			}
			if a {
				added++
			}
		}
		if added != 1 {
			t.Fatalf("burst added %d tasks, want 1", added)
		}
		time.Sleep(time.Minute) // leases are renewed; the follow-up waits
		synctest.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("the follow-up ran while the first run was running (%d runs)", n)
		}
		close(release)
		synctest.Wait()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := runs.Load(); n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
		if st, _ := q.Stats(t.Context()); len(st) != 0 {
			t.Fatalf("left: %v", st)
		}
	})
}

// TestLeaseRenewal: a handler running for many leases keeps its task; no
// other claim gets it.
func TestLeaseRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		var runs atomic.Int64
		r.Handle("k", func(ctx context.Context, task tasks.Task) error {
			runs.Add(1)
			select {
			case <-time.After(10 * time.Minute):
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}, tasks.KindOptions{Concurrency: 2, Lease: 10 * time.Second})
		start(t, r)
		id := enqueue(t, r, tasks.Task{Kind: "k"})
		time.Sleep(5 * time.Minute)
		if ts, err := q.Claim(t.Context(), "k", 1, time.Second); err != nil || len(ts) != 0 {
			t.Fatalf("another worker claimed the running task: %v, %v", ts, err)
		}
		if task := get(t, q, id); task.State != tasks.Running || task.Attempt != 0 {
			t.Fatalf("task mid-run: %+v", task)
		}
		time.Sleep(6 * time.Minute)
		synctest.Wait()
		if _, err := q.Get(t.Context(), id); !errors.Is(err, tasks.ErrNotFound) || runs.Load() != 1 {
			t.Fatalf("after the run: %v, %d runs", err, runs.Load())
		}
	})
}

// TestLeaseLost: when the lease is taken away (here: the task is buried by
// an operator), the handler's context is canceled with ErrLeaseLost.
func TestLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard()})
		cause := make(chan error, 1)
		started := make(chan struct{})
		r.Handle("k", func(ctx context.Context, task tasks.Task) error {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return ctx.Err()
		}, tasks.KindOptions{Lease: 10 * time.Second})
		start(t, r)
		id := enqueue(t, r, tasks.Task{Kind: "k"})
		waitFor(t, "run", started)
		if err := q.Dead(t.Context(), id, "by hand"); err != nil {
			t.Fatal(err)
		}
		if err := <-cause; !errors.Is(err, tasks.ErrLeaseLost) {
			t.Fatalf("cause %v, want ErrLeaseLost", err)
		}
		synctest.Wait()
		if task := get(t, q, id); task.State != tasks.Dead || task.LastError != "by hand" {
			t.Fatalf("task: %+v", task)
		}
	})
}

func TestGracefulStop(t *testing.T) {
	t.Run("Finishes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newQueue(t)
			r := tasks.NewRunner(q, tasks.Options{Logger: discard(), Grace: time.Minute})
			started := make(chan struct{})
			var runs atomic.Int64
			r.Handle("k", func(ctx context.Context, task tasks.Task) error {
				if runs.Add(1) == 1 {
					close(started)
				}
				time.Sleep(30 * time.Second)
				return ctx.Err()
			}, tasks.KindOptions{})
			stop := start(t, r)
			first := enqueue(t, r, tasks.Task{Kind: "k"})
			second := enqueue(t, r, tasks.Task{Kind: "k"})
			waitFor(t, "run", started)
			t0 := time.Now()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if d := time.Since(t0); d != 30*time.Second {
				t.Fatalf("stopped after %v, want 30s", d)
			}
			if _, err := q.Get(t.Context(), first); !errors.Is(err, tasks.ErrNotFound) {
				t.Fatalf("running task not completed: %v", err)
			}
			if task := get(t, q, second); task.State != tasks.Pending || runs.Load() != 1 {
				t.Fatalf("a task was started during shutdown: %+v, %d runs", task, runs.Load())
			}
		})
	})
	t.Run("GraceExpires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newQueue(t)
			r := tasks.NewRunner(q, tasks.Options{Logger: discard(), Grace: 10 * time.Second})
			started := make(chan struct{})
			r.Handle("k", func(ctx context.Context, task tasks.Task) error {
				close(started)
				<-ctx.Done()
				return context.Cause(ctx)
			}, tasks.KindOptions{})
			stop := start(t, r)
			id := enqueue(t, r, tasks.Task{Kind: "k"})
			waitFor(t, "run", started)
			t0 := time.Now()
			if err := stop(); !errors.Is(err, tasks.ErrGraceExpired) {
				t.Fatalf("Run = %v, want ErrGraceExpired", err)
			}
			if d := time.Since(t0); d != 10*time.Second {
				t.Fatalf("stopped after %v, want 10s", d)
			}
			if task := get(t, q, id); task.State != tasks.Pending || task.Attempt != 1 || !strings.Contains(task.LastError, "shut down") {
				t.Fatalf("interrupted task: %+v", task)
			}
		})
	})
}

// TestWakeUp: a task enqueued through the queue itself (the Notifier hook)
// runs at once, not at the next poll; one enqueued by "another process"
// (a second queue value without notification) runs within MaxSleep.
func TestWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		r := tasks.NewRunner(q, tasks.Options{Logger: discard(), MaxSleep: 5 * time.Second})
		ran := make(chan time.Time, 10)
		r.Handle("k", func(ctx context.Context, task tasks.Task) error {
			ran <- time.Now()
			return nil
		}, tasks.KindOptions{})
		start(t, r)
		time.Sleep(2 * time.Second) // the dispatcher is asleep
		t0 := time.Now()
		if _, _, err := q.Enqueue(t.Context(), tasks.Task{Kind: "k"}); err != nil {
			t.Fatal(err)
		}
		if at := <-ran; !at.Equal(t0) {
			t.Fatalf("ran %v after the enqueue, want at once", at.Sub(t0))
		}
		// A delayed task runs at its time exactly.
		t1 := time.Now()
		if _, _, err := q.Enqueue(t.Context(), tasks.Task{Kind: "k", RunAt: t1.Add(2500 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		if at := <-ran; at.Sub(t1) != 2500*time.Millisecond {
			t.Fatalf("delayed task ran after %v, want 2.5s", at.Sub(t1))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		// The runner sees the queue without its Notifier: like a Redis
		// queue shared with other processes.
		r := tasks.NewRunner(struct{ tasks.Queue }{q}, tasks.Options{Logger: discard(), MaxSleep: 5 * time.Second})
		ran := make(chan time.Time, 10)
		r.Handle("k", func(ctx context.Context, task tasks.Task) error {
			ran <- time.Now()
			return nil
		}, tasks.KindOptions{})
		start(t, r)
		time.Sleep(2 * time.Second)
		t0 := time.Now()
		if _, _, err := q.Enqueue(t.Context(), tasks.Task{Kind: "k"}); err != nil {
			t.Fatal(err)
		}
		if d := (<-ran).Sub(t0); d != 3*time.Second {
			t.Fatalf("ran %v after the enqueue, want 3s (the next poll)", d)
		}
		// Through the Runner it is at once.
		t1 := time.Now()
		enqueue(t, r, tasks.Task{Kind: "k"})
		if at := <-ran; !at.Equal(t1) {
			t.Fatalf("ran %v after Runner.Enqueue, want at once", at.Sub(t1))
		}
	})
}
