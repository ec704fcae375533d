package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubbub/hubbub/internal/backoff"
)

// Handler runs one task. It returns nil on success (the task is completed),
// an error wrapped by RetryAfter or Permanent to choose what happens next,
// or any other error to be retried with backoff. ctx is canceled when the
// task's lease is lost (cause ErrLeaseLost) or when the Runner's grace
// period after shutdown ends (cause ErrShutdown); a handler should then
// return promptly. The task's Payload must not be retained after return.
type Handler func(ctx context.Context, t Task) error

// Errors reported as the cause of a handler's canceled context, and by Run.
var (
	ErrLeaseLost    = errors.New("tasks: lease lost")
	ErrShutdown     = errors.New("tasks: runner shut down")
	ErrGraceExpired = errors.New("tasks: grace period expired with handlers running")
)

// Defaults for KindOptions and Options fields left zero.
const (
	DefaultConcurrency = 1
	DefaultLease       = time.Minute
	DefaultMaxAttempts = 20
	DefaultBackoffBase = backoff.DefaultBase
	DefaultBackoffMax  = backoff.DefaultMax
	DefaultGrace       = 30 * time.Second
	DefaultMaxSleep    = time.Second
)

// opTimeout bounds each queue call made on behalf of a finished handler.
const opTimeout = 30 * time.Second

// Backoff is the shared retry schedule (internal/backoff): after the
// failure of attempt a (0 for the first run) the next run waits a duration
// drawn by Options.Jitter from [0, min(Max, Base*2^a)]; zero fields take
// backoff.DefaultBase and backoff.DefaultMax.
type Backoff = backoff.Policy

// KindOptions configure how the tasks of one kind run.
type KindOptions struct {
	// Concurrency is the most handlers of this kind running at once
	// (DefaultConcurrency when zero).
	Concurrency int
	// Lease is how long a claimed task is reserved; the Runner extends it
	// every Lease/2 while the handler runs (DefaultLease when zero).
	Lease time.Duration
	// MaxAttempts is how many runs may fail (errors, RetryAfter, lost
	// leases) before the task goes to the dead-letter list:
	// DefaultMaxAttempts when zero, unlimited when negative.
	MaxAttempts int
	// Backoff spaces retries after ordinary errors.
	Backoff Backoff
}

// Options configure a Runner.
type Options struct {
	// Now is the clock used to compute run times (time.Now when nil). It
	// should be the queue's clock; waits use real timers.
	Now func() time.Time
	// Logger receives handler failures and queue errors (slog.Default
	// when nil).
	Logger *slog.Logger
	// Grace is how long Run waits for running handlers once its context
	// is done, before canceling theirs (DefaultGrace when zero).
	Grace time.Duration
	// MaxSleep caps how long a kind's dispatcher sleeps without looking at
	// the queue, so tasks enqueued by other processes are picked up
	// (DefaultMaxSleep when zero).
	MaxSleep time.Duration
	// Lease is the lease of kinds whose KindOptions leave it zero
	// (DefaultLease when zero). With a queue shared by several nodes it is
	// how long a dead node's running tasks wait before another node takes
	// them over; a live node renews it every Lease/2.
	Lease time.Duration
	// Jitter picks the delay before a retry given its ceiling (uniform in
	// [0, ceiling] when nil: full jitter). Tests make it deterministic.
	Jitter func(ceiling time.Duration) time.Duration
}

// Runner runs handlers for the tasks of a Queue: for each kind registered
// with Handle, one dispatcher goroutine claims due tasks while fewer than
// Concurrency handlers of that kind run, and one goroutine per claimed task
// runs its handler (no goroutine per pending task). It wakes at once when a
// task is enqueued through Runner.Enqueue, Notify, or a queue implementing
// Notifier, and otherwise sleeps until the kind's next due time, at most
// Options.MaxSleep.
type Runner struct {
	q   Queue
	o   Options
	log *slog.Logger

	mu      sync.RWMutex
	kinds   map[string]*kindRunner
	started bool
}

type kindRunner struct {
	name     string
	h        Handler
	o        KindOptions
	inflight atomic.Int64
	wake     chan struct{} // 1-buffered: something may be due
	freed    chan struct{} // 1-buffered: a handler returned
}

