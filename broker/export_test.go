package broker

// StallFanout blocks the fan-out goroutine before it takes on the next
// batch, holding no lock, until release is called.
func StallFanout(b *Broker) (release func()) {
	stall := make(chan struct{})
	b.fan.mu.Lock()
	b.fan.hook = func() { <-stall }
	b.fan.mu.Unlock()
	return func() {
		b.fan.mu.Lock()
		b.fan.hook = nil
		b.fan.mu.Unlock()
		close(stall)
	}
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
