package follow

import (
	"strconv"
	"strings"
	"time"
)

// Schedule is the polling schedule of followed feeds: the interval
// between fetches adapts to how often a feed changes, within Min and Max.
type Schedule struct {
	Min, Max time.Duration
}

// Outcome is what one fetch found, as far as the schedule cares.
type Outcome struct {
	Changed    bool          // new or changed entries were published
	Failed     bool          // the fetch failed (network, 4xx, 5xx, not a feed)
	MaxAge     time.Duration // the answer's Cache-Control max-age (0: none)
	RetryAfter time.Duration // the answer's Retry-After (0: none)
	Pushed     bool          // the feed's hub pushes its updates: polling is a safety net
}

// RetryAfterCap bounds how far a Retry-After may push the next fetch.
const RetryAfterCap = 24 * time.Hour

// Next returns the interval until the fetch after one that had outcome o,
// prev being the interval before it (0 for a feed's first fetch):
//
//   - a pushed feed is polled every Max, as a safety net;
//   - a change halves the interval, no change makes it 1.5 times longer,
//     a failure doubles it; the first interval is Min;
//   - the result is kept within [Min, Max];
//   - then a Cache-Control max-age longer than it raises it (up to Max),
//     and a Retry-After longer than it raises it (up to RetryAfterCap,
//     beyond Max: the server asked).
func (s Schedule) Next(prev time.Duration, o Outcome) time.Duration {
	var d time.Duration
	switch {
	case o.Pushed:
		d = s.Max
	case prev <= 0:
		d = s.Min
	case o.Failed:
		d = prev * 2
	case o.Changed:
		d = prev / 2
	default:
		d = prev + prev/2
	}
	d = min(max(d, s.Min), s.Max)
	if o.MaxAge > d {
		d = min(o.MaxAge, s.Max)
	}
	if o.RetryAfter > d {
		d = min(o.RetryAfter, RetryAfterCap)
	}
	return max(d, s.Min)
}

// maxMaxAge bounds the max-age ParseMaxAge returns.
const maxMaxAge = 365 * 24 * time.Hour

// ParseMaxAge reads the max-age of a Cache-Control header value (the
// shared s-maxage is not for us; no-cache and no-store mean 0). It returns
// 0 when there is none or it is malformed; at most a year.
func ParseMaxAge(v string) time.Duration {
	var age time.Duration
	for _, part := range strings.Split(v, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-cache", "no-store":
			return 0
		case "max-age":
			val = strings.Trim(strings.TrimSpace(val), `"`)
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n <= 0 {
				continue
			}
			if n > int64(maxMaxAge/time.Second) {
				n = int64(maxMaxAge / time.Second)
			}
			age = time.Duration(n) * time.Second
		}
	}
	return age
}
