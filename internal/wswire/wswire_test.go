package wswire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// recConn records the socket writes made to it.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

func TestWSWireCorkJoinsWrites(t *testing.T) {
	rc := &recConn{}
	w := &Wire{Conn: rc, timeout: time.Minute}
	mustWrite := func(s string) {
		t.Helper()
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("a")
	w.Cork()
	mustWrite("b")
	mustWrite("c")
	if len(rc.writes) != 1 {
		t.Fatalf("writes while corked reached the socket: %q", rc.writes)
	}
	if err := w.Uncork(); err != nil {
		t.Fatal(err)
	}
	w.Cork()
	if err := w.Uncork(); err != nil { // nothing held: no write
		t.Fatal(err)
	}
	mustWrite("d")
	want := []string{"a", "bc", "d"}
	if len(rc.writes) != len(want) {
		t.Fatalf("socket writes %q, want %q", rc.writes, want)
	}
	for i, s := range want {
		if string(rc.writes[i]) != s {
			t.Fatalf("socket writes %q, want %q", rc.writes, want)
		}
	}
}

func TestWSWireCorkBounded(t *testing.T) {
	rc := &recConn{}
	w := &Wire{Conn: rc, timeout: time.Minute}
	w.Cork()
	frame := bytes.Repeat([]byte("x"), 1000)
	for range 2 * BatchMax / len(frame) {
		if _, err := w.Write(frame); err != nil {
			t.Fatal(err)
		}
		if len(w.pending) >= BatchMax {
			t.Fatalf("holding %d bytes, more than %d", len(w.pending), BatchMax)
		}
	}
	if err := w.Uncork(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range rc.writes {
		total += len(b)
	}
	if total != 2*BatchMax/len(frame)*len(frame) || len(rc.writes) < 2 {
		t.Fatalf("%d bytes in %d writes", total, len(rc.writes))
	}
}

// A peer that never reads: the write fails at its deadline, and so does
// every write after it, at once.
func TestWSWireDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := &Wire{Conn: a, timeout: 50 * time.Millisecond}
	if _, err := w.Write([]byte("stuck")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: %v, want a deadline error", err)
	}
	done := make(chan struct{})
	go func() { // a reader now: a new write would get through
		defer close(done)
		_, _ = io.Copy(io.Discard, b)
	}()
	if _, err := w.Write([]byte("later")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after a failed one: %v, want the same error", err)
	}
	w.Cork()
	if _, err := w.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	if err := w.Uncork(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("uncork after a failed write: %v, want the same error", err)
	}
	a.Close()
	<-done
}

// abort drops the connection under a write that is stuck, and does
// nothing without one.
func TestWSWireAbort(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := &Wire{Conn: a, timeout: time.Hour}
	w.Abort() // no write in progress: the connection stays
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(b, make([]byte, 2))
		read <- err
	}()
	if _, err := w.Write([]byte("ok")); err != nil {
		t.Fatalf("write after an abort without a write in progress: %v", err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("stuck"))
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !w.writing.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the write never started")
		}
		time.Sleep(time.Millisecond) // polling for the event, with a deadline
	}
	w.Abort()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("an aborted write succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("abort did not end the stuck write")
	}
}
