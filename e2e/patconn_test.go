package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A pattern subscriber over any transport, as a careful client writes it:
// it keeps the cursor after what it has taken, and resumes with it.

// patItem is one thing a pattern subscription delivered: an event (topic,
// seq) or a reset.
type patItem struct {
	topic string
	seq   uint64
	reset *resetJSON
}

func (it patItem) String() string {
	if it.reset != nil {
		return fmt.Sprintf("reset(%s %s %s)", it.reset.Topic, it.reset.Reason, it.reset.Cursor)
	}
	return fmt.Sprintf("%s#%d", it.topic, it.seq)
}

// patConn is one connection of a pattern subscriber. Items come in order
// from a reading goroutine; cursor is the cursor after the items taken so
// far (with stream and poll, items are released a whole batch at a time,
// once the cursor after them is known, as a client must do).
type patConn struct {
	name   string
	items  chan patItem
	done   chan struct{} // closed when the reader ends
	cancel context.CancelFunc
	mu     sync.Mutex
	cur    string   // the cursor after the items handed to the test
	queue  []string // cursors after each queued item, in order
	err    error
}

var transportsUnderTest = []string{"sse", "ws", "poll", "stream"}

// dialPattern subscribes to pattern at base over transport, resuming from
// cursor ("" for a fresh subscription).
func dialPattern(t testing.TB, transport, base, pattern, cursor string) *patConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &patConn{name: transport, items: make(chan patItem, 100000), done: make(chan struct{}), cancel: cancel, cur: cursor}
	ready := make(chan error, 1)
	go func() {
		defer close(c.done)
		var err error
		switch transport {
		case "sse":
			err = c.readSSE(ctx, base, pattern, cursor, ready)
		case "ws":
			err = c.readWS(ctx, base, pattern, cursor, ready)
		case "poll":
			err = c.readPoll(ctx, base, pattern, cursor, ready)
		case "stream":
			err = c.readStream(ctx, base, pattern, cursor, ready)
		default:
			err = fmt.Errorf("unknown transport %q", transport)
			ready <- err
		}
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}()
	select {
	case err := <-ready:
		if err != nil {
			cancel()
			t.Fatalf("%s subscription to %s at %s: %v", transport, pattern, base, err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("%s subscription to %s at %s: not ready within 30s", transport, pattern, base)
	}
	t.Cleanup(c.close)
	return c
}

// emit queues an item with the cursor after it.
func (c *patConn) emit(it patItem, cursor string) {
	c.mu.Lock()
	c.queue = append(c.queue, cursor)
	c.mu.Unlock()
	c.items <- it
}

// emitBatch queues items known only as a whole: the cursor after the
// last is after, and before it the one before the batch.
func (c *patConn) emitBatch(items []patItem, before, after string) {
	if len(items) == 0 {
		c.setCursor(after)
		return
	}
	for i, it := range items {
		cur := before
		if i == len(items)-1 {
			cur = after
		}
		c.emit(it, cur)
	}
}

// lastCursor is the cursor after everything queued.
func (c *patConn) lastCursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		return c.queue[len(c.queue)-1]
	}
	return c.cur
}

// setCursor records a cursor with no item (the start of a stream, an empty
// poll).
func (c *patConn) setCursor(cursor string) {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.cur = cursor
	} else {
		c.queue[len(c.queue)-1] = cursor
	}
	c.mu.Unlock()
}

// next takes the next item, or fails after d.
func (c *patConn) next(t testing.TB, d time.Duration) patItem {
	t.Helper()
	it, err := c.tryNext(d)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return it
}

func (c *patConn) tryNext(d time.Duration) (patItem, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case it := <-c.items:
		c.take()
		return it, nil
	case <-timer.C:
		return patItem{}, fmt.Errorf("nothing within %v: %w", d, errTimeout)
	case <-c.done:
		select {
		case it := <-c.items:
			c.take()
			return it, nil
		default:
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return patItem{}, fmt.Errorf("the connection ended: %v", c.err)
	}
}

func (c *patConn) take() {
	c.mu.Lock()
	c.cur, c.queue = c.queue[0], c.queue[1:]
	c.mu.Unlock()
}

// cursor is the cursor after the items taken.
func (c *patConn) cursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// close ends the connection; what it queued before can still be taken
// (see rest).
func (c *patConn) close() {
	c.cancel()
	<-c.done
}

// rest closes the connection and takes every item it had queued: the
// cursor is then the one after all of them.
func (c *patConn) rest() []patItem {
	c.close()
	var out []patItem
	for {
		select {
		case it := <-c.items:
			c.take()
			out = append(out, it)
		default:
			return out
		}
	}
}

