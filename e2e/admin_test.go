package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSysTopicsAndAdminAPI: $sys/ topics are the hub's own (no outside
// publish, not matched by catch-all patterns, admin-only to read), the
// hub publishes its stats there while watched, and /api/topics needs the
// admin key when one is set.
func TestSysTopicsAndAdminAPI(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	if a := h.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(`{"topic":"$sys/stats/x","data":1}`)); a.Status != http.StatusForbidden {
		t.Fatalf("publish to $sys: %s, want 403", a)
	}
	all := h.openSSE(t, "topic=**", "", false)
	defer all.Close()
	sys := h.openSSE(t, "topic=$sys/stats/*", "", false)
	defer sys.Close()
	h.publish(t, `{"topic":"shop/orders","data":{"n":1}}`)
	if ev := decodeData(t, all.next(t, 10*time.Second)); ev.Topic != "shop/orders" {
		t.Fatalf("** got %s first, want shop/orders", ev.Topic)
	}
	// Stats come every 2 s; the one that shows shop/orders is what we want.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ev := decodeData(t, sys.next(t, 10*time.Second))
		var st struct {
			Topics []struct {
				Topic   string `json:"topic"`
				History uint64 `json:"history"`
			} `json:"topics"`
		}
		if err := json.Unmarshal(ev.Data, &st); err != nil || ev.Type != "stats" || !strings.HasPrefix(ev.Topic, "$sys/stats/") {
			t.Fatalf("stats event %+v: %v", ev, err)
		}
		if len(st.Topics) > 0 && st.Topics[0].Topic == "shop/orders" && st.Topics[0].History == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stats naming shop/orders; last %s", ev.Data)
		}
	}
	// The catch-all subscriber never saw a $sys event.
	if ev, err := all.tryNext(300 * time.Millisecond); err == nil {
		t.Fatalf("** got %q", ev.Data)
	}
	one := h.openSSE(t, "topic=shop/orders", "", false) // answers once registered
	defer one.Close()
	// Subscribers count pattern subscribers too: one, and ** (newcomer report 15).
	if a := h.do(t, http.MethodGet, "/api/topics", nil, nil); a.Status != http.StatusOK || !strings.Contains(string(a.Body), "shop/orders") ||
		!strings.Contains(string(a.Body), `"subscribers":2,"subscribers_by_transport":{"sse":2}`) {
		t.Fatalf("/api/topics from loopback without a key: %s", a)
	}

	k := startHub(t, "", "--admin-key", "s3cret")
	if a := k.do(t, http.MethodGet, "/api/topics", nil, nil); a.Status != http.StatusUnauthorized {
		t.Fatalf("/api/topics without the key: %s", a)
	}
	if a := k.do(t, http.MethodGet, "/events?topic=$sys/stats/x", nil, nil); a.Status != http.StatusForbidden {
		t.Fatalf("$sys without the key: %s", a)
	}
	if a := k.do(t, http.MethodGet, "/api/stats", http.Header{"Authorization": {"Bearer s3cret"}}, nil); a.Status != http.StatusOK {
		t.Fatalf("/api/stats with the key: %s", a)
	}
}
