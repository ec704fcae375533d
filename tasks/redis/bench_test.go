package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/tasks"
)

// BenchmarkEnqueueClaimComplete measures one task's whole life (three
// scripts: Enqueue, Claim, Complete) against the real Redis, serially and
// from 16 workers, one kind. Report:
//
//	go test -run NONE -bench . ./tasks/redis
func BenchmarkEnqueueClaimComplete(b *testing.B) {
	c := rawClient(b)
	for _, workers := range []int{1, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			q := openQueue(b, newPrefix(b, c), nil)
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
