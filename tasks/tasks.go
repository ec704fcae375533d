// Package tasks is hubbub's durable task system: a task has a kind, an
// optional de-duplication key, a payload and a time to run. Inserting a task
// whose (kind, key) is already pending does nothing, so a burst of events for
// one subscription makes one delivery task that then finds them all. Tasks
// survive restarts, are leased to one worker at a time, retry with
// exponential backoff and jitter up to a limit, and end in a dead-letter
// list when they cannot succeed.
//
// The package has two halves. Queue is the storage contract, implemented by
// tasks/embedded (Pebble, one node) and later by a Redis backend; every
// backend passes the conformance suite in tasks/taskstest. Runner executes
// handlers for the tasks of each kind with bounded concurrency, lease
// renewal, retries and dead-lettering.
//
// # Life of a task
//
//	Enqueue --> PENDING --Claim--> RUNNING --Complete--> (gone)
//	              ^                  |  |
//	              +--Retry / lease---+  +--Dead--> DEAD (listed, counted)
//	                 expiry
//
// A pending task becomes due at its RunAt. Claim hands due tasks to a worker
// under a lease; a running task is never handed to a second worker while its
// lease lasts. If the lease ends without Complete, Retry or Dead (the worker
// died), the task becomes pending again with Attempt+1.
//
// # De-duplication
//
// At most one task is pending per (Kind, Key) when Key is not empty. Enqueue
// of a (Kind, Key) that is pending adds nothing and returns the pending
// task's id; if the new RunAt is earlier, the pending task is moved to it
// (never later), and the pending task keeps its own payload. A task that is
// running does not hold its key: an Enqueue meanwhile adds a new pending task,
// so work that arrives during a run gets a follow-up run. That follow-up is
// not claimed before the run ends (Complete, Retry, Dead or the end of its
// lease): runs of one (Kind, Key) never overlap, so a delivery for one
// subscription runs on one worker at a time. When a running task
// becomes pending again (Retry, lease expiry) while another task with its key
// is pending, the two merge into one: the pending task survives with the
// earlier of the two RunAts, the higher Attempt and the new LastError; the
// retried task's id disappears.
package tasks

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// State is where a task is in its life.
type State uint8

