package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

// BenchmarkSubscriptionFanout hands one stored event to N live
// subscriptions through the broker and has each take it with Next and copy
// its SSE frame into its own buffer: the whole per-subscriber path of the
// SSE transport short of the socket write. allocs/op must not grow with N.
func BenchmarkSubscriptionFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			f := newHub(b, store.Retention{}, false, hub.Options{SubscriberBuffer: 64})
			ctx := context.Background()
			res := publish(b, f.hub, "firehose", 1)
			page, err := f.log.Read(ctx, "firehose", store.Query{Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			subs := make([]*hub.Subscription, n)
			bufs := make([][]byte, n)
			for i := range subs {
				s, err := f.hub.Subscribe(ctx, hub.SubscribeRequest{Topics: []string{"firehose"}, Cursor: event.Cursor{"firehose": res[0].Position()}})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				subs[i] = s
				bufs[i] = make([]byte, 0, 1024)
			}
			tick := make(chan time.Time)
			e := *page.Events[0]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev := e
				ev.Seq = uint64(i + 2)
				f.broker.Publish([]*event.Event{&ev})
				for j, s := range subs {
					msgs, err := s.Next(ctx, tick)
					if err != nil || len(msgs) != 1 {
						b.Fatalf("next: %v %d", err, len(msgs))
					}
					bufs[j] = append(bufs[j][:0], msgs[0].Item.SSE()...)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}
