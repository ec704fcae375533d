package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/client"
)

// dialSlow connects to addr for a subscriber
// that does not read.
func dialSlow(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// readRawSSE reads an HTTP SSE answer from conn until the server ends it
// (or the connection's read deadline passes, which fails the test), and
// returns the last id and the seqs of the events of topic, in order.
func readRawSSE(t *testing.T, conn net.Conn, topic string) (string, []uint64) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 64<<10), nil)
	if err != nil {
		t.Fatalf("slow subscriber: reading the answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow subscriber: status %d", resp.StatusCode)
	}
	r := client.NewSSEReader(resp.Body)
	var seqs []uint64
	last := "0" // the id of the last whole event
	for range 1_000_000 {
		ev, err := r.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("slow subscriber: the server did not end the cut-off stream (read %d events, then %v)", len(seqs), err)
			}
			break
		}
		var w wireEvent
		if err := json.Unmarshal([]byte(ev.Data), &w); err != nil {
			t.Fatalf("slow subscriber: data %q: %v", ev.Data, err)
		}
		if w.Topic == topic {
			seqs = append(seqs, w.Seq)
		}
		last = ev.ID
	}
	return last, seqs
}

// collector is an SSE subscriber that reads as fast as it can and, like
// EventSource, reconnects with Last-Event-ID when its stream ends.
type collector struct {
	h      *hubProc
	topic  string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	seqs   []uint64
	errs   []string
	recons int
	notify chan struct{}
}

// newCollector starts a collector and returns once its first connection
// is open.
func newCollector(h *hubProc, topic string) *collector {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	c := &collector{h: h, topic: topic, ctx: ctx, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	h.t.Cleanup(c.close)
	opened := make(chan struct{})
	go c.run(opened)
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
	}
	return c
}

func (c *collector) run(opened chan struct{}) {
	defer close(c.done)
	last := ""
	once := sync.OnceFunc(func() { close(opened) })
	defer once()
	for attempt := 0; attempt < 1000 && c.ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			c.mu.Lock()
			c.recons++
			c.mu.Unlock()
		}
		req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, c.h.URL+"/events?topic="+c.topic, nil)
		req.Header.Set("Accept", "text/event-stream")
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := streamc.Do(req)
		if err != nil {
			c.fail(err.Error())
			continue
		}
		if resp.StatusCode != http.StatusOK {
			c.fail(resp.Status)
			resp.Body.Close()
			continue
		}
		once()
		r := client.NewSSEReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			last = ev.ID
			var w wireEvent
			if ev.Event == "reset" || json.Unmarshal([]byte(ev.Data), &w) != nil {
				c.fail("unexpected frame " + ev.Event + " " + ev.Data)
				continue
			}
			c.mu.Lock()
			c.seqs = append(c.seqs, w.Seq)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
		resp.Body.Close()
	}
}

func (c *collector) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 10 {
		c.errs = append(c.errs, msg)
	}
}

func (c *collector) reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recons
}

// waitFor waits until n events have come (or d passes) and returns the
// seqs received.
func (c *collector) waitFor(t *testing.T, n uint64, d time.Duration) []uint64 {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		got := len(c.seqs)
		c.mu.Unlock()
		if uint64(got) >= n {
			break
		}
		select {
		case <-c.notify:
		case <-timer.C:
			c.mu.Lock()
			t.Errorf("reading subscriber: %d of %d events within %v; errors: %q", len(c.seqs), n, d, c.errs)
			c.mu.Unlock()
			return c.snapshot()
		}
	}
	c.mu.Lock()
	if len(c.errs) > 0 {
		t.Errorf("reading subscriber: %q", c.errs)
	}
	c.mu.Unlock()
	return c.snapshot()
}

func (c *collector) snapshot() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.seqs...)
}

func (c *collector) close() {
	c.cancel()
	<-c.done
}