func (c *patConn) readSSE(ctx context.Context, base, pattern, cursor string, ready chan<- error) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?topic="+url.QueryEscape(pattern), nil)
	req.Header.Set("Accept", "text/event-stream")
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	resp, err := streamc.Do(req)
	if err != nil {
		ready <- err
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		err := fmt.Errorf("status %d: %s", resp.StatusCode, b)
		ready <- err
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var id, typ, data string
	var hasID, first = false, true
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch {
			case data != "":
				var it patItem
				if typ == "reset" {
					var r resetJSON
					if err := json.Unmarshal([]byte(data), &r); err != nil {
						return fmt.Errorf("reset %q: %v", data, err)
					}
					it.reset = &r
				} else {
					var w wireEvent
					if err := json.Unmarshal([]byte(data), &w); err != nil {
						return fmt.Errorf("event %q: %v", data, err)
					}
					it.topic, it.seq = w.Topic, w.Seq
				}
				c.emit(it, id)
			case hasID:
				c.setCursor(id) // an id alone: the cursor, no event
			}
			if first && hasID {
				first = false
				ready <- nil
			}
			typ, data, hasID = "", "", false
		case strings.HasPrefix(line, "id: "):
			id, hasID = strings.TrimPrefix(line, "id: "), true
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if first {
		ready <- errors.New("the stream ended before its first id")
	}
	return sc.Err()
}

func (c *patConn) readWS(ctx context.Context, base, pattern, cursor string, ready chan<- error) error {
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		ready <- err
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(8 << 20)
	m, _ := json.Marshal(map[string]string{"op": "subscribe", "sub": "p", "topic": pattern, "after": cursor})
	if err := conn.Write(ctx, websocket.MessageText, m); err != nil {
		ready <- err
		return err
	}
	subscribed := false
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if !subscribed {
				ready <- err
			}
			return err
		}
		var in struct {
			Op     string `json:"op"`
			Cursor string `json:"cursor"`
			Topic  string `json:"topic"`
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return fmt.Errorf("message %q: %v", b, err)
		}
		switch in.Op {
		case "subscribed":
			c.setCursor(in.Cursor)
			subscribed = true
			ready <- nil
		case "event":
			c.emit(patItem{topic: in.Topic, seq: in.Seq}, in.Cursor)
		case "reset":
			// A reset carries its own position, not the whole cursor;
			// the cursor after it comes with the next event.
			c.emit(patItem{reset: &resetJSON{Topic: in.Topic, Reason: in.Reason, Cursor: in.Cursor}}, c.lastCursor())
		default:
			return fmt.Errorf("unexpected message %s", b)
		}
	}
}

func (c *patConn) readStream(ctx context.Context, base, pattern, cursor string, ready chan<- error) error {
	u := base + "/events?wait=stream&topic=" + url.QueryEscape(pattern)
	if cursor != "" {
		u += "&after=" + url.QueryEscape(cursor)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := streamc.Do(req)
	if err != nil {
		ready <- err
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		err := fmt.Errorf("status %d: %s", resp.StatusCode, b)
		ready <- err
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var batch []patItem // held until the cursor after them comes
	first := true
	for sc.Scan() {
		var line struct {
			ID     string     `json:"id"`
			Topic  string     `json:"topic"`
			Seq    uint64     `json:"seq"`
			Cursor *string    `json:"cursor"`
			Reset  *resetJSON `json:"reset"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("line %q: %v", sc.Text(), err)
		}
		switch {
		case line.ID != "":
			batch = append(batch, patItem{topic: line.Topic, seq: line.Seq})
		case line.Reset != nil:
			batch = append(batch, patItem{reset: line.Reset})
		case line.Cursor != nil:
			if first {
				first = false
				c.setCursor(*line.Cursor)
				ready <- nil
				continue
			}
			c.emitBatch(batch, c.lastCursor(), *line.Cursor)
			batch = batch[:0]
		}
	}
	if first {
		ready <- errors.New("the stream ended before its first cursor")
	}
	return sc.Err()
}

func (c *patConn) readPoll(ctx context.Context, base, pattern, cursor string, ready chan<- error) error {
	first := true
	for {
		u := base + "/events?wait=poll&timeout=2&topic=" + url.QueryEscape(pattern)
		if cursor != "" {
			u += "&after=" + url.QueryEscape(cursor)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := streamc.Do(req)
		if err != nil {
			if first {
				ready <- err
			}
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var er struct {
			eventsResponse
			Resets []resetJSON `json:"resets"`
		}
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if err == nil {
			err = json.Unmarshal(b, &er)
		}
		if err != nil {
			if first {
				ready <- err
			}
			return err
		}
		resets := er.Resets
		if len(resets) == 0 && er.Reset != nil {
			resets = []resetJSON{*er.Reset}
		}
		// Resets come first in an answer (they precede the events they
		// concern; the order between topics does not matter).
		var all []patItem
		for i := range resets {
			all = append(all, patItem{reset: &resets[i]})
		}
		for _, e := range er.Events {
			all = append(all, patItem{topic: e.Topic, seq: e.Seq})
		}
		c.emitBatch(all, cursor, er.Cursor)
		cursor = er.Cursor
		if first {
			first = false
			ready <- nil
		}
	}
}
