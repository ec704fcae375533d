package taskstest

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/tasks"
)

// testConcurrent enqueues from many goroutines while others claim and
// complete: every task runs exactly once, never twice at the same time.
func (s *suite) testConcurrent(t *testing.T) {
	e := s.env(t)
	const producers, perProducer, consumers = 8, 200, 8
	total := producers * perProducer
	var (
		mu       sync.Mutex
		enqueued = make(map[string]string) // id -> payload
		running  = make(map[string]bool)
		runs     = make(map[string]int)
		done     atomic.Int64
		failed   atomic.Bool
	)
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	var wg, pwg sync.WaitGroup
	avail, produced := make(chan struct{}, 1), make(chan struct{})
	for p := range producers {
		pwg.Go(func() {
			for i := range perProducer {
				payload := fmt.Sprintf("%d/%d", p, i)
				id, added, err := e.q.Enqueue(e.ctx, tasks.Task{Kind: "c", Payload: []byte(payload)})
				if err != nil || !added {
					fail("Enqueue: %v, added %v", err, added)
					return
				}
				mu.Lock()
				if _, dup := enqueued[id]; dup {
					fail("id %s returned twice", id)
				}
				enqueued[id] = payload
				mu.Unlock()
				signal(avail)
			}
		})
	}
	go func() { pwg.Wait(); close(produced) }()
	for range consumers {
		wg.Go(func() {
			for done.Load() < int64(total) && !failed.Load() && e.ctx.Err() == nil {
				ts, err := e.q.Claim(e.ctx, "c", 5, time.Hour)
				if err != nil {
					fail("Claim: %v", err)
					return
				}
				if len(ts) == 0 {
					idle(avail, produced)
					continue
				}
				mu.Lock()
				for _, tk := range ts {
					if running[tk.ID] {
						fail("task %s claimed while running", tk.ID)
					}
					running[tk.ID] = true
					runs[tk.ID]++
				}
				mu.Unlock()
				for _, tk := range ts {
					mu.Lock()
					delete(running, tk.ID)
					mu.Unlock()
					if err := e.q.Complete(e.ctx, tk.ID); err != nil {
						fail("Complete: %v", err)
						return
					}
					done.Add(1)
				}
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := e.ctx.Err(); err != nil {
		t.Fatalf("timed out with %d of %d done", done.Load(), total)
	}
	if len(enqueued) != total || len(runs) != total {
		t.Fatalf("enqueued %d, ran %d distinct, want %d", len(enqueued), len(runs), total)
	}
	for id, n := range runs {
		if n != 1 {
			t.Fatalf("task %s ran %d times", id, n)
		}
		if _, ok := enqueued[id]; !ok {
			t.Fatalf("ran unknown task %s", id)
		}
	}
	e.stats("c", tasks.Counts{})
}

// testConcurrentDedup enqueues one key from many goroutines while a
// consumer claims: each run is followed by at most one pending task, and
// the last Enqueue is always followed by a run.
func (s *suite) testConcurrentDedup(t *testing.T) {
	e := s.env(t)
	const producers, perProducer = 8, 100
	var wg sync.WaitGroup
	var added atomic.Int64
	avail := make(chan struct{}, 1)
	for range producers {
		wg.Go(func() {
			for range perProducer {
				_, a, err := e.q.Enqueue(e.ctx, tasks.Task{Kind: "d", Key: "sub"})
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				if a {
					added.Add(1)
					signal(avail)
				}
			}
		})
	}
	stop := make(chan struct{})
	runs := 0
	var cwg sync.WaitGroup
	cwg.Go(func() {
		for {
			ts, err := e.q.Claim(e.ctx, "d", 10, time.Hour)
			if err != nil {
				t.Errorf("Claim: %v", err)
				return
			}
			if len(ts) > 1 {
				t.Errorf("Claim returned %d tasks of one key", len(ts))
			}
			for _, tk := range ts {
				runs++
				if err := e.q.Complete(e.ctx, tk.ID); err != nil {
					t.Errorf("Complete: %v", err)
				}
			}
			if len(ts) == 0 {
				select {
				case <-stop:
					return
				case <-avail:
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	cwg.Wait()
	// Whatever is left is at most one pending task.
	st, err := e.q.Stats(e.ctx)
	e.ok("Stats", err)
	if c := st["d"]; c.Running != 0 || c.Pending > 1 {
		t.Fatalf("after the burst: %+v", c)
	}
	if int64(runs+st["d"].Pending) != added.Load() {
		t.Fatalf("%d added, %d ran, %d pending", added.Load(), runs, st["d"].Pending)
	}
	if added.Load() > int64(producers*perProducer) || added.Load() < 1 {
		t.Fatalf("added %d", added.Load())
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// idle waits until a producer signals new work or all producers are done
// (then the remaining tasks are drained without waiting).
func idle(avail, produced <-chan struct{}) {
	select {
	case <-avail:
	case <-produced:
		runtime.Gosched()
	}
}
