package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// pubSpec is how a bench publishes: events events to topic, numbered from
// 1, from publishers concurrent publishers, batch events per request, at
// rate events per second in all (0: as fast as the hub acknowledges).
// Each event's data is {"t":UNIX_NANOS,"n":NUMBER,"pad":"x..."}.
type pubSpec struct {
	root, auth, topic  string
	events, publishers int
	batch, rate, size  int
}

// publishAll publishes as spec says and returns the acknowledgement time
// of each request and how long it all took. With a rate, event n is due
// at start + n/rate, whichever publisher takes it: a slow acknowledgement
// delays only its own publisher, and the others keep the schedule (a
// shared ticker would drop ticks while every publisher waits, and fall
// short of the rate).
func publishAll(ctx context.Context, hc *http.Client, spec pubSpec) ([]time.Duration, time.Duration, error) {
	pad := strings.Repeat("x", spec.size)
	batch := max(1, spec.batch)
	var next atomic.Int64
	acks := make([][]time.Duration, spec.publishers)
	start := time.Now()
	err := each(spec.publishers, spec.publishers, func(p int) error {
		var body []byte
		for {
			last := next.Add(int64(batch))
			first := last - int64(batch) + 1
			if first > int64(spec.events) {
				return nil
			}
			last = min(last, int64(spec.events))
			if spec.rate > 0 {
				if d := time.Until(start.Add(time.Duration(first-1) * time.Second / time.Duration(spec.rate))); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return ctx.Err()
					}
				}
			}
			t0 := time.Now()
			body = append(body[:0], '[')
			for n := first; n <= last; n++ {
				if n > first {
					body = append(body, ',')
				}
				body = append(body, `{"topic":`...)
				body = strconv.AppendQuote(body, spec.topic)
				body = append(body, `,"data":{"t":`...)
				body = strconv.AppendInt(body, t0.UnixNano(), 10)
				body = append(body, `,"n":`...)
				body = strconv.AppendInt(body, n, 10)
				body = append(body, `,"pad":"`...)
				body = append(body, pad...)
				body = append(body, `"}}`...)
			}
			body = append(body, ']')
			if err := benchPublish(ctx, hc, spec.root+"/publish", spec.auth, string(body)); err != nil {
				return err
			}
			acks[p] = append(acks[p], time.Since(t0))
		}
	})
	var all []time.Duration
	for _, a := range acks {
		all = append(all, a...)
	}
	return all, time.Since(start), err
}
