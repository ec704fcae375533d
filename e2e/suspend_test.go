package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookSuspendResume runs the real binary with a tiny retry schedule
// and --webhook-suspend-after: a callback that keeps failing ends up
// suspended (in /api/subscriptions and the metric), gets no more POSTs,
// refuses retry-now, and after POST /resume is delivered to at once.
func TestWebhookSuspendResume(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--allow-private-callbacks",
		"--webhook-retry-base", "20ms", "--webhook-retry-max", "100ms", "--webhook-suspend-after", "1s")
	var healthy atomic.Bool
	var attempts atomic.Int64
	posts := make(chan string, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		attempts.Add(1)
		if !healthy.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		b, _ := io.ReadAll(r.Body)
		posts <- string(b)
	}))
	defer cb.Close()
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"susp/hook"}, "hub.callback": {cb.URL}, "hub.verify": {"sync"}}
	if a := h.do(t, "POST", "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
		t.Fatalf("subscribe: %s", a)
	}
	h.publish(t, `{"topic":"susp/hook","data":"one"}`)

	type row struct {
		ID           string    `json:"id"`
		State        string    `json:"state"`
		Failures     int       `json:"failures"`
		FailingSince time.Time `json:"failing_since"`
		NextAttempt  time.Time `json:"next_attempt"`
		LastError    string    `json:"last_error"`
	}
	list := func() row {
		t.Helper()
		a := h.do(t, "GET", "/api/subscriptions", nil, nil)
		var body struct {
			Subscriptions []row `json:"subscriptions"`
		}
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &body) != nil || len(body.Subscriptions) != 1 {
			t.Fatalf("GET /api/subscriptions: %s", a)
		}
		return body.Subscriptions[0]
	}
	var s row
	for deadline := time.Now().Add(30 * time.Second); s.State != "suspended"; {
		if time.Now().After(deadline) {
			t.Fatalf("not suspended within 30s: %+v", s)
		}
		s = list()
		if s.State != "suspended" {
			time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	if s.Failures < 2 || s.FailingSince.IsZero() || !s.NextAttempt.IsZero() || !strings.Contains(s.LastError, "500") {
		t.Fatalf("suspended row: %+v", s)
	}
	// No more POSTs, even for a new event: the attempts stay as they are
	// while the backlog metric catches up (at least one measurement).
	before := attempts.Load()
	h.publish(t, `{"topic":"susp/hook","data":"two"}`)
	h.waitMetric(t, "hubbub_webhook_subscriptions_suspended", 40*time.Second, func(v float64) bool { return v == 1 })
	if n := attempts.Load(); n != before {
		t.Fatalf("%d delivery attempts after the suspension", n-before)
	}
	if a := h.do(t, "POST", "/api/subscriptions/"+s.ID+"/retry-now", nil, nil); a.Status != http.StatusConflict || !strings.Contains(string(a.Body), "/resume") {
		t.Fatalf("retry-now on a suspended subscription: %s", a)
	}

	healthy.Store(true)
	a := h.do(t, "POST", "/api/subscriptions/"+s.ID+"/resume", nil, nil)
	var resumed row
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &resumed) != nil || resumed.State != "active" || resumed.Failures != 0 {
		t.Fatalf("resume: %s", a)
	}
	for _, want := range []string{`"one"`, `"two"`} {
		select {
		case b := <-posts:
			if b != want {
				t.Fatalf("delivered %q, want %s", b, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no delivery of %s within 20s of resume", want)
		}
	}
	if a := h.do(t, "POST", "/api/subscriptions/nope/resume", nil, nil); a.Status != http.StatusNotFound {
		t.Fatalf("resume of an unknown subscription: %s", a)
	}
}
