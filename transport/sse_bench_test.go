package transport_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkSSEDelivery is BenchmarkWSDelivery for Server-Sent Events, in
// the full and the compact event shape: 100 subscribers on raw sockets
// that count data lines without allocating, so the allocations counted
// are the server's (plus one channel send per client and op).
func BenchmarkSSEDelivery(b *testing.B) {
	const subscribers = 100
	for _, compact := range []bool{false, true} {
		for _, ready := range []int{1, 8} {
			b.Run(fmt.Sprintf("compact=%v/ready=%d", compact, ready), func(b *testing.B) {
				th, proto := newDeliveryBench(b)
				addr := strings.TrimPrefix(th.srv.URL, "http://")
				query := "topic=bench"
				if compact {
					query += "&compact=1"
				}
				done := make(chan int, subscribers)
				for range subscribers {
					c := rawSSEDial(b, addr, query)
					go c.count(ready, done)
				}
				runDeliveries(b, th, proto, ready, subscribers, done)
			})
		}
	}
}

// rawSSE is an SSE client on a bare socket.
type rawSSE struct {
	br *bufio.Reader
}

// rawSSEDial opens GET /events?query as an event stream on addr and
// reads the answer's header.
func rawSSEDial(tb testing.TB, addr, query string) *rawSSE {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	fmt.Fprintf(conn, "GET /events?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", query, addr)
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("subscribe: %v %v", resp, err)
	}
	// The body is chunked; counting "data:" at the start of a line is
	// enough here, as no event's JSON holds a newline and chunk sizes
	// are hex digits.
	return &rawSSE{br: br}
}

// count reads lines and sends on done after every k data lines; -1 when
// the connection fails.
func (c *rawSSE) count(k int, done chan<- int) {
	n := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			done <- -1
			return
		}
		if bytes.HasPrefix(line, []byte("data:")) {
			if n++; n == k {
				done <- k
				n = 0
			}
		}
	}
}
