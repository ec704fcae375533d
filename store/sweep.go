package store

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Sweep calls trim (a backend's Trimmer.TrimExpired) every interval until
// stop is closed, and returns then, or as soon as trim reports ErrClosed.
// The context trim gets is canceled when stop is closed, so a sweep in
// progress ends with the store. With interval <= 0 it only waits for
// stop. Failures are logged and retried at the next tick.
func Sweep(stop <-chan struct{}, interval time.Duration, trim func(context.Context) error, log *slog.Logger) {
	if interval <= 0 {
		<-stop
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			start := time.Now()
			err := trim(ctx)
			switch {
			case err == nil:
				log.Debug("store: trimmed expired records", "took", time.Since(start))
			case errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled):
				return
			default:
				log.Warn("store: trimming expired records failed", "err", err)
			}
		}
	}
}
