package embedded_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/embedded"
)

// BenchmarkEnqueueClaimComplete measures one task's whole life (three
// synced batches) on the real file system, with parallel workers (their
// fsyncs are shared by group commit). Report: go test -run NONE -bench .
// ./tasks/embedded
func BenchmarkEnqueueClaimComplete(b *testing.B) {
	for _, workers := range []int{1, 16} {
		b.Run(map[int]string{1: "serial", 16: "parallel16"}[workers], func(b *testing.B) {
			q, err := embedded.Open(b.TempDir(), quiet())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			ctx := context.Background()
			payload := make([]byte, 100)
			var wg sync.WaitGroup
			per := b.N / workers
			b.ResetTimer()
			for w := range workers {
				n := per
				if w == 0 {
					n += b.N % workers
				}
				wg.Go(func() {
					for range n {
						if _, _, err := q.Enqueue(ctx, tasks.Task{Kind: "bench", Payload: payload}); err != nil {
							b.Error(err)
							return
						}
						ts, err := q.Claim(ctx, "bench", 1, time.Minute)
						if err != nil {
							b.Error(err)
							return
						}
						for _, t := range ts {
							if err := q.Complete(ctx, t.ID); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
