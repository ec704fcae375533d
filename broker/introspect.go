package broker

import "github.com/hubbub/hubbub/event"

// Tap registers fn to see every batch handed to Publish, after the
// subscribers have been offered it, on the publishing goroutine: it must
// be quick and must not block. Register taps before the first Publish.
func (b *Broker) Tap(fn func(events []*event.Event)) {
	b.mu.Lock()
	b.taps = append(b.taps, fn)
	b.mu.Unlock()
}

// Subscribers reports how many live subscriptions name topic exactly
// (pattern subscriptions are not counted).
func (b *Broker) Subscribers(topic string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.exact[topic])
}

// Watched reports whether any live subscription would get an event of
// topic: one naming it, or a pattern matching it.
func (b *Broker) Watched(topic string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if len(b.exact[topic]) > 0 {
		return true
	}
	for _, pats := range b.patterns {
		for _, p := range pats {
			if p.Match(topic) {
				return true
			}
		}
	}
	return false
}

// SubscribersByLabel counts the live subscriptions naming topic exactly,
// by their Spec.Label ("" for unlabelled ones).
func (b *Broker) SubscribersByLabel(topic string) map[string]int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[string]int)
	for s := range b.exact[topic] {
		out[s.label]++
	}
	return out
}
