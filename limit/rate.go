package limit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// buckets holds one token bucket per rate key, at most max of them.
type buckets struct {
	limit rate.Limit
	burst int
	max   int
	// idle is how long a bucket takes to fill from empty: one unused for
	// that long is the same as a new one and can be dropped.
	idle time.Duration

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last take
}

func newBuckets(perSecond float64, burst, max int) *buckets {
	return &buckets{
		limit: rate.Limit(perSecond), burst: burst, max: max,
		idle: time.Duration(float64(burst) / perSecond * float64(time.Second)),
		m:    make(map[string]*bucket),
	}
}

// take takes one token of key's bucket at now, or none and the wait until
// one is there.
func (b *buckets) take(key string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= b.max {
			b.evict(now)
		}
		bk = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.m[key] = bk
	}
	bk.last = now
	res := bk.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// evict drops every idle bucket and, if that leaves the map still over
// seven eighths full, arbitrary ones down to that, so that the O(n) sweep
// runs at most once per max/8 new keys.
func (b *buckets) evict(now time.Time) {
	for k, bk := range b.m {
		if now.Sub(bk.last) >= b.idle {
			delete(b.m, k)
		}
	}
	for k := range b.m {
		if len(b.m) <= b.max*7/8 {
			break
		}
		delete(b.m, k)
	}
}

// tracked returns how many buckets are kept.
func (b *buckets) tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
