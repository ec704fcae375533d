package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/redis"
	"github.com/hubbub/hubbub/tasks/taskstest"
)

// TestClusterConformance runs the task queue suite on a three-master Redis
// Cluster: each kind's keys share a hash slot, so every script runs there.
func TestClusterConformance(t *testing.T) {
	url := redistest.Cluster(t)
	var mu sync.Mutex
	prefixes := map[string]string{}
	taskstest.Run(t, taskstest.Backend{
		Open: func(t *testing.T, dir string, now func() time.Time) tasks.Queue {
			mu.Lock()
			p, ok := prefixes[dir]
			if !ok {
				p = fmt.Sprintf("c%d", len(prefixes))
				prefixes[dir] = p
			}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opts := []redis.Option{redis.WithPrefix(p), quiet()}
			if now != nil {
				opts = append(opts, redis.WithClock(now))
			}
			q, err := redis.Open(ctx, url, opts...)
			if err != nil {
				t.Fatalf("Open on the cluster: %v", err)
			}
			return q
		},
		ReleasesLeasesOnOpen: false,
	})
}
