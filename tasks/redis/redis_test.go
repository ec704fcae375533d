package redis_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/redis"
	"github.com/hubbub/hubbub/tasks/taskstest"
)

func redisAddr() string { return redistest.Addr() }

func redisURL() string { return "redis://" + redisAddr() + "/0" }

func rawClient(tb testing.TB) *goredis.Client { return redistest.Client(tb, "Redis task queue") }

func newPrefix(tb testing.TB, c *goredis.Client) string { return redistest.Prefix(tb, c) }

func quiet() redis.Option { return redis.WithLogger(slog.New(slog.DiscardHandler)) }

// openQueue opens a queue on prefix; the caller closes it.
func openQueue(tb testing.TB, prefix string, now func() time.Time) *redis.Queue {
	tb.Helper()
	return openQueueAt(tb, redisURL(), prefix, now)
}

// openQueueAt is openQueue on the Redis (or Redis Cluster) at url.
func openQueueAt(tb testing.TB, url, prefix string, now func() time.Time) *redis.Queue {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := []redis.Option{redis.WithPrefix(prefix), quiet()}
	if now != nil {
		opts = append(opts, redis.WithClock(now))
	}
	q, err := redis.Open(ctx, url, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return q
}

// TestConformance runs the task queue suite; each suite directory maps to
// its own key prefix, so reopening a directory reopens the same queue.
func TestConformance(t *testing.T) {
	c := rawClient(t)
	prefixFor := redistest.PerDir(func() string { return newPrefix(t, c) })
	taskstest.Run(t, taskstest.Backend{
		Open: func(t *testing.T, dir string, now func() time.Time) tasks.Queue {
			return openQueue(t, prefixFor(dir), now)
		},
		ReleasesLeasesOnOpen: false, // leases may belong to other live nodes
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := redis.Open(ctx, redisURL(), redis.WithPrefix("a{b}")); err == nil {
		t.Fatal("Open accepted a prefix with braces")
	}
	if _, err := redis.Open(ctx, "http://nope"); err == nil {
		t.Fatal("Open accepted a bad URL")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := redis.Open(short, "redis://127.0.0.1:1/0"); err == nil {
		t.Fatal("Open succeeded without a server")
	}
}

// TestKindsShareNothing: kinds whose names are prefixes of each other or
// contain the key separator and braces keep their tasks apart.
func TestKindsShareNothing(t *testing.T) {
	c := rawClient(t)
	clk := taskstest.NewClock()
	q := openQueue(t, newPrefix(t, c), clk.Now)
	defer q.Close()
	ctx := t.Context()
	kinds := []string{"a", "a:due", "a:b", "{x}", "x}", "a:due:due"}
	ids := map[string]string{}
	for _, k := range kinds {
		id, added, err := q.Enqueue(ctx, tasks.Task{Kind: k, Key: "same"})
		if err != nil || !added {
			t.Fatalf("Enqueue(%q) = %v, %v", k, added, err)
		}
		ids[k] = id
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds {
		if st[k] != (tasks.Counts{Pending: 1}) {
			t.Fatalf("Stats[%q] = %+v", k, st[k])
		}
		ts, err := q.Claim(ctx, k, 10, time.Minute)
		if err != nil || len(ts) != 1 || ts[0].ID != ids[k] || ts[0].Kind != k {
			t.Fatalf("Claim(%q) = %+v, %v", k, ts, err)
		}
		g, err := q.Get(ctx, ids[k])
		if err != nil || g.Kind != k || g.State != tasks.Running {
			t.Fatalf("Get = %+v, %v", g, err)
		}
	}
}
