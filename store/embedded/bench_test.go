package embedded_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

func openBench(b *testing.B, cfg store.Config) *embedded.Store {
	b.Helper()
	s, err := embedded.Open(b.TempDir(), cfg, quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppend measures acknowledged durable (fsync'd) appends of one
// 512-byte event each, on the real file system, from concurrent publishers
// spread over 16 topics.
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for _, publishers := range []int{1, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			s := openBench(b, store.Config{Retention: store.Retention{MaxEvents: 100000}})
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

// BenchmarkRead measures reading pages of 100 events of 512 bytes from a
// topic of 10,000.
func BenchmarkRead(b *testing.B) {
	s := openBench(b, store.Config{})
	ctx := context.Background()
	payload := make([]byte, 512)
	const total, batch = 10000, 500
	for i := 0; i < total; i += batch {
		drafts := make([]event.Draft, batch)
		for j := range drafts {
			drafts[j] = event.Draft{Topics: []string{"read"}, Type: "message", Data: payload}
		}
		if _, err := s.Append(ctx, drafts); err != nil {
			b.Fatal(err)
		}
	}
	for _, newest := range []bool{false, true} {
		b.Run(fmt.Sprintf("limit=100/newest=%v", newest), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				p, err := s.Read(ctx, "read", store.Query{After: uint64(i*100) % (total - 100), Limit: 100, Newest: newest})
				if err != nil || len(p.Events) != 100 {
					b.Fatalf("read %d events: %v", len(p.Events), err)
				}
				n += len(p.Events)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
