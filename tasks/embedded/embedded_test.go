package embedded_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/tasks/taskstest"
)

func quiet() embedded.Option {
	return embedded.WithLogger(slog.New(slog.DiscardHandler))
}

func TestConformance(t *testing.T) {
	taskstest.Run(t, taskstest.Backend{
		Open: func(t *testing.T, dir string, now func() time.Time) tasks.Queue {
			q, err := embedded.Open(dir, embedded.WithClock(now), quiet())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return q
		},
		ReleasesLeasesOnOpen: true,
	})
}

// TestCrash: what Enqueue, Claim, Retry and Dead acknowledged survives a
// crash (only synced data kept), and the lease is released at Open.
func TestCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	clk := taskstest.NewClock()
	ctx := t.Context()
	q, err := embedded.Open("q", embedded.WithFS(fs), embedded.WithClock(clk.Now), quiet())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, 50)
	for i := range 50 {
		id, _, err := q.Enqueue(ctx, tasks.Task{Kind: "k", Key: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ts, err := q.Claim(ctx, "k", 3, time.Hour)
	if err != nil || len(ts) != 3 {
		t.Fatalf("Claim = %v, %v", ts, err)
	}
	if err := q.Retry(ctx, ts[1].ID, clk.Now().Add(time.Hour), "e"); err != nil {
		t.Fatal(err)
	}
	if err := q.Dead(ctx, ts[2].ID, "d"); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = q.Close()
	q, err = embedded.Open("q", embedded.WithFS(crashed), embedded.WithClock(clk.Now), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (tasks.Counts{Pending: 49, Dead: 1}); st["k"] != want {
		t.Fatalf("after crash: %+v, want %+v", st["k"], want)
	}
	for _, id := range ids {
		if _, err := q.Get(ctx, id); err != nil {
			t.Fatalf("task %s lost: %v", id, err)
		}
	}
	if g, _ := q.Get(ctx, ts[0].ID); g.State != tasks.Pending || g.Attempt != 1 || g.LastError != "lease released at startup" {
		t.Fatalf("leased task after crash: %+v", g)
	}
	if g, _ := q.Get(ctx, ts[1].ID); g.Attempt != 1 || g.LastError != "e" {
		t.Fatalf("retried task after crash: %+v", g)
	}
}
