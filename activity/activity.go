// Package activity keeps a bounded, in-memory picture of which topics are
// busy on this node: events seen, when the last came, and a decaying rate.
// It feeds the dashboard (/api/topics and the $sys/stats topic); it is not
// a source of truth and forgets the quietest topics when full.
package activity

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/hubbub/hubbub/event"
)

// halfLife is how fast the rate forgets: a topic that stops publishing
// shows half its rate after this long.
const halfLife = time.Minute

// Topic is one topic's activity.
type Topic struct {
	Topic      string    `json:"topic"`
	Events     uint64    `json:"events"`       // seen since this node started
	LastSeq    uint64    `json:"last_seq"`     //
	LastTime   time.Time `json:"last_time"`    // time of the newest event
	RatePerMin float64   `json:"rate_per_min"` // decaying average
}

// Tracker records events. Safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	max    int
	now    func() time.Time
	topics map[string]*entry
}

type entry struct {
	Topic
	rate float64 // events per second, decayed to at
	at   time.Time
}

// New returns a tracker of at most max topics (at least 16).
func New(max int, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{max: maxInt(max, 16), now: now, topics: make(map[string]*entry)}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// Record counts events (a broker tap).
func (t *Tracker) Record(events []*event.Event) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range events {
		en := t.topics[e.Topic]
		if en == nil {
			if len(t.topics) >= t.max {
				t.evict(now)
			}
			en = &entry{Topic: Topic{Topic: e.Topic}, at: now}
			t.topics[e.Topic] = en
		}
		en.decay(now)
		en.rate += 1 / halfLife.Seconds() * math.Ln2
		en.Events++
		en.LastSeq, en.LastTime = e.Seq, e.Time
	}
}

func (en *entry) decay(now time.Time) {
	if d := now.Sub(en.at); d > 0 {
		en.rate *= math.Exp2(-d.Seconds() / halfLife.Seconds())
		en.at = now
	}
}

// evict drops the quietest tenth of the topics.
func (t *Tracker) evict(now time.Time) {
	all := t.snapshot(now)
	for _, tp := range all[len(all)-len(all)/10-1:] {
		delete(t.topics, tp.Topic)
	}
}

func (t *Tracker) snapshot(now time.Time) []Topic {
	out := make([]Topic, 0, len(t.topics))
	for _, en := range t.topics {
		en.decay(now)
		tp := en.Topic
		tp.RatePerMin = math.Round(en.rate*60*100) / 100
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RatePerMin != out[j].RatePerMin {
			return out[i].RatePerMin > out[j].RatePerMin
		}
		return out[i].LastTime.After(out[j].LastTime)
	})
	return out
}

// Top returns up to n topics, busiest first (then most recent).
func (t *Tracker) Top(n int) []Topic {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := t.snapshot(t.now())
	if len(all) > n {
		all = all[:n]
	}
	return all
}

// Get returns topic's numbers, and false when the tracker holds none for it
// (no event seen since this node started, or evicted as one of the
// quietest).
func (t *Tracker) Get(topic string) (Topic, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	en := t.topics[topic]
	if en == nil {
		return Topic{Topic: topic}, false
	}
	en.decay(t.now())
	tp := en.Topic
	tp.RatePerMin = math.Round(en.rate*60*100) / 100
	return tp, true
}
