package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookFanOutSurvivesKill kills the hub with SIGKILL in the middle
// of a fan-out to 1,000 webhook subscriptions (half of them batched) and
// restarts it on the same data: afterwards every subscription has every
// event, in order; the only duplicates are events sent again from a
// cursor that had not moved yet (a re-sent POST or batch), never a gap.
func TestWebhookFanOutSurvivesKill(t *testing.T) {
	t.Parallel()
	const subs, events = 1000, 8
	dir := t.TempDir()
	args := []string{"--allow-private-callbacks", "--websub-subscribe-rate", "0"}
	h := startHub(t, dir, args...)

	type got struct {
		mu sync.Mutex
		ns []int
	}
	received := make([]got, subs)
	var total atomic.Int64
	posted := make(chan struct{}, 1) // a POST was answered: look again
	nRE := regexp.MustCompile(`"n":(\d+)`)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/s/"))
		b, _ := io.ReadAll(r.Body)
		if err != nil || i < 0 || i >= subs {
			http.Error(w, "no such subscription", http.StatusNotFound)
			return
		}
		g := &received[i]
		g.mu.Lock()
		for _, m := range nRE.FindAllSubmatch(b, -1) { // in body order
			n, _ := strconv.Atoi(string(m[1]))
			g.ns = append(g.ns, n)
		}
		g.mu.Unlock()
		total.Add(1)
		w.WriteHeader(http.StatusNoContent)
		select {
		case posted <- struct{}{}:
		default:
		}
	}))
	defer cb.Close()

	var next atomic.Int64
	var wg sync.WaitGroup
	var subErr atomic.Value
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= subs {
					return
				}
				form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"crash/fanout"},
					"hub.callback": {fmt.Sprintf("%s/s/%d", cb.URL, i)}, "hub.verify": {"sync"}}
				if i%2 == 1 {
					form.Set("hub.batch", "3")
				}
				a, err := h.try("POST", "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode()))
				if err != nil || a.Status != http.StatusNoContent {
					subErr.Store(fmt.Sprintf("subscribe %d: %v %s", i, err, a))
					return
				}
			}
		})
	}
	wg.Wait()
	if e := subErr.Load(); e != nil {
		t.Fatal(e)
	}
	for n := 1; n <= events; n++ {
		h.publish(t, fmt.Sprintf(`{"topic":"crash/fanout","data":{"n":%d}}`, n))
	}
	// POSTs in all: one per event for the plain half, batches of 3 for
	// the other.
	const posts = subs/2*events + subs/2*((events+2)/3)
	// await waits, POST by POST, until cond holds.
	await := func(d time.Duration, cond func() bool, what string) {
		t.Helper()
		timeout := time.After(d)
		for !cond() {
			select {
			case <-posted:
			case <-timeout:
				t.Fatalf("%s: not within %v (%d POSTs answered)", what, d, total.Load())
			}
		}
	}
	// Kill once a tenth of the POSTs have been answered.
	await(60*time.Second, func() bool { return total.Load() >= posts/10 }, "a tenth of the fan-out")
	h.Kill()
	atKill := total.Load()
	h2 := startHub(t, dir, args...)
	defer h2.Stop()

	complete := func() int {
		missing := 0
		for i := range received {
			g := &received[i]
			g.mu.Lock()
			seen := map[int]bool{}
			for _, n := range g.ns {
				seen[n] = true
			}
			g.mu.Unlock()
			missing += events - len(seen)
		}
		return missing
	}
	await(120*time.Second, func() bool { return complete() == 0 }, "every event after the restart")
	dups := 0
	for i := range received {
		g := &received[i]
		g.mu.Lock()
		high := 0
		for _, n := range g.ns {
			switch {
			case n == high+1:
				high = n
			case n <= high:
				dups++ // sent again from a cursor that had not moved
			default:
				t.Errorf("subscription %d: event %d after %d: a gap (received %v)", i, n, high, g.ns)
			}
		}
		g.mu.Unlock()
	}
	t.Logf("killed after %d of %d POSTs had been answered; after the restart every subscription had every event in order, with %d duplicate event deliveries", atKill, posts, dups)
	if atKill >= posts*3/4 {
		t.Errorf("the kill came after %d answered POSTs: the fan-out was (nearly) done, so the test proved little", atKill)
	}
}