// NewRunner returns a Runner for q. q stays owned by the caller, who closes
// it after Run has returned.
func NewRunner(q Queue, o Options) *Runner {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.MaxSleep <= 0 {
		o.MaxSleep = DefaultMaxSleep
	}
	if o.Jitter == nil {
		o.Jitter = backoff.Full
	}
	return &Runner{q: q, o: o, log: o.Logger, kinds: make(map[string]*kindRunner)}
}

// Handle registers the handler of kind. It must be called before Run, once
// per kind; it panics otherwise (a programming error, as with
// http.ServeMux).
func (r *Runner) Handle(kind string, h Handler, o KindOptions) {
	if kind == "" || h == nil {
		panic("tasks: Handle needs a kind and a handler")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Lease <= 0 {
		o.Lease = r.o.Lease
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		panic("tasks: Handle called after Run")
	}
	if _, dup := r.kinds[kind]; dup {
		panic("tasks: kind " + kind + " registered twice")
	}
	r.kinds[kind] = &kindRunner{
		name:  kind,
		h:     h,
		o:     o,
		wake:  make(chan struct{}, 1),
		freed: make(chan struct{}, 1),
	}
}

// Enqueue enqueues t in the queue (see Queue.Enqueue) and wakes the
// dispatcher of its kind.
func (r *Runner) Enqueue(ctx context.Context, t Task) (id string, added bool, err error) {
	id, added, err = r.q.Enqueue(ctx, t)
	if err == nil {
		r.Notify(t.Kind)
	}
	return id, added, err
}

// Notify wakes the dispatcher of kind, if any, to look for due tasks now.
// It never blocks.
func (r *Runner) Notify(kind string) {
	r.mu.RLock()
	k := r.kinds[kind]
	r.mu.RUnlock()
	if k != nil {
		signal(k.wake)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run runs handlers until ctx is done, then stops claiming, waits up to
// Options.Grace for the handlers running, cancels the contexts of those
// still running (cause ErrShutdown) and waits for them to return. It
// returns nil after a clean stop, an error wrapping ErrGraceExpired if
// handlers had to be canceled. Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("tasks: Run called twice")
	}
	r.started = true
	kinds := make([]*kindRunner, 0, len(r.kinds))
	for _, k := range r.kinds {
		kinds = append(kinds, k)
	}
	r.mu.Unlock()
	if n, ok := r.q.(Notifier); ok {
		defer n.OnReady(r.Notify)()
	}
	hctx, hcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hcancel(nil)
	var dispatchers, handlers sync.WaitGroup
	for _, k := range kinds {
		dispatchers.Go(func() { r.dispatch(ctx, hctx, k, &handlers) })
	}
	<-ctx.Done()
	dispatchers.Wait() // no handler starts after this
	done := make(chan struct{})
	go func() {
		handlers.Wait()
		close(done)
	}()
	grace := time.NewTimer(r.o.Grace)
	defer grace.Stop()
	select {
	case <-done:
		return nil
	case <-grace.C:
	}
	hcancel(ErrShutdown)
	<-done
	return fmt.Errorf("tasks: handlers canceled after %v: %w", r.o.Grace, ErrGraceExpired)
}

// dispatch claims and starts the tasks of k until ctx is done.
func (r *Runner) dispatch(ctx, hctx context.Context, k *kindRunner, handlers *sync.WaitGroup) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		free := k.o.Concurrency - int(k.inflight.Load())
		if free <= 0 {
			select {
			case <-k.freed:
			case <-ctx.Done():
			}
			continue
		}
		ts, err := r.q.Claim(ctx, k.name, free, k.o.Lease)
		if err != nil && ctx.Err() == nil {
			r.log.Error("tasks: claim failed", "kind", k.name, "err", err)
		}
		for _, t := range ts {
			k.inflight.Add(1)
			handlers.Add(1)
			go r.run(hctx, k, t, handlers)
		}
		if err == nil && len(ts) == free {
			continue // there may be more due
		}
		d := r.o.MaxSleep
		if err == nil {
			next, ok, nerr := r.q.NextDue(ctx, k.name)
			if nerr != nil && ctx.Err() == nil {
				r.log.Error("tasks: next due failed", "kind", k.name, "err", nerr)
			}
			if ok {
				// A time already past means a task arrived since Claim;
				// look again shortly rather than spin if clocks disagree.
				d = max(min(d, next.Sub(r.o.Now())), time.Millisecond)
			}
		}
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-k.wake:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
		}
	}
}