// The states of a task.
const (
	Pending State = iota + 1 // waiting for its RunAt, or due and not claimed
	Running                  // claimed by a worker, under a lease
	Dead                     // in the dead-letter list
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// Task is one unit of work.
type Task struct {
	// ID is unique, assigned by Enqueue (ignored there), time-ordered.
	ID string
	// Kind selects the handler ("deliver", "verify", "fetch"). Required.
	Kind string
	// Key de-duplicates pending tasks of the same kind; empty means none.
	Key string
	// Payload is opaque to the queue.
	Payload []byte
	// RunAt is when the task becomes due; the zero time means now.
	RunAt time.Time
	// Attempt counts the runs that ended without success (Retry, lease
	// expiry): 0 on the first run. Ignored by Enqueue.
	Attempt int
	// LastError is the error of the last failed run, or the dead-letter
	// reason. Ignored by Enqueue.
	LastError string

	// The fields below are reported by the queue and ignored by Enqueue.

	// State is the task's state when it was read.
	State State
	// LeaseUntil is the end of the current lease of a running task.
	LeaseUntil time.Time
	// DeadAt is when a dead task was moved to the dead-letter list.
	DeadAt time.Time
}

// Counts are the number of tasks of one kind in each state.
type Counts struct {
	Pending int // including those not yet due
	Running int // leased, including leases that ended but were not yet reclaimed
	Dead    int
}

// Errors returned by queues. Backends wrap them; test with errors.Is.
var (
	ErrNotFound   = errors.New("tasks: no such task")
	ErrNotRunning = errors.New("tasks: task is not running (lease lost, or never claimed)")
	ErrClosed     = errors.New("tasks: queue closed")
	ErrInvalid    = errors.New("tasks: invalid argument")
)

// Queue stores tasks. Every method is safe for concurrent use, and every
// mutation is atomic (it happens entirely or not at all) and durable when it
// returns without error: a backend may block for a disk or network sync.
// Methods check ctx before starting; a backend may finish a mutation it has
// started even if ctx is canceled meanwhile.
//
// Leases are identified by task id alone: a worker that lets its lease run
// out (stalled past it without Extend) may, after another worker claimed the
// task again, still Complete, Retry or Dead it. The Runner extends leases at
// half their length and stops acting on a task once Extend reports
// ErrNotRunning.
type Queue interface {
	// Enqueue adds t unless a task with the same Kind and a non-empty Key
	// is pending (see the package doc on de-duplication). It returns the id
	// of the task added (added is true) or of the pending task that absorbed
	// it (added is false).
	Enqueue(ctx context.Context, t Task) (id string, added bool, err error)

	// Claim leases up to n due tasks (RunAt <= now) of kind, oldest RunAt
	// first (ties in id order), until now+lease, skipping tasks whose Key a
	// running task holds. The tasks returned are Running; their
	// de-duplication keys are free again for Enqueue. Leases of kind that
	// have ended are released first (Attempt+1), so their tasks can be
	// claimed in the same call. It returns an empty slice when none is due.
	Claim(ctx context.Context, kind string, n int, lease time.Duration) ([]Task, error)

	// Complete removes a running task. ErrNotRunning if it is not running.
	Complete(ctx context.Context, id string) error

	// Retry makes a running task pending again at runAt with Attempt+1 and
	// LastError errMsg, possibly merging it into a pending task with the
	// same key (see the package doc). ErrNotRunning if it is not running.
	Retry(ctx context.Context, id string, runAt time.Time, errMsg string) error

	// Extend renews the lease of a running task until now+lease.
	// ErrNotRunning if its lease ended and it was released meanwhile.
	Extend(ctx context.Context, id string, lease time.Duration) error

	// Dead moves a running or pending task to the dead-letter list with
	// reason as its LastError, freeing its key.
	Dead(ctx context.Context, id string, reason string) error

	// Get returns a task in any state (dead ones included). ErrNotFound if
	// it does not exist (completed, merged, or never enqueued).
	Get(ctx context.Context, id string) (Task, error)

	// ListDead returns up to limit dead tasks of kind with an id greater
	// than after ("" for the first page), in id (creation) order.
	ListDead(ctx context.Context, kind string, after string, limit int) ([]Task, error)

	// NextDue reports when the next task of kind can be claimed: the
	// earliest RunAt of its pending tasks not waiting for a run of their
	// key, or end of a lease of its running ones. ok is false when the kind
	// has no pending or running task. The time may be in the past.
	NextDue(ctx context.Context, kind string) (t time.Time, ok bool, err error)

	// Stats counts the tasks of every kind that has any.
	Stats(ctx context.Context) (map[string]Counts, error)

	// Close releases the queue; whoever opened it closes it, after every
	// Runner using it has returned from Run. Later calls fail with
	// ErrClosed.
	Close() error
}

// Notifier is implemented by queues that can tell in-process listeners that
// a task of a kind may have become claimable through them (enqueued, moved
// earlier, retried, released, or its key freed by the end of a run). The
// Runner uses it to wake at once instead of waiting for its next poll.
type Notifier interface {
	// OnReady registers fn, called with the task's kind after each such
	// change is durable. fn must not block. The returned func unregisters.
	OnReady(fn func(kind string)) (cancel func())
}

// IDGen makes task ids: 8 bytes of big-endian unix nanoseconds followed by
// 4 random bytes, in hex (24 characters), so ids sort by creation time.
// Within one IDGen the time part strictly increases, even if the clock does
// not. The zero value is ready; it is safe for concurrent use.
type IDGen struct {
	mu   sync.Mutex
	last int64
}

// IDLen is the length of the ids made by IDGen.
const IDLen = 24

// Next returns a new id for a task created at now.
func (g *IDGen) Next(now time.Time) string {
	g.mu.Lock()
	ns := max(now.UnixNano(), g.last+1)
	g.last = ns
	g.mu.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ns))
	_, _ = rand.Read(b[8:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

// Observe makes later ids sort after id (a backend calls it at startup
// with the greatest id it holds).
func (g *IDGen) Observe(id string) {
	t, ok := IDTime(id)
	if !ok {
		return
	}
	g.mu.Lock()
	g.last = max(g.last, t.UnixNano())
	g.mu.Unlock()
}

// IDTime returns the creation time encoded in an id made by IDGen.
func IDTime(id string) (time.Time, bool) {
	if !ValidID(id) {
		return time.Time{}, false
	}
	var b [12]byte
	_, _ = hex.Decode(b[:], []byte(id))
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// ValidID reports whether id has the form IDGen makes (lower-case hex).
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
