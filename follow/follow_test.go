package follow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/follow"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/fakeclock"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/tasks"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/websub/pebblerecords"
)

// fetches passes on each fetch's status.
type fetches chan string

func (f fetches) Fetched(status string) { f <- status }
func (f fetches) Entries(int)           {}

// next waits for the next fetch and returns its status.
func (f fetches) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch within 10 s")
		return ""
	}
}

type lateInterest struct {
	f atomic.Pointer[follow.Follower]
}

func (l *lateInterest) Listen(ctx context.Context, topics []string) (func(), error) {
	return l.f.Load().Listen(ctx, topics)
}

// newFollower runs a follower on a fake clock over a hub, a task runner
// and webhook records in a temporary directory.
func newFollower(t *testing.T, o follow.Options) (*follow.Follower, *hub.Hub, *fakeclock.Clock, fetches) {
	t.Helper()
	dir := t.TempDir()
	clock := fakeclock.New()
	quiet := slog.New(slog.DiscardHandler)
	b := broker.New()
	st, err := embedded.Open(filepath.Join(dir, "log"), store.Config{Now: clock.Now, OnCommit: b.Publish}, embedded.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	q, err := tembedded.Open(filepath.Join(dir, "tasks"), tembedded.WithLogger(quiet), tembedded.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := pebblerecords.Open(filepath.Join(dir, "websub"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	runner := tasks.NewRunner(q, tasks.Options{Logger: quiet, Now: clock.Now, MaxSleep: 20 * time.Millisecond})
	li := &lateInterest{}
	h := hub.New(st, b, hub.Options{Interest: li, Entries: follow.Normalize, Now: clock.Now})
	obs := make(fetches, 64)
	o.Hub, o.Runner, o.State, o.Now, o.Logger, o.Observer = h, runner, recs, clock.Now, quiet, obs
	f, err := follow.New(o)
	if err != nil {
		t.Fatal(err)
	}
	li.f.Store(f)
	f.Register(runner)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = runner.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = recs.Close()
		_ = q.Close()
		_ = st.Close()
	})
	return f, h, clock, obs
}

// atomFeed serves an Atom feed of n entries with an ETag.
func atomFeed(t *testing.T, n int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		etag := fmt.Sprintf(`"%d"`, n)
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/atom+xml")
		var b strings.Builder
		b.WriteString(`<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>`)
		for i := n; i >= 1; i-- {
			fmt.Fprintf(&b, `<entry><id>e%d</id><title>%d</title><updated>2026-01-01T00:%02d:00Z</updated></entry>`, i, i, i)
		}
		b.WriteString(`</feed>`)
		_, _ = w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func stateOf(f *follow.Follower, topic string) follow.View {
	for _, v := range f.List() {
		if v.Topic == topic {
			return v
		}
	}
	return follow.View{}
}

// TestLinger: a feed is followed while a subscriber listens, for Linger
// after the last one left, and while a webhook lease lasts; then not.
func TestLinger(t *testing.T) {
	var leases atomic.Int64
	f, h, clock, obs := newFollower(t, follow.Options{
		Patterns: []string{"http://127.0.0.1:*/**"}, AllowPrivate: true, HostInterval: -1,
		MinInterval: time.Minute, MaxInterval: time.Hour, Linger: time.Hour,
		Leases: func(string) int { return int(leases.Load()) },
	})
	topic := atomFeed(t, 3).URL + "/feed"
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Topics: []string{topic}, Last: 5})
	if err != nil {
		t.Fatal(err)
	}
	if s := obs.next(t); s != "200" {
		t.Fatalf("first fetch: %s", s)
	}
	res, err := h.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{topic}, Count: 5, Entries: true})
	if err != nil || len(res.Events) != 3 || res.Events[0].ContentType != follow.EntryContentType {
		t.Fatalf("after the first fetch: %v %+v", err, res.Events)
	}
	step := func(d time.Duration, want string) {
		t.Helper()
		clock.Advance(d)
		if s := obs.next(t); s != want {
			t.Fatalf("after %s: fetch %s, want %s", d, s, want)
		}
	}
	step(time.Minute, "304")
	step(2*time.Minute, "304") // unchanged: 1.5 min, then longer
	sub.Close()
	step(30*time.Minute, "304") // within the linger after the subscriber left
	leases.Store(1)
	for range 3 {
		step(time.Hour, "304") // a lease counts as listening
	}
	leases.Store(0)
	clock.Advance(time.Hour)
	for deadline := time.Now().Add(10 * time.Second); stateOf(f, topic).State != follow.StopIdle; {
		if time.Now().After(deadline) {
			t.Fatalf("not idle an hour after the lease ended: %+v", stateOf(f, topic))
		}
		time.Sleep(10 * time.Millisecond) // polling the state; not synchronisation
	}
	if f.Followed() != 0 {
		t.Fatalf("Followed() = %d after it stopped", f.Followed())
	}
}

// TestAdmission: patterns, public addresses and the bound on followed
// feeds decide, with a 4xx and a reason; other topics pass untouched.
func TestAdmission(t *testing.T) {
	srv := atomFeed(t, 1)
	f, h, _, _ := newFollower(t, follow.Options{
		Patterns: []string{"https://*.example.com/**", srv.URL + "/**"}, Max: 1, HostInterval: -1,
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "private.example.com":
				return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.7")}, nil
			case "public.example.com":
				return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
			}
			return nil, errors.New("no such host")
		},
	})
	for _, tc := range []struct {
		topic  string
		status int
		reason string
	}{
		{"https://other.example.org/feed", 403, "no --feeds pattern"},
		{"https://private.example.com/feed", 403, "non-public address"},
		{"https://missing.example.com/feed", 400, "does not resolve"},
		{srv.URL + "/feed", 403, "non-public address"}, // 127.0.0.1 without AllowPrivate
	} {
		_, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Topics: []string{"news", tc.topic}})
		var ref *hub.Refusal
		if !errors.As(err, &ref) || ref.Status != tc.status || !strings.Contains(ref.Reason, tc.reason) {
			t.Errorf("%s: %v, want %d saying %q", tc.topic, err, tc.status, tc.reason)
		}
		if err := f.Touch(context.Background(), tc.topic); !errors.As(err, &ref) || ref.Status != tc.status {
			t.Errorf("Touch %s: %v, want %d", tc.topic, err, tc.status)
		}
	}
	if _, err := h.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"news"}}); err != nil {
		t.Fatalf("a plain topic: %v", err)
	}
	// public.example.com is admitted (its fetch fails: nothing listens
	// there), and fills the one place --feeds-max gives.
	if err := f.Touch(context.Background(), "https://public.example.com/feed"); err != nil {
		t.Fatalf("a public feed: %v", err)
	}
	_, err := h.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"https://public.example.com/other"}})
	var ref *hub.Refusal
	if !errors.As(err, &ref) || ref.Status != http.StatusTooManyRequests {
		t.Fatalf("one feed over Max: %v, want 429", err)
	}
}
