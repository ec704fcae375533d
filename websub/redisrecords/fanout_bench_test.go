package redisrecords_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/store"
	rstore "github.com/hubbub/hubbub/store/redis"
	"github.com/hubbub/hubbub/tasks"
	rtasks "github.com/hubbub/hubbub/tasks/redis"
	"github.com/hubbub/hubbub/websub"
)

// BenchmarkFanOutRedis is websub's BenchmarkFanOut with everything in
// Redis, as a node of a several-node deployment runs it: the log
// (store/redis), the task queue (tasks/redis) and the records. Each
// iteration publishes one event and waits until all 1,000 subscriptions
// (one local receiver) acknowledged it.
func BenchmarkFanOutRedis(b *testing.B) {
	const subs = 1000
	prefix := newPrefix(b)
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	var ws atomic.Pointer[websub.Hub]
	br := broker.New()
	st, err := rstore.Open(ctx, redistest.URL(), store.Config{OnCommit: func(evs []*event.Event) {
		br.Publish(evs)
		if w := ws.Load(); w != nil {
			w.OnCommit(evs)
		}
	}}, rstore.WithPrefix(prefix), rstore.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	q, err := rtasks.Open(ctx, redistest.URL(), rtasks.WithPrefix(prefix), rtasks.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	recs := open(b, prefix)
	runner := tasks.NewRunner(q, tasks.Options{Logger: quiet})
	w, err := websub.New(websub.Options{Hub: hub.New(st, br, hub.Options{}), Log: st, Records: recs, Tasks: runner,
		AllowPrivate: true, Logger: quiet, DeliverConcurrency: 128, PerHostConcurrency: 128})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	w.Register(runner)
	now := time.Now()
	for i := range subs {
		cb := recv.URL + "/cb/" + strconv.Itoa(i)
		s := websub.Subscription{ID: websub.SubscriptionID("bench", cb), Topic: "bench", Callback: cb, LogTopic: "bench",
			State: websub.StateActive, Created: now, Expires: now.Add(time.Hour), LeaseSeconds: 3600}
		if err := recs.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	ws.Store(w)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	defer func() { stop(); <-done }()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := st.Append(ctx, []event.Draft{{Topics: []string{"bench"}, Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}}); err != nil {
			b.Fatal(err)
		}
		want := int64(subs * (i + 1))
		deadline := time.Now().Add(time.Minute)
		for got.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d deliveries", got.Load(), want)
			}
			time.Sleep(time.Millisecond) // polling a counter, not synchronising
		}
	}
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "deliveries/s")
}
