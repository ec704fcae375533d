package websub

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Adaptive per-host limits: a host whose answers come back fast gets more
// requests in flight, one whose answers are slow or failing fewer.
const (
	// fastAnswer: an answer within it lets its host's limit grow, by one
	// per limit's worth of such answers (additive increase).
	fastAnswer = 100 * time.Millisecond
	// slowAnswer: an answer slower than it, an error, a 5xx or a 429 cuts
	// its host's limit by a quarter (multiplicative decrease), at most
	// once per cutEvery, so a burst of failures in flight together counts
	// once.
	slowAnswer = time.Second
	cutEvery   = time.Second
	// maxHosts bounds the hosts the limiter remembers; past it, hosts with
	// nothing in flight forget what was learned of them.
	maxHosts = 4096
)

// hostLimiter bounds the requests in flight per host. Each host's limit
// starts at base; when most > base it adapts between 1 and most to what
// observe reports (see fastAnswer and slowAnswer); when most == base it is
// fixed. Waiters (acquire) get slots oldest first, and try never takes a
// slot a waiter is owed. Safe for concurrent use.
type hostLimiter struct {
	base, most int
	now        func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState // hosts busy, or whose limit was learned
}

type hostState struct {
	limit    float64
	inFlight int
	waiters  []chan struct{} // acquire calls waiting, oldest first
	lastCut  time.Time
}

func newHostLimiter(n int) *hostLimiter { return newAdaptiveLimiter(n, n) }

func newAdaptiveLimiter(base, most int) *hostLimiter {
	return &hostLimiter{base: base, most: max(base, most), now: time.Now, hosts: make(map[string]*hostState)}
}

func (s *hostState) idle() bool { return s.inFlight == 0 && len(s.waiters) == 0 }
func (s *hostState) free() bool { return s.inFlight < max(1, int(s.limit)) }

// state returns host's state, creating it; l.mu is held.
func (l *hostLimiter) state(host string) *hostState {
	s := l.hosts[host]
	if s == nil {
		if len(l.hosts) >= maxHosts {
			for h, o := range l.hosts {
				if o.idle() {
					delete(l.hosts, h)
				}
			}
		}
		s = &hostState{limit: float64(l.base)}
		l.hosts[host] = s
	}
	return s
}

// tidy forgets host when nothing is in flight or waiting and nothing was
// learned of it; l.mu is held.
func (l *hostLimiter) tidy(host string, s *hostState) {
	if s.idle() && s.limit == float64(l.base) && l.hosts[host] == s {
		delete(l.hosts, host)
	}
}

// wake hands free slots to waiters, oldest first; l.mu is held.
func (s *hostState) wake() {
	for len(s.waiters) > 0 && s.free() {
		close(s.waiters[0])
		s.waiters = s.waiters[1:]
		s.inFlight++
	}
}

// try takes a slot for host if one is free at once; release must then be
// called once after.
func (l *hostLimiter) try(host string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(host)
	if !s.free() || len(s.waiters) > 0 {
		return nil, false
	}
	s.inFlight++
	return l.releaser(host, s), true
}

// acquire waits for a slot for host; release must be called once after.
func (l *hostLimiter) acquire(ctx context.Context, host string) (release func(), err error) {
	l.mu.Lock()
	s := l.state(host)
	if s.free() && len(s.waiters) == 0 {
		s.inFlight++
		l.mu.Unlock()
		return l.releaser(host, s), nil
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch: // the waker counted this request in flight
		return l.releaser(host, s), nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-ch: // handed a slot just as ctx ended: give it back
		l.releaseLocked(host, s)
	default:
		for i, w := range s.waiters {
			if w == ch {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				break
			}
		}
		l.tidy(host, s)
	}
	return nil, fmt.Errorf("websub: waiting for a connection slot to %s: %w", host, ctx.Err())
}

func (l *hostLimiter) releaser(host string, s *hostState) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.releaseLocked(host, s)
			l.mu.Unlock()
		})
	}
}

// releaseLocked ends one request in flight; l.mu is held.
func (l *hostLimiter) releaseLocked(host string, s *hostState) {
	s.inFlight--
	s.wake()
	l.tidy(host, s)
}

// observe tells the limiter how a request to host went: its answer took
// rtt, and failed says it did not come (an error or time-out) or was a
// 5xx or 429. It adapts the host's limit (see fastAnswer, slowAnswer).
func (l *hostLimiter) observe(host string, rtt time.Duration, failed bool) {
	if l.most == l.base {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(host)
	switch now := l.now(); {
	case failed || rtt > slowAnswer:
		if now.Sub(s.lastCut) >= cutEvery {
			s.limit, s.lastCut = max(1, s.limit*3/4), now
		}
	case rtt < fastAnswer:
		s.limit = min(float64(l.most), s.limit+1/s.limit)
	}
	s.wake()
	l.tidy(host, s)
}

// limit returns host's current limit.
func (l *hostLimiter) limit(host string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.hosts[host]; s != nil {
		return max(1, int(s.limit))
	}
	return l.base
}
