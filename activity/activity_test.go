package activity

import (
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
)

func TestTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := New(16, func() time.Time { return now })
	for i := range 120 { // 2 events/s on busy for a minute
		tr.Record([]*event.Event{{Topic: "busy", Seq: uint64(i + 1), Time: now}})
		now = now.Add(500 * time.Millisecond)
	}
	tr.Record([]*event.Event{{Topic: "quiet", Seq: 1, Time: now}})
	top := tr.Top(10)
	if len(top) != 2 || top[0].Topic != "busy" || top[0].Events != 120 || top[0].LastSeq != 120 {
		t.Fatalf("top = %+v", top)
	}
	if r := top[0].RatePerMin; r < 50 || r > 120 {
		t.Fatalf("busy rate %v/min, want about 120 and decaying up to half", r)
	}
	now = now.Add(10 * halfLife)
	if r := tr.Top(1)[0].RatePerMin; r > 0.2 {
		t.Fatalf("rate after ten half-lives: %v", r)
	}
	for i := range 40 {
		tr.Record([]*event.Event{{Topic: fmt.Sprint("t", i), Time: now}})
	}
	if n := len(tr.Top(1000)); n > 16 {
		t.Fatalf("%d topics kept, bound is 16", n)
	}
}
