package backoff_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/backoff"
)

func TestCeiling(t *testing.T) {
	const maxDur = time.Duration(1<<63 - 1)
	for _, c := range []struct {
		name    string
		p       backoff.Policy
		attempt int
		want    time.Duration
	}{
		{"first", backoff.Policy{Base: 5 * time.Second, Max: time.Hour}, 0, 5 * time.Second},
		{"doubles", backoff.Policy{Base: 5 * time.Second, Max: time.Hour}, 3, 40 * time.Second},
		{"capped", backoff.Policy{Base: 5 * time.Second, Max: time.Hour}, 10, time.Hour},
		{"huge attempt", backoff.Policy{Base: 5 * time.Second, Max: time.Hour}, 1 << 30, time.Hour},
		{"negative attempt", backoff.Policy{Base: time.Second, Max: time.Minute}, -3, time.Second},
		{"zero policy", backoff.Policy{}, 0, backoff.DefaultBase},
		{"zero policy capped", backoff.Policy{}, 100, backoff.DefaultMax},
		{"max below base", backoff.Policy{Base: time.Minute, Max: time.Second}, 4, time.Minute},
		{"no overflow", backoff.Policy{Max: maxDur}, 100, maxDur},
		{"max not a power", backoff.Policy{Base: 100 * time.Millisecond, Max: 250 * time.Millisecond}, 2, 250 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Ceiling(c.attempt); got != c.want {
				t.Fatalf("Ceiling(%d) = %v, want %v", c.attempt, got, c.want)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	p := backoff.Policy{Base: 5 * time.Second, Max: time.Hour}
	top := func(c time.Duration) time.Duration { return c }
	for _, c := range []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		jitter     func(time.Duration) time.Duration
		want       time.Duration
	}{
		{"backoff", 2, 0, top, 20 * time.Second},
		{"retry-after replaces it", 2, 7 * time.Second, top, 7 * time.Second},
		{"retry-after capped at max", 0, 48 * time.Hour, top, time.Hour},
		{"jitter capped at max", 20, 0, func(c time.Duration) time.Duration { return 2 * c }, time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := p.Delay(c.attempt, c.retryAfter, c.jitter); got != c.want {
				t.Fatalf("Delay = %v, want %v", got, c.want)
			}
		})
	}
}

func TestJitterBounds(t *testing.T) {
	for _, c := range []time.Duration{0, 1, 2, 3, time.Second, time.Hour} {
		for range 200 {
			if d := backoff.Full(c); d < 0 || d > c {
				t.Fatalf("Full(%v) = %v, outside [0, %v]", c, d, c)
			}
			if d := backoff.Equal(c); d < c/2 || d > c {
				t.Fatalf("Equal(%v) = %v, outside [%v, %v]", c, d, c/2, c)
			}
		}
	}
	// nil jitter is Equal.
	p := backoff.Policy{Base: time.Minute, Max: time.Hour}
	for range 200 {
		if d := p.Delay(0, 0, nil); d < 30*time.Second || d > time.Minute {
			t.Fatalf("Delay with nil jitter = %v, outside [30s, 1m]", d)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999999999", (1 << 30) * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := backoff.ParseRetryAfter(c.in, now); got != c.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "9223372036854775807"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := backoff.ParseRetryAfter(v, now); d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, negative", v, d)
		}
	})
}