// run runs one claimed task and records its outcome.
func (r *Runner) run(hctx context.Context, k *kindRunner, t Task, handlers *sync.WaitGroup) {
	defer func() {
		k.inflight.Add(-1)
		signal(k.freed)
		signal(k.wake) // a task waiting for this one's key may run now
		handlers.Done()
	}()
	log := r.log.With("kind", t.Kind, "id", t.ID, "attempt", t.Attempt)
	if k.o.MaxAttempts > 0 && t.Attempt >= k.o.MaxAttempts {
		// Its earlier runs died with their leases (a crash loop, say).
		r.finishOp(log, "dead", func(ctx context.Context) error {
			return r.q.Dead(ctx, t.ID, fmt.Sprintf("%d attempts failed; last: %s", t.Attempt, t.LastError))
		})
		return
	}
	ctx, cancel := context.WithCancelCause(hctx)
	defer cancel(nil)
	stop := r.keepLease(ctx, cancel, k, t.ID, log)
	err := call(ctx, k.h, t)
	lost := stop()
	if lost {
		log.Warn("tasks: lease lost while the handler ran; outcome dropped", "err", err)
		return
	}
	r.finish(log, k, t, err)
}

// call runs h, turning a panic into an error.
func call(ctx context.Context, h Handler, t Task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tasks: handler panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h(ctx, t)
}

// keepLease extends the lease of id every Lease/2 until the returned stop
// is called; stop reports whether the lease was lost, in which case ctx
// was canceled with ErrLeaseLost.
func (r *Runner) keepLease(ctx context.Context, cancel context.CancelCauseFunc, k *kindRunner, id string, log *slog.Logger) (stop func() bool) {
	quit := make(chan struct{})
	var lost atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(k.o.Lease / 2)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), k.o.Lease/2)
			err := r.q.Extend(octx, id, k.o.Lease)
			ocancel()
			if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNotFound) {
				lost.Store(true)
				cancel(ErrLeaseLost)
				return
			}
			if err != nil {
				log.Error("tasks: extend lease failed", "err", err)
			}
		}
	})
	return func() bool {
		close(quit)
		wg.Wait()
		return lost.Load()
	}
}

// finish completes, retries or buries t after its handler returned err.
func (r *Runner) finish(log *slog.Logger, k *kindRunner, t Task, err error) {
	if err == nil {
		r.finishOp(log, "complete", func(ctx context.Context) error { return r.q.Complete(ctx, t.ID) })
		return
	}
	msg := err.Error()
	if IsPermanent(err) {
		log.Warn("tasks: permanent failure", "err", err)
		r.finishOp(log, "dead", func(ctx context.Context) error { return r.q.Dead(ctx, t.ID, msg) })
		return
	}
	if k.o.MaxAttempts > 0 && t.Attempt+1 >= k.o.MaxAttempts {
		log.Warn("tasks: attempts exhausted", "err", err)
		reason := fmt.Sprintf("%d attempts failed; last: %s", t.Attempt+1, msg)
		r.finishOp(log, "dead", func(ctx context.Context) error { return r.q.Dead(ctx, t.ID, reason) })
		return
	}
	d, ok := RetryDelay(err)
	if !ok {
		d = r.o.Jitter(k.o.Backoff.Ceiling(t.Attempt))
	}
	log.Info("tasks: will retry", "err", err, "after", d)
	at := r.o.Now().Add(d)
	r.finishOp(log, "retry", func(ctx context.Context) error { return r.q.Retry(ctx, t.ID, at, msg) })
}

func (r *Runner) finishOp(log *slog.Logger, what string, op func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := op(ctx); err != nil {
		log.Error("tasks: "+what+" failed", "err", err)
	}
}
