package websub

import (
	"sync"
	"time"
)

// maxGateEntries is how many topics a fetchGate remembers before it drops
// those whose interval has passed.
const maxGateEntries = 4096

// fetchGate spaces the fetches of each topic URL on this node at least
// interval apart (Options.FetchMinInterval).
//
// The contract: a thin ping is always answered at once, and it causes a
// fetch that begins no earlier than it and no earlier than interval after
// the last fetch of that URL on this node began. Pings arriving while that
// fetch is pending are absorbed by it (the task queue keeps one pending
// task per URL), so however many pings come within an interval, the URL is
// fetched at most once per interval, and a fetch begins after the last
// ping: its content is the newest. Several nodes sharing a task queue each
// keep their own gate.
type fetchGate struct {
	interval time.Duration // 0: no spacing
	mu       sync.Mutex
	began    map[string]time.Time // last fetch start per topic URL, within interval
}

func newFetchGate(interval time.Duration) *fetchGate {
	return &fetchGate{interval: interval, began: make(map[string]time.Time)}
}

// next returns when a fetch of topic asked for at now may begin: the zero
// time (at once) or a later time.
func (g *fetchGate) next(topic string, now time.Time) time.Time {
	if g.interval <= 0 {
		return time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if at := g.began[topic].Add(g.interval); at.After(now) {
		return at
	}
	return time.Time{}
}

// begin records that a fetch of topic begins at now, unless one began
// less than interval ago: it then returns the time to begin instead, and
// records nothing.
func (g *fetchGate) begin(topic string, now time.Time) (wait time.Time, ok bool) {
	if g.interval <= 0 {
		return time.Time{}, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if at := g.began[topic].Add(g.interval); at.After(now) {
		return at, false
	}
	if len(g.began) >= maxGateEntries {
		for t, b := range g.began {
			if !b.Add(g.interval).After(now) {
				delete(g.began, t)
			}
		}
	}
	g.began[topic] = now
	return time.Time{}, true
}
