package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/taskstest"
)

// TestClusterConformance runs the task queue suite on a three-master Redis
// Cluster: each kind's keys share a hash slot, so every script runs there.
func TestClusterConformance(t *testing.T) {
	url := redistest.Cluster(t)
	n := 0
	prefixFor := redistest.PerDir(func() string { n++; return fmt.Sprintf("c%d", n) })
	taskstest.Run(t, taskstest.Backend{
		Open: func(t *testing.T, dir string, now func() time.Time) tasks.Queue {
			return openQueueAt(t, url, prefixFor(dir), now)
		},
		ReleasesLeasesOnOpen: false,
	})
}
