package transport

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// connWriter is a ResponseWriter straight onto a TCP connection, with the
// deadline and flush methods http.ResponseController looks for.
type connWriter struct {
	net.Conn
	deadlines int
}

func (c *connWriter) Header() http.Header { return http.Header{} }
func (c *connWriter) WriteHeader(int)     {}
func (c *connWriter) Flush()              {}
func (c *connWriter) SetWriteDeadline(t time.Time) error {
	c.deadlines++
	return c.Conn.SetWriteDeadline(t)
}

// loopback returns the writing end of a TCP connection on 127.0.0.1 whose
// other end is drained until the test ends.
func loopback(tb testing.TB) *connWriter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &connWriter{Conn: c}
}

// A live stream moves its write deadline once per half writeTimeout, not
// once per write, and every write still has a deadline at least half of
// writeTimeout away.
func TestLiveWriterMovesDeadlineRarely(t *testing.T) {
	cw := loopback(t)
	lw := newLiveWriter(cw)
	for range 100 {
		if err := lw.write([]byte("data: x\n\n")); err != nil {
			t.Fatal(err)
		}
		if left := time.Until(lw.until); left < writeTimeout/2 || left > writeTimeout {
			t.Fatalf("write deadline %v away", left)
		}
	}
	if cw.deadlines != 1 {
		t.Fatalf("%d deadlines set for 100 writes within a second, want 1", cw.deadlines)
	}
	lw.until = time.Now().Add(writeTimeout/2 - time.Millisecond) // as if 15 s had passed
	if err := lw.write([]byte("data: x\n\n")); err != nil || cw.deadlines != 2 {
		t.Fatalf("an old deadline was not moved: %v, %d set", err, cw.deadlines)
	}
}

// BenchmarkLiveWrite compares setting the deadline before every write
// (what SSE and NDJSON streams did) with liveWriter, on a real TCP
// connection: the difference is the poller timer update per write.
func BenchmarkLiveWrite(b *testing.B) {
	frame := []byte("id: 3f9c0e1a2b4d5e6f:42\ndata: {\"topic\":\"t\",\"data\":{\"n\":1}}\n\n")
	b.Run("deadline-every-write", func(b *testing.B) {
		cw := loopback(b)
		rc := http.NewResponseController(cw)
		b.ReportAllocs()
		for b.Loop() {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := cw.Write(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("deadline-alone", func(b *testing.B) {
		rc := http.NewResponseController(loopback(b))
		for b.Loop() {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
	})
	b.Run("liveWriter", func(b *testing.B) {
		lw := newLiveWriter(loopback(b))
		b.ReportAllocs()
		for b.Loop() {
			if err := lw.write(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
}
