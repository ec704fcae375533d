package embedded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

// A checkpoint taken while appends run holds every event acknowledged
// before it began, and each topic's log in it is a gap-free prefix.
func TestCheckpointUnderAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := embedded.Open(filepath.Join(dir, "log"), store.Config{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const topics = 3
	var acked [topics]atomic.Uint64
	var ready [topics]chan struct{} // closed at each topic's 50th ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range topics {
		ready[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := s.Append(ctx, []event.Draft{{Topics: []string{fmt.Sprint("t", i)}, Data: fmt.Appendf(nil, "%d", n)}})
				if err != nil {
					t.Error(err)
					return
				}
				acked[i].Store(res[0].Seq)
				if n == 50 {
					close(ready[i])
				}
			}
		}()
	}
	for i := range ready {
		select {
		case <-ready[i]:
		case <-time.After(30 * time.Second):
			t.Fatalf("topic %d: fewer than 50 appends in 30s", i)
		}
	}
	var before [topics]uint64
	for i := range before {
		before[i] = acked[i].Load()
	}
	cp := filepath.Join(dir, "checkpoint")
	err = s.Checkpoint(cp)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(cp); err == nil {
		t.Error("a checkpoint into an existing directory succeeded")
	}

	c, err := embedded.Open(cp, store.Config{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range topics {
		topic := fmt.Sprint("t", i)
		page, err := c.Read(ctx, topic, store.Query{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(page.Events)) < before[i] || page.Head.Last != uint64(len(page.Events)) {
			t.Fatalf("%s: %d events in the checkpoint (head %+v), %d acknowledged before it", topic, len(page.Events), page.Head, before[i])
		}
		for j, e := range page.Events {
			if e.Seq != uint64(j+1) || string(e.Data) != fmt.Sprint(j+1) {
				t.Fatalf("%s: event %d is seq %d data %q", topic, j, e.Seq, e.Data)
			}
		}
	}
	_ = s.Close()
	if err := s.Checkpoint(filepath.Join(dir, "late")); err == nil {
		t.Error("a closed store made a checkpoint")
	}
}

// RenewEpochs gives every topic a new epoch, in its head and its
// latest-by-key entries, and keeps everything else.
func TestRenewEpochs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := embedded.Open(dir, store.Config{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, []event.Draft{
		{Topics: []string{"a", "b"}, Key: "doc", Data: []byte(`1`)},
		{Topics: []string{"a"}, Data: []byte(`2`), IdempotencyKey: "once"},
	})
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]string{res[0].Topic: res[0].Epoch, res[1].Topic: res[1].Epoch}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	renewed, err := embedded.RenewEpochs(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(renewed) != 2 || renewed[old["a"]] == "" || renewed[old["a"]] == old["a"] || renewed[old["b"]] == renewed[old["a"]] {
		t.Fatalf("renewed = %v, old = %v", renewed, old)
	}

	s, err = embedded.Open(dir, store.Config{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for topic, ep := range old {
		h, err := s.Head(ctx, topic)
		if err != nil || h.Epoch != renewed[ep] {
			t.Errorf("%s: head %+v (%v), want epoch %s", topic, h, err, renewed[ep])
		}
		e, ok, err := s.Latest(ctx, topic, "doc")
		if err != nil || !ok || e.Epoch != renewed[ep] || string(e.Data) != "1" {
			t.Errorf("%s: latest %+v %v %v, want epoch %s", topic, e, ok, err, renewed[ep])
		}
	}
	page, err := s.Read(ctx, "a", store.Query{Limit: 10})
	if err != nil || len(page.Events) != 2 || page.Events[1].Epoch != renewed[old["a"]] {
		t.Fatalf("read a: %+v, %v", page, err)
	}
	// Idempotency keys survive: a repeat stores nothing and answers the
	// first result, under the new epoch.
	again, err := s.Append(ctx, []event.Draft{{Topics: []string{"a"}, Data: []byte(`2`), IdempotencyKey: "once"}})
	if err != nil || !again[0].Duplicate || again[0].Seq != 2 || again[0].Epoch != renewed[old["a"]] {
		t.Errorf("repeat after renewal: %+v, %v", again, err)
	}
	// The store must not be open.
	if _, err := embedded.RenewEpochs(dir, nil); err == nil {
		t.Error("RenewEpochs ran on an open store")
	}
	if _, err := embedded.RenewEpochs(filepath.Join(dir, "nothing"), nil); err == nil {
		t.Error("RenewEpochs on a missing directory succeeded")
	}
}
