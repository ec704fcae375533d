package redis_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// BenchmarkAppend measures acknowledged appends of one 512-byte event each
// to the real Redis, from concurrent publishers spread over 16 topics.
func BenchmarkAppend(b *testing.B) {
	c := rawClient(b)
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for _, publishers := range []int{1, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			s := openStore(b, newPrefix(b, c), store.Config{Retention: store.Retention{MaxEvents: 100000}})
			defer s.Close()
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			start := time.Now()
			for p := range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := []event.Draft{{
						Topics:      []string{fmt.Sprintf("bench/%d", p%16)},
						Type:        "message",
						ContentType: "application/octet-stream",
						Data:        payload,
					}}
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Append(ctx, d); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
