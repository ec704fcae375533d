package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// The webhook backlog metrics follow a callback that fails: events pile
// up and age; once it answers 2xx the backlog drains to zero. Requests are
// counted by route.
func TestWebhookBacklogMetrics(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer cb.Close()
	h := startHub(t, "", "--allow-private-callbacks")
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"backlog/1"}, "hub.callback": {cb.URL + "/hook"}, "hub.verify": {"sync"}}
	if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
		t.Fatalf("subscribe: %s", a)
	}
	h.publishN(t, "backlog/1", 3)
	// Measured every 10 s: allow a few rounds.
	h.waitMetric(t, "hubbub_webhook_backlog_events", 60*time.Second, func(v float64) bool { return v == 3 })
	h.waitMetric(t, "hubbub_webhook_backlog_oldest_seconds", 60*time.Second, func(v float64) bool { return v > 0 })
	h.waitMetric(t, "hubbub_webhook_subscriptions_behind", 60*time.Second, func(v float64) bool { return v == 1 })
	h.waitMetric(t, `hubbub_webhook_deliveries_total{result="failed"}`, 60*time.Second, func(v float64) bool { return v >= 1 })

	up.Store(true)
	h.waitMetric(t, "hubbub_webhook_events_delivered_total", 60*time.Second, func(v float64) bool { return v == 3 })
	h.waitMetric(t, "hubbub_webhook_backlog_events", 60*time.Second, func(v float64) bool { return v == 0 })
	h.waitMetric(t, "hubbub_webhook_backlog_oldest_seconds", 60*time.Second, func(v float64) bool { return v == 0 })

	if n := h.metric(t, `hubbub_http_requests_total{code="204",route="POST /hub"}`); n != 1 {
		t.Errorf(`requests{route="POST /hub",code="204"} = %v, want 1`, n)
	}
	if n := h.metric(t, `hubbub_http_requests_total{code="200",route="/publish"}`); n != 3 {
		t.Errorf(`requests{route="/publish",code="200"} = %v, want 3`, n)
	}
}
