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
// webhook subscriptions served by one local receiver: each iteration
// publishes one event and waits until all 1,000 deliveries are
// acknowledged (each one a POST and a durable cursor update).
func BenchmarkFanOut(b *testing.B) {
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
		e.publish(event.Draft{Topics: []string{"bench"}, Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
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
