package transport

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// wsWire is the socket under one WebSocket connection, between the
// WebSocket library and the TCP (or TLS) connection. It gives the
// connection what the library only offers per write, at a cost per write
// (a context and a callback for every frame):
//
//   - a write deadline: every socket write must finish within writeTimeout,
//     or it fails and the connection is closed (a client that stops
//     reading cannot hold a goroutine for ever);
//   - batching: between cork and uncork, frames collect in memory and reach
//     the socket in one write.
//
// Writes are serialised (the library already writes one frame at a time);
// cork and uncork are for one goroutine at a time (wsConn.batch). After a
// socket write fails, every later write fails at once with the same error:
// a half-written frame leaves nothing to say on that connection, not even
// a close frame.
type wsWire struct {
	net.Conn
	timeout time.Duration // per socket write
	mu      sync.Mutex    // held during a socket write and for the rest
	corked  bool
	pending []byte      // frames written while corked
	err     error       // the first failed socket write's
	writing atomic.Bool // a socket write is in progress (for abort)
}

// wsBatchMax bounds the bytes a corked wire holds: beyond it, they are
// written at once and holding starts again.
const wsBatchMax = 64 << 10

// Write writes p to the socket under a fresh write deadline, or, while
// corked, adds it to the pending frames. It may block for the timeout.
func (w *wsWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return w.writeLocked(p)
	}
	w.pending = append(w.pending, p...)
	if len(w.pending) < wsBatchMax {
		return len(p), nil
	}
	_, err := w.writeLocked(w.pending)
	w.pending = w.pending[:0]
	return len(p), err
}

func (w *wsWire) writeLocked(p []byte) (int, error) {
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

// cork holds writes in memory until uncork (up to wsBatchMax bytes). It
// waits for a socket write in progress (at most the timeout). Whoever
// corks must not wait for the peer (close the connection, say) before
// uncork: what it waits for may be held with the batch.
func (w *wsWire) cork() {
	w.mu.Lock()
	w.corked = true
	w.mu.Unlock()
}

// uncork writes what is held in one socket write, under one write
// deadline.
func (w *wsWire) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.writeLocked(w.pending)
	w.pending = w.pending[:0]
	if cap(w.pending) > 2*wsBatchMax {
		w.pending = nil // a frame larger than a batch: do not keep it
	}
	return err
}

// abort drops the connection when a socket write is in progress (a
// stalled client's), as the library does when a write's context ends;
// with no write in progress it does nothing, so a close frame can still
// follow. It does not wait.
func (w *wsWire) abort() {
	if w.writing.Load() {
		_ = w.Conn.Close()
	}
}

// wsHijacker hands the WebSocket library a wsWire instead of the raw
// connection when it hijacks the upgrade request.
type wsHijacker struct {
	http.ResponseWriter
	wire *wsWire // set by a successful Hijack
}

// Hijack takes the connection over and wraps it. Nothing written before
// the upgrade is lost: the server's buffered writer is flushed first.
func (h *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("flushing the upgrade answer: %w", err)
	}
	h.wire = &wsWire{Conn: conn, timeout: writeTimeout}
	return h.wire, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(h.wire, brw.Writer.Size())), nil
}

// Unwrap gives http.ResponseController the writer underneath.
func (h *wsHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
