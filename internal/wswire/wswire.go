// Package wswire is the socket under a WebSocket connection of the
// github.com/coder/websocket library: it gives the connection a write
// deadline per socket write and batching of frames (cork, uncork), which
// the library only offers per write, at a cost per write. hubbub's
// WebSocket transport and the GRIP proxy's WebSocket-over-HTTP side both
// accept their connections through a Hijacker.
package wswire

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Wire is the socket under one WebSocket connection, between the
// WebSocket library and the TCP (or TLS) connection. It gives the
// connection what the library only offers per write, at a cost per write
// (a context and a callback for every frame):
//
//   - a write deadline: every socket write must finish within the
//     Hijacker's Timeout, or it fails and the connection is closed (a client that stops
//     reading cannot hold a goroutine for ever);
//   - batching: between Cork and Uncork, frames collect in memory and reach
//     the socket in one write.
//
// Writes are serialised (the library already writes one frame at a time);
// Cork and Uncork are for one goroutine at a time (the caller serialises
// them). After a socket write fails, every later write fails at once with the same error:
// a half-written frame leaves nothing to say on that connection, not even
// a close frame.
type Wire struct {
	net.Conn
	timeout time.Duration // per socket write
	mu      sync.Mutex    // held during a socket write and for the rest
	corked  bool
	pending []byte      // frames written while corked
	err     error       // the first failed socket write's
	writing atomic.Bool // a socket write is in progress (for Abort)
}

// BatchMax bounds the bytes a corked wire holds: beyond it, they are
// written at once and holding starts again.
const BatchMax = 64 << 10

// Write writes p to the socket under a fresh write deadline, or, while
// corked, adds it to the pending frames. It may block for the timeout.
func (w *Wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return w.writeLocked(p)
	}
	w.pending = append(w.pending, p...)
	if len(w.pending) < BatchMax {
		return len(p), nil
	}
	_, err := w.writeLocked(w.pending)
	w.pending = w.pending[:0]
	return len(p), err
}

func (w *Wire) writeLocked(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.Conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		w.err = fmt.Errorf("setting the write deadline: %w", err)
		return 0, w.err
	}
	w.writing.Store(true)
	n, err := w.Conn.Write(p)
	w.writing.Store(false)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Cork holds writes in memory until Uncork (up to BatchMax bytes). It
// waits for a socket write in progress (at most the timeout). Whoever
// corks must not wait for the peer (close the connection, say) before
// Uncork: what it waits for may be held with the batch.
func (w *Wire) Cork() {
	w.mu.Lock()
	w.corked = true
	w.mu.Unlock()
}

// Uncork writes what is held in one socket write, under one write
// deadline.
func (w *Wire) Uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.writeLocked(w.pending)
	w.pending = w.pending[:0]
	if cap(w.pending) > 2*BatchMax {
		w.pending = nil // a frame larger than a batch: do not keep it
	}
	return err
}

// Abort drops the connection when a socket write is in progress (a
// stalled client's), as the library does when a write's context ends;
// with no write in progress it does nothing, so a close frame can still
// follow. It does not wait.
func (w *Wire) Abort() {
	if w.writing.Load() {
		_ = w.Conn.Close()
	}
}

// Hijacker hands the WebSocket library a Wire instead of the raw
// connection when it hijacks the upgrade request.
type Hijacker struct {
	http.ResponseWriter
	// Timeout bounds each socket write of the connection.
	Timeout time.Duration
	// Wire is set by a successful Hijack.
	Wire *Wire
}

// Hijack takes the connection over and wraps it. Nothing written before
// the upgrade is lost: the server's buffered writer is flushed first.
func (h *Hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("flushing the upgrade answer: %w", err)
	}
	h.Wire = &Wire{Conn: conn, timeout: h.Timeout}
	return h.Wire, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(h.Wire, brw.Writer.Size())), nil
}

// Unwrap gives http.ResponseController the writer underneath.
func (h *Hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
