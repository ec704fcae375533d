package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

type delivery struct {
	header http.Header
	body   []byte
}

// TestWebSub: a subscriber verifies its intent, then gets events published
// with POST /publish as signed webhook POSTs; the admin API lists the
// subscription without its secret.
func TestWebSub(t *testing.T) {
	t.Parallel()
	got := make(chan delivery, 16)
	verified := make(chan string, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			verified <- r.URL.Query().Get("hub.mode")
			io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), b}
	}))
	defer cb.Close()
	h := startHub(t, "", "--allow-private-callbacks")

	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"orders/eu"}, "hub.callback": {cb.URL + "/hook?x=1"}, "hub.secret": {"s3cret"}}
	a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode()))
	if a.Status != http.StatusAccepted {
		t.Fatalf("subscribe: %s, want 202", a)
	}
	select {
	case mode := <-verified:
		if mode != "subscribe" {
			t.Fatalf("verification mode %q", mode)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no verification of intent")
	}
	// The subscription is in force once the hub counts the verification.
	h.waitMetric(t, `hubbub_websub_verifications_total{mode="subscribe",result="ok"}`, 20*time.Second, func(v float64) bool { return v >= 1 })
	h.publish(t, `{"topic":"orders/eu","data":{"order":1}}`)
	select {
	case d := <-got:
		if string(d.body) != `{"order":1}` || !strings.HasPrefix(d.header.Get("Content-Type"), "application/json") {
			t.Fatalf("delivery %s %q", d.header.Get("Content-Type"), d.body)
		}
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(d.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); d.header.Get("X-Hub-Signature") != want {
			t.Fatalf("signature %q, want %q", d.header.Get("X-Hub-Signature"), want)
		}
		if link := d.header.Get("Link"); !strings.Contains(link, `rel="hub"`) || !strings.Contains(link, `rel="self"`) {
			t.Fatalf("Link %q", link)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery")
	}
	// One snake_case shape (newcomer report 16): the cursor as the string
	// clients use everywhere, one lease expiry. The cursor moves once the
	// hub has the callback's answer, just after the delivery arrived here:
	// wait for it.
	var list string
	var row map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; {
		list = string(h.do(t, http.MethodGet, "/api/subscriptions", nil, nil).Body)
		if strings.Contains(list, "s3cret") || !strings.Contains(list, `"signed":true`) {
			t.Fatalf("/api/subscriptions shows a secret or lacks signed: %s", list)
		}
		var subs struct {
			Subscriptions []map[string]any `json:"subscriptions"`
			Verifications []map[string]any `json:"verifications"`
		}
		if err := json.Unmarshal([]byte(list), &subs); err != nil || len(subs.Subscriptions) != 1 || subs.Verifications == nil {
			t.Fatalf("/api/subscriptions: %v: %s", err, list)
		}
		row = subs.Subscriptions[0]
		c, ok := row["cursor"].(string)
		if !ok {
			t.Fatalf("cursor %v, want a string", row["cursor"])
		}
		if strings.HasSuffix(c, ":1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %v, want EPOCH:1", c)
		}
		time.Sleep(20 * time.Millisecond) // polling for the event, with a deadline
	}
	for k := range row {
		if k != strings.ToLower(k) || k == "expires" || k == "hub_url" || k == "secret" {
			t.Errorf("/api/subscriptions row has the key %q: %s", k, list)
		}
	}
	if row["lease_expires"] == nil || row["topic"] != "orders/eu" || row["state"] != "active" {
		t.Errorf("/api/subscriptions row: %v", row)
	}
	if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte("hub.mode=subscribe&hub.topic=x")); a.Status != http.StatusBadRequest {
		t.Fatalf("subscribe without callback: %s", a)
	}
}

// TestDiscovery: a topic hubbub hosts names its hub in Link headers, on GET
// and HEAD, in every retrieve format.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	h.publish(t, `{"topic":"blog/posts","data":{"title":"hello"}}`)
	for _, c := range []struct{ method, path, ct, self string }{
		{http.MethodGet, "/topics/blog/posts", "application/json", "/topics/blog/posts"},
		{http.MethodGet, "/topics/blog/posts?format=atom&count=3", "application/atom+xml", "/topics/blog/posts?format=atom"},
		{http.MethodGet, "/events?topic=blog/posts&format=rss", "application/rss+xml", "/topics/blog/posts?format=rss"},
		{http.MethodHead, "/topics/blog/posts", "application/json", "/topics/blog/posts"},
	} {
		a := h.do(t, c.method, c.path, nil, nil)
		link := a.Header.Get("Link")
		if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), c.ct) ||
			!strings.Contains(link, h.URL+`/hub>; rel="hub"`) || !strings.Contains(link, "<"+h.URL+c.self+`>; rel="self"`) {
			t.Errorf("%s %s: %s, Link %q", c.method, c.path, a, link)
		}
		if c.method == http.MethodGet && !strings.Contains(string(a.Body), "hello") {
			t.Errorf("%s %s: body lacks the event: %s", c.method, c.path, a)
		}
	}
}

// A verification that cannot reach its callback is visible in
// /api/subscriptions while the hub retries it (newcomer report 16), and a
// loopback callback refused by the SSRF guard is answered with a pointer
// to --allow-private-callbacks.
func TestWebSubVerificationVisible(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--allow-private-callbacks")
	dead := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/hook"
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"orders/dead"}, "hub.callback": {dead}}
	if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusAccepted {
		t.Fatalf("subscribe: %s, want 202", a)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var resp struct {
			Verifications []struct {
				LastError string `json:"last_error"`
			} `json:"verifications"`
		}
		a := h.do(t, http.MethodGet, "/api/subscriptions", nil, nil)
		if err := json.Unmarshal(a.Body, &resp); err != nil {
			t.Fatalf("/api/subscriptions: %v: %s", err, a)
		}
		if len(resp.Verifications) == 1 && resp.Verifications[0].LastError == "callback could not be reached" {
			if !strings.Contains(string(a.Body), `"state":"pending"`) || !strings.Contains(string(a.Body), `"next_attempt"`) ||
				!strings.Contains(string(a.Body), `"callback":"`+dead+`"`) {
				t.Fatalf("a verification being retried: %s", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed try on record within 30s: %s", a)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}

	guarded := startHub(t, "")
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Query().Get("hub.challenge"))
	}))
	defer cb.Close()
	form = url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"orders/eu"}, "hub.callback": {cb.URL + "/hook"}, "hub.verify": {"sync"}}
	a := guarded.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode()))
	if a.Status != http.StatusConflict || !strings.Contains(string(a.Body), "--allow-private-callbacks") || strings.Contains(string(a.Body), "127.0.0.1") {
		t.Fatalf("sync subscribe of a loopback callback: %s, want 409 naming --allow-private-callbacks and no address", a)
	}
}
