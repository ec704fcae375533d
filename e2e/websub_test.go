package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	list := string(h.do(t, http.MethodGet, "/api/subscriptions", nil, nil).Body)
	if strings.Contains(list, "s3cret") || !strings.Contains(list, `"signed":true`) {
		t.Fatalf("/api/subscriptions shows a secret or lacks signed: %s", list)
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
