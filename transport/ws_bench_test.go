package transport_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/transport"
)

// BenchmarkWSDelivery hands events to the broker and waits until every one
// of 100 WebSocket subscribers has read them from its socket: the whole
// per-delivery path of the WebSocket transport (Next, framing, the socket
// write). One op is one event to every subscriber, ready=k the events the
// broker hands over at once. The clients speak raw RFC 6455 on their
// sockets, so allocations counted are the server's (plus one channel send
// per client and op).
func BenchmarkWSDelivery(b *testing.B) {
	const subscribers = 100
	for _, ready := range []int{1, 8} {
		b.Run(fmt.Sprintf("ready=%d", ready), func(b *testing.B) {
			th, proto := newDeliveryBench(b)
			addr := strings.TrimPrefix(th.srv.URL, "http://")
			done := make(chan int, subscribers)
			for range subscribers {
				c := rawWSDial(b, addr, `{"op":"subscribe","sub":"s","topic":"bench"}`)
				go c.count(ready, done)
			}
			runDeliveries(b, th, proto, ready, subscribers, done)
		})
	}
}

// newDeliveryBench starts a hub for a delivery benchmark and returns it
// with a stored event of topic "bench" to copy.
func newDeliveryBench(b *testing.B) (testHub, event.Event) {
	th := newTestHubOpts(b, store.Retention{}, true, hub.Options{SubscriberBuffer: 1024},
		transport.Options{Heartbeat: time.Hour})
	ctx := context.Background()
	if _, err := th.hub.Publish(ctx, []event.Draft{{Topics: []string{"bench"}, Data: []byte(`{"price":101.25,"sym":"ABC"}`)}}); err != nil {
		b.Fatal(err)
	}
	page, err := th.hub.Log().Read(ctx, "bench", store.Query{Limit: 1})
	if err != nil || len(page.Events) != 1 {
		b.Fatalf("read: %v", err)
	}
	return th, *page.Events[0]
}

// runDeliveries is the timed part of a delivery benchmark: it hands the
// broker copies of proto, ready at a time, until b.N, and after each hand
// waits for every one of the subscribers to report on done (-1: its
// connection failed). It reports ns, write system calls and allocations
// per delivery (the process's: server and clients).
func runDeliveries(b *testing.B, th testHub, proto event.Event, ready, subscribers int, done <-chan int) {
	seq := proto.Seq
	evs := make([]event.Event, ready)
	ptrs := make([]*event.Event, ready)
	writes := syscallWrites(b)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += ready {
		for j := range evs {
			seq++
			evs[j] = proto
			evs[j].Seq = seq
			ptrs[j] = &evs[j]
		}
		th.hub.Broker().Publish(ptrs)
		for range subscribers {
			if n := <-done; n < 0 {
				b.Fatal("a subscriber's connection failed")
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(b.N) * float64(subscribers)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
	if writes >= 0 {
		b.ReportMetric(float64(syscallWrites(b)-writes)/deliveries, "writes/delivery")
	}
}

// syscallWrites is the write system calls this process has made so far
// (syscw in /proc/self/io), or -1 where there is no such file.
func syscallWrites(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				tb.Fatalf("/proc/self/io: %q", line)
			}
			return n
		}
	}
	return -1
}

// rawWS is a WebSocket client on a bare socket: it reads frames into one
// buffer and allocates nothing per frame.
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
	hdr  [8]byte // a frame header's length, kept here not to allocate
}

// rawWSDial opens a WebSocket to addr, sends msg and reads the first text
// frame (the answer to msg).
func rawWSDial(tb testing.TB, addr, msg string) *rawWS {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade: %v %v", resp, err)
	}
	// A masked text frame with a zero mask key (the payload as is).
	frame := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
	if _, err := conn.Write(frame); err != nil {
		tb.Fatal(err)
	}
	c := &rawWS{conn: conn, br: br, buf: make([]byte, 0, 4096)}
	if err := c.next(); err != nil || !strings.Contains(string(c.buf), `"subscribed"`) {
		tb.Fatalf("subscribe: %s %v", c.buf, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c
}

// next reads one data frame's payload into c.buf, skipping control frames.
func (c *rawWS) next() error {
	for {
		h := c.hdr[:2]
		if _, err := io.ReadFull(c.br, h); err != nil {
			return err
		}
		op := h[0]
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, c.hdr[:2]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(c.hdr[:2]))
		case 127:
			if _, err := io.ReadFull(c.br, c.hdr[:8]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(c.hdr[:8])
		}
		if uint64(cap(c.buf)) < n {
			c.buf = make([]byte, n)
		}
		c.buf = c.buf[:n]
		if _, err := io.ReadFull(c.br, c.buf); err != nil {
			return err
		}
		if op&0x08 == 0 { // not a control frame
			return nil
		}
	}
}

// count reads frames and sends on done after every k of them; -1 when the
// connection fails.
func (c *rawWS) count(k int, done chan<- int) {
	for {
		for range k {
			if err := c.next(); err != nil {
				done <- -1
				return
			}
		}
		done <- k
	}
}
