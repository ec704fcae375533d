package websub_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/websub"
)

// BenchmarkFanOut measures deliveries per second from one topic to 1,000
// webhook subscriptions served by one local receiver. Each iteration
// publishes a burst of events and waits until every subscription has
// acknowledged all of them.
//
//   - burst=1 is the worst case and what this benchmark alone measured
//     before (about 4,000/s on 2 cores): every event is a separate
//     fan-out of 1,000 tasks, each a queue write, a log read, a POST and a
//     durable cursor update, and the next event waits for the last one.
//   - burst=10 is closer to a publisher that keeps going (what `hubbub
//     bench --webhooks` measures black-box): a subscription's pending
//     events join one task run, whose bookkeeping is shared by the burst.
func BenchmarkFanOut(b *testing.B) {
	for _, burst := range []int{1, 10} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) { benchFanOut(b, burst) })
	}
}

func benchFanOut(b *testing.B, burst int) {
	const subs = 1000
	var got atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	e := newEnvRetention(b, b.TempDir(), store.Retention{}, func(o *websub.Options) {
		o.DeliverConcurrency = 128
		o.PerHostConcurrency = 128
	})
	now := time.Now()
	for i := range subs {
		cb := recv.URL + "/cb/" + strconv.Itoa(i)
		s := websub.Subscription{ID: websub.SubscriptionID("bench", cb), Topic: "bench", Callback: cb, LogTopic: "bench",
			State: websub.StateActive, Created: now, Expires: now.Add(time.Hour), LeaseSeconds: 3600}
		if err := e.records.Put(b.Context(), s); err != nil {
			b.Fatal(err)
		}
	}
	e.start()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		drafts := make([]event.Draft, burst)
		for j := range drafts {
			drafts[j] = event.Draft{Topics: []string{"bench"}, Data: []byte(fmt.Sprintf(`{"n":%d}`, i*burst+j))}
		}
		if _, err := e.hub.Publish(b.Context(), drafts); err != nil {
			b.Fatal(err)
		}
		want := int64(subs * burst * (i + 1))
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
