package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
)

// TestRedisCluster: two hubs on a three-master Redis Cluster (topics in
// many hash slots). Events published on one node reach SSE subscribers on
// the other in order, a webhook subscribed on one node gets what is
// published on the other, and both nodes list each other.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	store := redistest.Cluster(t)
	a := startHub(t, "", "--store", store, "--node-id", "rc-a", "--allow-private-callbacks")
	b := startHub(t, "", "--store", store, "--node-id", "rc-b", "--allow-private-callbacks")
	waitNodes(t, a, 2)
	waitNodes(t, b, 2)

	topics := []string{"rc/1", "rc/2", "rc/3", "rc/4"}
	var streams []*sseStream
	for _, topic := range topics {
		streams = append(streams, b.openSSE(t, "topic="+url.QueryEscape(topic), "", false))
	}

	got := make(chan wireEvent, 100)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		var batch []wireEvent
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &batch); err != nil {
			var one wireEvent
			if json.Unmarshal(body, &one) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			batch = []wireEvent{one}
		}
		for _, e := range batch {
			got <- e
		}
	}))
	defer cb.Close()
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"rc/1"}, "hub.callback": {cb.URL + "/hook"}, "hub.batch": {"10"}}
	if ans := b.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); ans.Status != http.StatusAccepted {
		t.Fatalf("webhook subscribe: %s", ans)
	}
	waitSubscriptions(t, a, 1)

	const per = 5
	for n := range per {
		for _, topic := range topics {
			a.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, n))
		}
	}
	for i, s := range streams {
		s.expectSeqs(t, topics[i], seqRange(1, per)...)
	}
	deadline := time.After(30 * time.Second)
	for next := uint64(1); next <= per; {
		select {
		case e := <-got:
			if e.Seq > next {
				t.Fatalf("webhook: seq %d after %d", e.Seq, next-1)
			}
			if e.Seq == next {
				next++
			}
		case <-deadline:
			t.Fatalf("webhook got up to seq %d of %d within 30s", next-1, per)
		}
	}
}
