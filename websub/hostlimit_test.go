package websub

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestHostLimiterFixed(t *testing.T) {
	l := newHostLimiter(2)
	r1, ok1 := l.try("a")
	r2, ok2 := l.try("a")
	if !ok1 || !ok2 {
		t.Fatal("two slots of two not given")
	}
	if _, ok := l.try("a"); ok {
		t.Fatal("a third slot given")
	}
	if r, ok := l.try("b"); !ok {
		t.Fatal("another host shares the first one's limit")
	} else {
		r()
	}
	// A waiter gets the next free slot, before any try.
	got := make(chan func(), 1)
	go func() {
		r, err := l.acquire(context.Background(), "a")
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		waiting := len(l.hosts["a"].waiters)
		l.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("acquire did not wait")
		}
		time.Sleep(time.Millisecond) // polling the limiter's state, not synchronising
	}
	r1()
	if _, ok := l.try("a"); ok {
		t.Fatal("try took the slot a waiter was owed")
	}
	r3 := <-got
	r1() // a second call of a release does nothing
	if _, ok := l.try("a"); ok {
		t.Fatal("a repeated release freed a slot twice")
	}
	r2()
	r3()
	if len(l.hosts) != 0 {
		t.Fatalf("hosts kept with nothing in flight and nothing learned: %v", l.hosts)
	}
	// A waiter whose context ends gives up and leaves no slot taken.
	r1, _ = l.try("a")
	r2, _ = l.try("a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.acquire(ctx, "a"); err == nil {
		t.Fatal("acquire with an ended context succeeded on a full host")
	}
	r1()
	r2()
	if len(l.hosts) != 0 {
		t.Fatalf("a given-up waiter left state behind: %+v", l.hosts["a"])
	}
}

func TestHostLimiterAdapts(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newAdaptiveLimiter(4, 16)
	l.now = func() time.Time { return now }
	for range 200 {
		l.observe("fast", 5*time.Millisecond, false)
	}
	if got := l.limit("fast"); got != 16 {
		t.Fatalf("a host answering in 5ms reached a limit of %d, want the most, 16", got)
	}
	for range 50 {
		l.observe("steady", 500*time.Millisecond, false)
	}
	if got := l.limit("steady"); got != 4 {
		t.Fatalf("a host answering in 500ms moved to %d, want 4", got)
	}
	for _, c := range []struct {
		name   string
		rtt    time.Duration
		failed bool
		later  time.Duration
		want   int
	}{
		{"a failure cuts by a quarter", 5 * time.Millisecond, true, 0, 12},
		{"a second one at once does not", 5 * time.Millisecond, true, 0, 12},
		{"a slow answer a second later does", 2 * time.Second, false, time.Second, 9},
		{"and again", 0, true, time.Second, 6},
		{"and again", 0, true, time.Second, 5},
		{"and again", 0, true, time.Second, 3},
		{"and again", 0, true, time.Second, 2},
		{"and again", 0, true, time.Second, 2},
		{"and again", 0, true, time.Second, 1},
		{"and again", 0, true, time.Second, 1},
		{"never below one", 0, true, time.Second, 1},
	} {
		now = now.Add(c.later)
		l.observe("fast", c.rtt, c.failed)
		if got := l.limit("fast"); got != c.want {
			t.Fatalf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
	// A limit of one still lets one request through; a grown limit lets
	// as many as it says.
	if r, ok := l.try("fast"); !ok {
		t.Fatal("a host cut to 1 got no slot")
	} else if _, ok := l.try("fast"); ok {
		t.Fatal("a host cut to 1 got two slots")
	} else {
		r()
	}
}

func TestHostLimiterForgets(t *testing.T) {
	l := newAdaptiveLimiter(2, 8)
	for i := range maxHosts + 100 {
		l.observe("h"+strconv.Itoa(i), time.Millisecond, true)
	}
	if n := len(l.hosts); n > maxHosts {
		t.Fatalf("%d hosts remembered, want at most %d", n, maxHosts)
	}
}
