package hub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// BenchmarkPublishLatency publishes one event at a time through the real
// path (Hub.Publish, the embedded store, its commit listener, the broker)
// with 0, 10k and 100k live pattern subscriptions (random 3-6 segments of
// literals, '*' and '**') plus one adversarial '**'-heavy pattern, every
// tenth topic being 500 segments long. It reports the acknowledgement's
// latency (ack-p50/p99) and the time until a catch-all subscriber has the
// event (deliver-p50/p99).
func BenchmarkPublishLatency(b *testing.B) {
	for _, n := range []int{0, 10000, 100000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			f := newHub(b, store.Retention{}, true, hub.Options{SubscriberBuffer: 64})
			ctx := context.Background()
			r := rand.New(rand.NewPCG(uint64(n), 7))
			word := func() string { return fmt.Sprintf("w%d", r.IntN(200)) }
			for i := 0; i <= n; i++ {
				pat := "**/a/**/a/**/a/**/b"
				if i < n {
					segs := make([]string, 3+r.IntN(4))
					for j := range segs {
						switch k := r.IntN(8); {
						case k == 0:
							segs[j] = "*"
						case k == 1 && (j == 0 || segs[j-1] != "**"):
							segs[j] = "**"
						default:
							segs[j] = word()
						}
					}
					pat = strings.Join(segs, "/")
				}
				s, err := f.hub.Subscribe(ctx, hub.SubscribeRequest{Topics: []string{pat}})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
			}
			all, err := f.hub.Subscribe(ctx, hub.SubscribeRequest{Topics: []string{"**"}, Buffer: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer all.Close()
			long := strings.Repeat("a/", 499) + "a"
			topics := make([]string, 1000)
			for i := range topics {
				if i%10 == 0 {
					topics[i] = long
					continue
				}
				segs := make([]string, 3+r.IntN(4))
				for j := range segs {
					segs[j] = word()
				}
				topics[i] = strings.Join(segs, "/")
			}
			acks := make([]time.Duration, 0, b.N)
			delivered := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := f.hub.Publish(ctx, []event.Draft{{Topics: []string{topics[i%len(topics)]}, Data: []byte(`{}`)}}); err != nil {
					b.Fatal(err)
				}
				acks = append(acks, time.Since(start))
				for got := 0; got == 0; {
					msgs, err := all.Next(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					got = len(msgs)
				}
				delivered = append(delivered, time.Since(start))
			}
			b.StopTimer()
			for name, ds := range map[string][]time.Duration{"ack": acks, "deliver": delivered} {
				slices.Sort(ds)
				b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), name+"-p50-µs")
				b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), name+"-p99-µs")
			}
		})
	}
}
