// Package backoff is the one retry schedule of hubbub: exponential backoff
// with jitter between a base and a maximum, where a server's Retry-After
// replaces the computed delay. The task runner, WebSub verification,
// WebSub delivery and feed fetches all use it.
package backoff

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Defaults for Policy fields left zero.
const (
	DefaultBase = time.Second
	DefaultMax  = time.Hour
)

// Policy is exponential backoff: the delay after the failure of attempt a
// (0 for the first try) is at most Ceiling(a) = min(Max, Base*2^a). The
// zero Policy is usable (DefaultBase, DefaultMax). A Policy is a value
// and safe for concurrent use.
type Policy struct {
	Base time.Duration // DefaultBase when zero or negative
	Max  time.Duration // DefaultMax when zero or negative; below Base it is Base
}

// Ceiling returns min(Max, Base*2^attempt), the most the delay after the
// failure of that attempt (from 0) can be. It never overflows; a negative
// attempt counts as 0.
func (p Policy) Ceiling(attempt int) time.Duration {
	base, limit := p.Base, p.Max
	if base <= 0 {
		base = DefaultBase
	}
	if limit <= 0 {
		limit = DefaultMax
	}
	limit = max(limit, base)
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// Full draws the delay uniformly from [0, c] ("full jitter": retries of
// many failing clients spread the most).
func Full(c time.Duration) time.Duration {
	if c <= 0 {
		return 0
	}
	return rand.N(c + 1)
}

// Equal draws the delay uniformly from [c/2, c] ("equal jitter": never
// much sooner than the ceiling, so a failing peer gets a rest).
func Equal(c time.Duration) time.Duration {
	if c <= 0 {
		return 0
	}
	return c/2 + rand.N(c-c/2+1)
}

// Delay is the wait after the failure of attempt (from 0): retryAfter,
// when positive (a server's Retry-After), else jitter(Ceiling(attempt));
// either way at most the ceiling's limit, Max. jitter nil means Equal.
func (p Policy) Delay(attempt int, retryAfter time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	limit := p.Ceiling(1 << 30) // Max, after defaults
	if retryAfter > 0 {
		return min(retryAfter, limit)
	}
	if jitter == nil {
		jitter = Equal
	}
	return min(jitter(p.Ceiling(attempt)), limit)
}

// maxRetryAfter caps a delay-seconds Retry-After (about 34 years) so the
// conversion to a Duration cannot overflow.
const maxRetryAfter = 1 << 30

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date (relative to now). It returns 0 when v is empty, unreadable,
// not positive, or a date not after now. It never panics.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, maxRetryAfter)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
