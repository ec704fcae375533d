// Package fakeclock is the settable clock the conformance suites (and the
// tests of their backends) pass as a backend's Now.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a fake clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock set to a fixed time with a sub-microsecond part, to
// catch backends that lose precision below what they promise.
func New() *Clock {
	return &Clock{now: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
