package server

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

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/websub"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin API's topic routes: one named topic's numbers, and trimming.
func TestAdminTopics(t *testing.T) {
	r := startServer(t, config.Default(), false, nil)
	base := "http://" + r.addr
	for i := range 10 {
		if code, body := do(t, "POST", base+"/publish?topic=adm/t&key=k"+string(rune('0'+i%2)), "x"); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	code, body := get(t, base+"/api/topics?topic=adm/t&topic=adm/never")
	var named struct {
		Topics []topicInfo `json:"topics"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &named) != nil || len(named.Topics) != 2 ||
		named.Topics[0].Topic.Topic != "adm/t" || named.Topics[0].History != 10 || named.Topics[0].Epoch == "" ||
		named.Topics[1].Topic.Topic != "adm/never" || named.Topics[1].History != 0 {
		t.Fatalf("GET /api/topics?topic=...: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, form string
		code       int
		want       string
	}{
		{"no topic", "keep=1", 400, "give topic= and keep="},
		{"no keep", "topic=adm/t", 400, "give topic= and keep="},
		{"bad keep", "topic=adm/t&keep=-1", 400, "whole number"},
		{"bad topic", "topic=" + url.QueryEscape("a\nb") + "&keep=1", 400, "control"},
		{"unknown topic", "topic=adm/never&keep=1", 404, "no such topic"},
		{"trim", "topic=adm/t&keep=3", 200, `"first":8,"last":10,"history":3,"removed":7`},
		{"again", "topic=adm/t&keep=3", 200, `"history":3,"removed":0`},
		{"all", "topic=adm/t&keep=0", 200, `"first":11,"last":10,"history":0,"removed":3`},
	} {
		code, body := do(t, "POST", base+"/api/topics/trim", tc.form)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	// A subscriber resuming from before the trim is told.
	if code, body := get(t, base+"/events?topic=adm/t&after=1"); code != 200 || !strings.Contains(body, `"reason":"trimmed"`) {
		t.Fatalf("retrieve after the trim: %d %s", code, body)
	}
	// The documents survive.
	if code, body := get(t, base+"/documents?topic=adm/t&key=k0&key=k1"); code != 200 || strings.Contains(body, `"missing":["`) {
		t.Fatalf("documents after the trim: %d %s", code, body)
	}
	// Admin only.
	keyed := config.Default()
	keyed.AdminKey = "k"
	k := startServer(t, keyed, false, nil)
	if code, _ := do(t, "POST", "http://"+k.addr+"/api/topics/trim", "topic=a&keep=1"); code != 401 {
		t.Fatalf("trim without the admin key: %d, want 401", code)
	}
}

// The admin API's subscription routes: show, retry now, remove.
func TestAdminSubscriptions(t *testing.T) {
	var ok atomic.Bool
	posts := make(chan string, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		if !ok.Load() {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		posts <- string(b)
	}))
	defer cb.Close()
	cfg := config.Default()
	cfg.AllowPrivateCallbacks = true
	r := startServer(t, cfg, false, nil)
	base := "http://" + r.addr
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"adm/hook"}, "hub.callback": {cb.URL}, "hub.verify": {"sync"}}
	if code, body := do(t, "POST", base+"/hub", form.Encode()); code != 204 {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	id := websub.SubscriptionID("adm/hook", cb.URL)
	if code, body := do(t, "POST", base+"/publish?topic=adm/hook", "1"); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	var sub subscriptionRow
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, body := get(t, base+"/api/subscriptions/"+id)
		if code != 200 || json.Unmarshal([]byte(body), &sub) != nil {
			t.Fatalf("GET /api/subscriptions/ID: %d %s", code, body)
		}
		if sub.Failures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed delivery recorded: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sub.Callback != cb.URL || sub.Lag != 1 || sub.NextAttempt.Before(time.Now().Add(30*time.Minute)) || sub.Signed {
		t.Fatalf("subscription after a 503 with Retry-After 3600: %+v", sub)
	}
	ok.Store(true)
	code, body := do(t, "POST", base+"/api/subscriptions/"+id+"/retry-now", "")
	if code != 200 || !strings.Contains(body, `"failures":1`) || strings.Contains(body, "next_attempt") {
		t.Fatalf("retry-now: %d %s", code, body)
	}
	select {
	case b := <-posts:
		if b != "1" {
			t.Fatalf("delivered %q", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery after retry-now (the callback had asked for an hour)")
	}
	if code, body := do(t, "DELETE", base+"/api/subscriptions/"+id, ""); code != 200 || !strings.Contains(body, `"removed":true`) {
		t.Fatalf("delete: %d %s", code, body)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/subscriptions/" + id},
		{"DELETE", "/api/subscriptions/" + id},
		{"POST", "/api/subscriptions/" + id + "/retry-now"},
		{"POST", "/api/subscriptions/" + id + "/resume"},
	} {
		if code, body := do(t, tc.method, base+tc.path, ""); code != 404 || !strings.Contains(body, "no such subscription") {
			t.Errorf("%s %s after delete: %d %s", tc.method, tc.path, code, body)
		}
	}
}
