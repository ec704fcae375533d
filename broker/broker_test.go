package broker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
)

func ev(topic string, seq uint64) *event.Event {
	return &event.Event{Topic: topic, Epoch: "e", Seq: seq, Type: "message", Time: time.Unix(0, 0), Data: []byte(`{"x":1}`)}
}

func TestExactAndPattern(t *testing.T) {
	b := New()
	p, _ := event.CompilePattern("photos/tag/*")
	exact := b.Subscribe(Spec{Topics: []string{"photos/tag/kitten"}, Limit: 10})
	pat := b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 10})
	other := b.Subscribe(Spec{Topics: []string{"chat"}, Limit: 10})
	b.Publish([]*event.Event{ev("photos/tag/kitten", 1), ev("photos/tag/dog", 1), ev("photos/user/1", 1)})
	b.Flush()
	for name, c := range map[string]struct {
		s    *Sub
		want int
	}{"exact": {exact, 1}, "pattern": {pat, 2}, "other": {other, 0}} {
		got, err := c.s.Take(nil)
		if err != nil || len(got) != c.want {
			t.Errorf("%s: got %d items (%v), want %d", name, len(got), err, c.want)
		}
	}
	// Both subscribers share one Item (and so one encoding) per event.
	b.Publish([]*event.Event{ev("photos/tag/kitten", 2)})
	b.Flush()
	a, _ := exact.Take(nil)
	c, _ := pat.Take(nil)
	if a[0] != c[0] {
		t.Error("subscribers got different Items for one event")
	}
}

func TestCutOffWhenFull(t *testing.T) {
	b := New()
	s := b.Subscribe(Spec{Topics: []string{"a"}, Limit: 3})
	defer s.Close()
	for i := 1; i <= 4; i++ {
		b.Publish([]*event.Event{ev("a", uint64(i))})
	}
	b.Flush()
	select {
	case <-s.Ready():
	default:
		t.Fatal("no signal after publish")
	}
	if _, err := s.Take(nil); !errors.Is(err, ErrSlow) {
		t.Fatalf("err %v, want ErrSlow", err)
	}
	if b.Stats.CutOff.Load() != 1 {
		t.Fatal("cut-off not counted")
	}
}

// TestCutOffPatterns: after an interrupted feed, pattern subscribers are
// sent to resume from the log; the others are not touched.
func TestCutOffPatterns(t *testing.T) {
	b := New()
	p, _ := event.CompilePattern("q/**")
	exact := b.Subscribe(Spec{Topics: []string{"q/a"}, Limit: 10})
	defer exact.Close()
	pat := b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 10})
	defer pat.Close()
	if n := b.CutOffPatterns(); n != 1 {
		t.Fatalf("cut off %d, want the one pattern subscriber", n)
	}
	if _, err := pat.Take(nil); !errors.Is(err, ErrSlow) {
		t.Fatalf("pattern subscriber: %v, want ErrSlow", err)
	}
	b.Publish([]*event.Event{ev("q/a", 1)})
	b.Flush()
	if got, err := exact.Take(nil); err != nil || len(got) != 1 {
		t.Fatalf("concrete subscriber: %d items, %v; want it untouched", len(got), err)
	}
}

func TestCloseUnregisters(t *testing.T) {
	b := New()
	s := b.Subscribe(Spec{Topics: []string{"a"}, Limit: 3})
	s.Close()
	s.Close()
	b.Publish([]*event.Event{ev("a", 1)})
	b.Flush()
	if _, err := s.Take(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	if n := b.Stats.Subscribers.Load(); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
	if len(b.exact) != 0 {
		t.Fatal("topic index not cleaned up")
	}
}

// BenchmarkFanout measures handing one event to N subscribers on one
// topic and each subscriber taking it and copying its shared SSE frame
// into its own write buffer, as the SSE transport does. allocs/op must
// not grow with N: the event is encoded once and shared.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			br := New()
			subs := make([]*Sub, n)
			bufs := make([][]byte, n)
			items := make([][]*event.Item, n)
			for i := range subs {
				subs[i] = br.Subscribe(Spec{Topics: []string{"firehose"}, Limit: 16})
				bufs[i] = make([]byte, 0, 1024)
			}
			e := ev("firehose", 1)
			e.Data = make([]byte, 0, 512)
			e.Data = append(e.Data, `{"title":"`...)
			for len(e.Data) < 500 {
				e.Data = append(e.Data, 'x')
			}
			e.Data = append(e.Data, `"}`...)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Seq = uint64(i + 1)
				br.Publish([]*event.Event{e})
				br.Flush()
				for j, s := range subs {
					items[j], _ = s.Take(items[j][:0])
					bufs[j] = bufs[j][:0]
					for _, it := range items[j] {
						bufs[j] = append(bufs[j], it.SSE()...)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

func TestHasSubscribersAndTopics(t *testing.T) {
	b := New()
	p, _ := event.CompilePattern("photos/**")
	if b.HasSubscribers("a") || len(b.Topics()) != 0 {
		t.Fatal("empty broker reports interest")
	}
	s := b.Subscribe(Spec{Topics: []string{"a"}, Limit: 1})
	ps := b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 1})
	if !b.HasSubscribers("a") || !b.HasSubscribers("photos/x/y") || b.HasSubscribers("b") {
		t.Fatal("HasSubscribers wrong")
	}
	if got := b.Topics(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("Topics = %v", got)
	}
	s.Close()
	ps.Close()
	if b.HasSubscribers("a") || b.HasSubscribers("photos/x") || len(b.Topics()) != 0 {
		t.Fatal("interest left after Close")
	}
}

// SubscribersByLabel counts subscribers by name and by pattern, each once.
func TestSubscribersByLabel(t *testing.T) {
	b := New()
	star, _ := event.CompilePattern("photos/tag/*")
	all, _ := event.CompilePattern("photos/**")
	sys, _ := event.CompilePattern("**")
	subs := []*Sub{
		b.Subscribe(Spec{Topics: []string{"photos/tag/kitten"}, Label: "sse"}),
		b.Subscribe(Spec{Patterns: []*event.Pattern{star}, Label: "ws"}),
		b.Subscribe(Spec{Patterns: []*event.Pattern{star, all}, Label: "ws"}),                                   // two patterns: once
		b.Subscribe(Spec{Topics: []string{"photos/tag/kitten"}, Patterns: []*event.Pattern{all}, Label: "sse"}), // name and pattern: once
		b.Subscribe(Spec{Topics: []string{"chat"}, Label: "sse"}),
		b.Subscribe(Spec{Patterns: []*event.Pattern{sys}, Label: "poll"}),
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	for topic, want := range map[string]map[string]int{
		"photos/tag/kitten": {"sse": 2, "ws": 2, "poll": 1},
		"photos/user/1":     {"sse": 1, "ws": 1, "poll": 1},
		"chat":              {"sse": 1, "poll": 1},
		"$sys/stats/n":      {},
	} {
		got := b.SubscribersByLabel(topic)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", topic, got, want)
		}
	}
}
