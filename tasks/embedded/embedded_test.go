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

// TestDueLowBound: claims start their scan of the due index past what was
// already consumed; a task enqueued due earlier than that, moved earlier,
// or retried to an earlier time is still claimed, in due order.
func TestDueLowBound(t *testing.T) {
	clk := taskstest.NewClock()
	ctx := t.Context()
	q, err := embedded.Open(t.TempDir(), embedded.WithClock(clk.Now), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	enqueue := func(key string, at time.Time) string {
		t.Helper()
		id, _, err := q.Enqueue(ctx, tasks.Task{Kind: "k", Key: key, RunAt: at})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	claim := func(n int) []string {
		t.Helper()
		ts, err := q.Claim(ctx, "k", n, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tk := range ts {
			ids = append(ids, tk.ID)
		}
		return ids
	}
	now := clk.Now()
	for i := range 20 {
		enqueue(fmt.Sprint("a", i), now.Add(-time.Duration(20-i)*time.Second))
	}
	if got := claim(20); len(got) != 20 {
		t.Fatalf("claimed %d of 20", len(got))
	}
	// Due before everything consumed so far.
	early := enqueue("early", now.Add(-time.Hour))
	if got := claim(5); len(got) != 1 || got[0] != early {
		t.Fatalf("claim after an earlier enqueue = %v, want [%s]", got, early)
	}
	// A future task moved earlier by a second Enqueue of its key.
	moved := enqueue("moved", now.Add(time.Hour))
	if got := claim(5); len(got) != 0 {
		t.Fatalf("claimed a task not yet due: %v", got)
	}
	if again := enqueue("moved", now.Add(-2*time.Hour)); again != moved {
		t.Fatalf("the second Enqueue made a new task %s", again)
	}
	if got := claim(5); len(got) != 1 || got[0] != moved {
		t.Fatalf("claim after moving a task earlier = %v, want [%s]", got, moved)
	}
	// A retried task due in the past, behind later pending ones.
	later := enqueue("later", now.Add(-time.Minute))
	if err := q.Retry(ctx, early, now.Add(-3*time.Hour), "boom"); err != nil {
		t.Fatal(err)
	}
	if got := claim(5); len(got) != 2 || got[0] != early || got[1] != later {
		t.Fatalf("claim after a retry = %v, want [%s %s]", got, early, later)
	}
}
