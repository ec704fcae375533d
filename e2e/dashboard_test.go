package e2e

import (
	"fmt"
	"testing"
	"time"
)

// The dashboard of a several-node deployment shows every node: a node
// publishes its $sys/stats when a subscriber on another node watches them
// (newcomer report 5: before, only the node the dashboard was open on).
func TestStatsFromEveryNode(t *testing.T) {
	t.Parallel()
	_, prefix := requireRedis(t)
	store := "redis://" + sharedRedis() + "/0"
	var hubs []*hubProc
	for i := range 2 {
		hubs = append(hubs, startHub(t, "", "--store", store, "--redis-prefix", prefix, "--node-id", fmt.Sprintf("dash-%d", i)))
	}
	for _, h := range hubs {
		waitNodes(t, h, 2)
	}
	s := hubs[0].openSSE(t, "topic="+"$sys/stats/*", "", false)
	defer s.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for !seen["$sys/stats/dash-1"] {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no stats from the other node within 30s; saw %v", seen)
		}
		ev, err := s.tryNext(left)
		if err != nil {
			t.Fatalf("stats stream: %v (saw %v)", err, seen)
		}
		if ev.Event != "stats" { // the event type names the SSE event
			continue
		}
		seen[decodeData(t, ev).Topic] = true
	}
	// The hub's own events are not publishers' traffic (newcomer report 11).
	if n := hubs[1].metric(t, "hubbub_events_published_total"); n != 0 {
		t.Errorf("hubbub_events_published_total = %v after stats only, want 0", n)
	}
	// They are counted apart.
	if n := hubs[1].metric(t, "hubbub_sys_events_published_total"); n < 1 {
		t.Errorf("hubbub_sys_events_published_total = %v after its stats were seen, want at least 1", n)
	}
}
