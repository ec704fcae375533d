package broker

import "github.com/hubbub/hubbub/event"

// Tap registers fn to see every batch handed to Publish or OnCommit, in
// order, on the caller's goroutine, before the batch is queued for the
// subscribers (so it sees batches OnCommit drops too). It runs on the
// store's commit path: it must be quick and must not block. Register taps
// before the first Publish.
func (b *Broker) Tap(fn func(events []*event.Event)) {
	b.mu.Lock()
	var taps []func([]*event.Event)
	if old := b.taps.Load(); old != nil {
		taps = append(taps, *old...)
	}
	taps = append(taps, fn)
	b.taps.Store(&taps)
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
func (b *Broker) Watched(topic string) bool { return b.HasSubscribers(topic) }

// SubscribersByLabel counts the live subscriptions that would be offered
// an event of topic, by name or by pattern, each once, by their Spec.Label
// ("" for unlabelled ones). Filters are not considered.
func (b *Broker) SubscribersByLabel(topic string) map[string]int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[string]int)
	for s := range b.exact[topic] {
		out[s.label]++
	}
	if b.patterns.empty() {
		return out
	}
	b.walkMu.Lock()
	defer b.walkMu.Unlock()
	seen := map[*Sub]bool{}
	for _, nd := range b.patterns.walk(topic) {
		for s := range nd.subs {
			if _, named := b.exact[topic][s]; !named && !seen[s] {
				seen[s] = true
				out[s.label]++
			}
		}
	}
	return out
}
