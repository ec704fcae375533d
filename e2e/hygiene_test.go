package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Audit findings 7, 10 and 11 against the real binary: bad publish input
// is refused and stores nothing; a retrieve answer holds at most
// --max-response-bytes and pages on to every event; a thin-ping body over
// --max-body is fetched once and stores nothing.
func TestInputHygieneAndBounds(t *testing.T) {
	h := startHub(t, "", "--allow-private-callbacks", "--max-body", "20000", "--max-response-bytes", "65536")

	for _, body := range []string{
		`{"topic":"hy/a","key":"k","coalesce_ms":288230376151712704}`,
		"{\"topic\":\"hy/a\",\"data\":\"\xff\xfe bad utf8\"}",
		"{\"topic\":\"hy/a\xff\",\"data\":1}",
		`{"topic":"hy/a","key":"line\nbreak","data":1}`,
	} {
		if a := h.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(body)); a.Status != http.StatusBadRequest {
			t.Errorf("publish %q: %s, want 400", body, a)
		}
	}
	if n := len(h.retrieveAll(t, "hy/a")); n != 0 {
		t.Errorf("bad input stored %d events", n)
	}

	data := []byte(strings.Repeat("y", 15000))
	for range 20 {
		if a := h.do(t, http.MethodPost, "/publish?topic=hy/big", ctHeader("text/plain"), data); a.Status != http.StatusOK {
			t.Fatalf("publish: %s", a)
		}
	}
	cursor, seen := "0", 0
	for page := 0; seen < 20; page++ {
		if page > 20 {
			t.Fatalf("paging does not end: %d events", seen)
		}
		er, a := h.getEvents(t, "topic=hy/big&count=1000&after="+url.QueryEscape(cursor))
		if len(a.Body) > 65536 || len(er.Events) == 0 {
			t.Fatalf("a page of %d bytes with %d events", len(a.Body), len(er.Events))
		}
		for _, e := range er.Events {
			seen++
			if e.Seq != uint64(seen) {
				t.Fatalf("seq %d, want %d", e.Seq, seen)
			}
		}
		cursor = er.Cursor
	}

	var hits atomic.Int32
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("z", 20001)))
	}))
	defer big.Close()
	topic := big.URL + "/doc"
	form := url.Values{"hub.mode": {"publish"}, "hub.url": {topic}}
	if a := h.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
		t.Fatalf("ping: %s", a)
	}
	h.waitMetric(t, `hubbub_websub_fetches_total{result="failed"}`, 20*time.Second, func(v float64) bool { return v >= 1 })
	if n := len(h.retrieveAll(t, topic)); n != 0 || hits.Load() != 1 {
		t.Errorf("a body over --max-body: %d fetches, %d events stored", hits.Load(), n)
	}
}
