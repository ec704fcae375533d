package broker

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

// randomPattern builds a pattern of 1-6 segments from a small alphabet, so
// that patterns share prefixes and often match.
func randomPattern(r *rand.Rand) string {
	segs := make([]string, 1+r.IntN(6))
	for i := range segs {
		switch k := r.IntN(6); {
		case k == 0:
			segs[i] = "*"
		case k == 1 && (i == 0 || segs[i-1] != "**"):
			segs[i] = "**"
		default:
			segs[i] = string(rune('a' + r.IntN(3)))
		}
	}
	return strings.Join(segs, "/")
}

func randomTopic(r *rand.Rand) string {
	segs := make([]string, 1+r.IntN(7))
	for i := range segs {
		segs[i] = string(rune('a' + r.IntN(3)))
	}
	if r.IntN(10) == 0 {
		segs[0] = "$sys"
	}
	return strings.Join(segs, "/")
}

// TestTrieAgreesWithMatch subscribes random patterns (some subscribers with
// several) and checks that each subscriber is offered exactly the events
// one of its patterns matches, once each; then that Close leaves the trie
// empty.
func TestTrieAgreesWithMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := New()
	type subscriber struct {
		s    *Sub
		pats []*event.Pattern
	}
	var subs []subscriber
	for range 300 {
		var pats []*event.Pattern
		for range 1 + r.IntN(3) {
			p, err := event.CompilePattern(randomPattern(r))
			if err != nil {
				t.Fatal(err)
			}
			pats = append(pats, p)
		}
		pats = append(pats, pats[0]) // the same pattern twice is offered once too
		subs = append(subs, subscriber{b.Subscribe(Spec{Patterns: pats, Limit: 1000}), pats})
	}
	var events []*event.Event
	for i := range 500 {
		events = append(events, ev(randomTopic(r), uint64(i+1)))
	}
	b.Publish(events)
	b.Flush()
	for _, sub := range subs {
		got, err := sub.s.Take(nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for _, e := range events {
			for _, p := range sub.pats {
				if p.Match(e.Topic) {
					want = append(want, e.Seq)
					break
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%v: got %d events, want %d", sub.pats, len(got), len(want))
		}
		for i := range got {
			if got[i].Seq != want[i] {
				t.Fatalf("%v: event %d is seq %d, want %d", sub.pats, i, got[i].Seq, want[i])
			}
		}
	}
	for _, e := range events {
		want := false
		for _, sub := range subs {
			for _, p := range sub.pats {
				want = want || p.Match(e.Topic)
			}
		}
		if got := b.HasSubscribers(e.Topic); got != want {
			t.Fatalf("HasSubscribers(%q) = %v, want %v", e.Topic, got, want)
		}
	}
	for _, sub := range subs {
		sub.s.Close()
	}
	if !b.patterns.empty() || len(b.subs) != 0 {
		t.Fatal("Close left patterns in the trie")
	}
}

// TestPublishVisitsOnlyMatchingPatterns is the regression test for the
// broker part of finding 3: 50,000 pattern subscriptions that do not match
// must not make each publish look at all of them. It counts trie nodes
// visited per event, which must not grow with the subscriptions.
func TestPublishVisitsOnlyMatchingPatterns(t *testing.T) {
	b := New()
	var subs []*Sub
	for i := range 50000 {
		// Mixed shapes, all sharing the topic's depth and none matching it.
		var pat string
		switch i % 4 {
		case 0:
			pat = fmt.Sprintf("room-%d/*", i)
		case 1:
			pat = fmt.Sprintf("*/x-%d", i)
		case 2:
			pat = fmt.Sprintf("**/y-%d", i)
		default:
			pat = fmt.Sprintf("chat/**/z-%d/**", i)
		}
		p, err := event.CompilePattern(pat)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 10}))
	}
	p, _ := event.CompilePattern("chat/*/general")
	match := b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 1000})
	b.walkMu.Lock()
	before := b.patterns.visit
	b.walkMu.Unlock()
	const n = 100
	for i := range n {
		b.Publish([]*event.Event{ev("chat/room-1/general", uint64(i+1))})
	}
	b.Flush()
	b.walkMu.Lock()
	visits := b.patterns.visit - before
	b.walkMu.Unlock()
	// Per event: chat, *, **, chat/*, chat/**, chat/*/general and the
	// ** nodes staying active: a handful, whatever the subscriptions.
	t.Logf("%d trie nodes visited per event", visits/n)
	if per := visits / n; per > 12 {
		t.Fatalf("%d trie nodes visited per event with 50,000 non-matching patterns", per)
	}
	if got, _ := match.Take(nil); len(got) != n {
		t.Fatalf("the matching subscriber got %d events, want %d", len(got), n)
	}
	for _, s := range subs {
		if got, _ := s.Take(nil); len(got) != 0 {
			t.Fatal("a non-matching pattern got an event")
		}
		s.Close()
	}
	match.Close()
	if !b.patterns.empty() {
		t.Fatal("Close left patterns in the trie")
	}
}

// TestDeliverDoesNotAllocatePerPattern: once warm, offering an event to
// pattern subscribers allocates only the event's shared Item.
func TestDeliverDoesNotAllocatePerPattern(t *testing.T) {
	b := New()
	for _, pat := range []string{"a/*/c", "a/**", "**/c", "*/b/*"} {
		p, _ := event.CompilePattern(pat)
		b.Subscribe(Spec{Patterns: []*event.Pattern{p}, Limit: 1 << 20})
	}
	events := []*event.Event{ev("a/b/c", 1)}
	b.deliver(events, math.MaxUint64)
	if n := testing.AllocsPerRun(100, func() { b.deliver(events, math.MaxUint64) }); n > 2 {
		t.Fatalf("deliver allocates %v times", n)
	}
}
