package broker

// StallFanout blocks the fan-out goroutine (and HasSubscribers) before it
// offers the next event, until release is called.
func StallFanout(b *Broker) (release func()) {
	b.walkMu.Lock()
	return b.walkMu.Unlock
}

// SetQueueEvents sets the fan-out queue's bound in events.
func SetQueueEvents(b *Broker, n int) {
	b.fan.mu.Lock()
	b.fan.maxEvents = n
	b.fan.mu.Unlock()
}

// Queued reports how many events wait for (or are in) the fan-out.
func Queued(b *Broker) int {
	b.fan.mu.Lock()
	defer b.fan.mu.Unlock()
	return b.fan.events
}
