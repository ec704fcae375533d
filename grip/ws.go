package grip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/grip/wsevents"
	"github.com/hubbub/hubbub/internal/wswire"
)

// WebSocket-over-HTTP (Pushpin's protocol, see package wsevents): hubbub
// holds the client's WebSocket and talks to the origin in POSTs of
// application/websocket-events, one request at a time per connection. The
// first carries OPEN and the client's handshake headers; the origin's
// answer decides the handshake (OPEN accepts; any other status is the
// client's answer). Later requests carry what the client sent, batched;
// the answers carry what to send back. An origin that answers with
// "Sec-WebSocket-Extensions: grip" turns on GRIP: its TEXT messages that
// start with "c:" are control messages (subscribe, unsubscribe, detach,
// keep-alive), and only messages that start with the message prefix ("m:",
// or the extension's message-prefix parameter) reach the client, without
// the prefix. Channels are hubbub topics: a subscribed connection gets the
// ws-message format of every item published to them (FormatsOf).

// Limits of one WebSocket-over-HTTP connection. Pushpin's own bounds are
// the model: 200,000 bytes of client messages waiting for the origin, 1 MB
// of answer, 100 kB of a refusal's body.
const (
	// wsMaxMessage bounds one client message; a larger one closes the
	// connection with 1009 (message too big).
	wsMaxMessage = 64 << 10
	// wsMaxQueued and wsMaxQueuedEvents bound the client messages waiting
	// for the origin (one request is outstanding at a time). Past them
	// hubbub stops reading from the client until the origin catches up.
	wsMaxQueued       = 200_000
	wsMaxQueuedEvents = 1000
	// wsMaxEventsPerRequest bounds the events of one POST to the origin.
	wsMaxEventsPerRequest = 100
	// wsMaxRejectBody bounds the body of an origin's refusal passed to the
	// client.
	wsMaxRejectBody = 100_000
	// WSMaxChannels bounds the channels one connection is subscribed to;
	// past it a subscribe is ignored (and logged).
	WSMaxChannels = 100
	// wsMaxMeta bounds the Set-Meta-* fields kept per connection, and
	// wsMaxMetaBytes their names and values together.
	wsMaxMeta      = 32
	wsMaxMetaBytes = 8 << 10
	// wsMinKeepAlive is the least Keep-Alive-Interval honoured (Pushpin's).
	wsMinKeepAlive = 20 * time.Second
	// wsPingEvery: hubbub pings the client this often and drops it when no
	// pong comes within as long again.
	wsPingEvery = 30 * time.Second
	// wsWriteTimeout bounds each write to the client.
	wsWriteTimeout = 10 * time.Second
	// wsRetries: a request that could not reach the origin (connection
	// refused, say) is tried again this many times, 1 s, 2 s, 4 s ...
	// apart, as Pushpin does, before the client is closed with 1011.
	wsRetries = 5
)

// Names of the GRIP WebSocket limits in metrics: LimitWSConns of the
// connection limit, LimitWSChannels of the channels-per-connection limit.
const (
	LimitWSConns    = "grip_ws_conns"
	LimitWSChannels = "grip_ws_channels"
	// LimitWSMessage names the client message size limit.
	LimitWSMessage = "grip_ws_message"
)

// GRIP message prefixes of the origin's TEXT events.
const (
	controlPrefix        = "c:"
	defaultMessagePrefix = "m:"
)

// wsConn is one client WebSocket and its conversation with the origin.
//
// Goroutines: the handler runs the origin loop (one request at a time);
// readLoop reads the client; one pump per subscribed channel delivers
// publishes; pingLoop and (once the origin sets a keep-alive)
// keepAliveLoop write to the client. Writes to the
// client are safe from all of them (the library serialises frames).
type wsConn struct {
	p      *Proxy
	r      *http.Request // the upgrade request, replayed to the origin
	origin *url.URL
	cid    string
	c      *websocket.Conn
	wire   *wswire.Wire // the socket: write deadline and batching
	wctx   context.Context
	// batch is held by the pump that has the wire corked.
	batch  sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// wake: the origin loop has work (queued events, a state change);
	// room: the queue has room for the reader again.
	wake, room chan struct{}
	// lastOut is when a message last went to the client (unix ns), for
	// keep-alive mode "idle".
	lastOut atomic.Int64
	// kaChange wakes keepAliveLoop when keep-alive is set or cleared;
	// kaStart starts it, at the first keep-alive control message.
	kaChange chan struct{}
	kaStart  sync.Once
	// stalls counts the reader's starts and ends of waiting for room in
	// the queue: odd while it waits, when a client's pong cannot be read.
	stalls atomic.Int64

	closeOnce sync.Once
	// closing is the code hubbub closed the client with (0 before):
	// whoever reads the client's answer to it, the origin hears CLOSE.
	closing atomic.Int32

	mu sync.Mutex
	// queue holds client events for the origin; queued counts their bytes.
	queue  []wsevents.Event
	queued int
	// end is the client's CLOSE or DISCONNECT once the client is gone.
	end *wsevents.Event
	// originDone: the origin closed or dropped the connection, or failed:
	// it is told nothing more.
	originDone bool
	detached   bool
	grip       bool
	prefix     []byte
	meta       [][2]string // Set-Meta-* fields, sent back as Meta-*
	keepAlive  time.Duration
	ka         *wsKeepAlive
	channels   map[string]context.CancelFunc
}

// serveWebSocket serves a client WebSocket as WebSocket-over-HTTP to the
// origin of its path. It returns when the connection has ended.
func (p *Proxy) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	origin := p.originFor(r.URL.Path)
	if origin == nil {
		plainError(w, http.StatusBadGateway, "no origin serves this path")
		return
	}
	// A handshake the library would refuse is refused before the origin
	// is asked (it would get OPEN, then DISCONNECT).
	if r.Method != http.MethodGet || r.Header.Get("Sec-WebSocket-Key") == "" {
		plainError(w, http.StatusBadRequest, "not a WebSocket handshake: GET with Sec-WebSocket-Key expected")
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		plainError(w, http.StatusUpgradeRequired, "unsupported WebSocket version: 13 expected")
		return
	}
	if !p.acquireWS() {
		w.Header().Set("Retry-After", "5")
		plainError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many GRIP WebSocket connections (at most %d): try again later", p.cfg.MaxWebSockets))
		return
	}
	defer p.releaseWS()
	if !p.acquire() {
		w.Header().Set("Retry-After", "5")
		plainError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many held connections (at most %d): try again later", p.cfg.MaxHeld))
		return
	}
	defer p.release()
	p.sockets.Add(1)
	defer p.sockets.Done()

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	wc := &wsConn{
		p: p, r: r, origin: origin, cid: newConnectionID(), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), kaChange: make(chan struct{}, 1),
		channels: make(map[string]context.CancelFunc),
	}
	events, ok := wc.open(w)
	if !ok {
		return
	}
	hj := &wswire.Hijacker{ResponseWriter: w, Timeout: wsWriteTimeout}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		// The origin decides who may connect: it gets the client's Origin
		// header with OPEN and can refuse, as behind Pushpin.
		InsecureSkipVerify: true,
		Subprotocols:       wc.subprotocols(w),
		CompressionMode:    websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			wc.offer(wsevents.Event{Type: wsevents.Ping})
			return true // and answer it at once
		},
	})
	if err != nil {
		wc.tellOrigin(wsevents.Event{Type: wsevents.Disconnect})
		return // Accept has answered the client
	}
	wc.c, wc.wire = c, hj.Wire
	// Writes' context never ends: the library then arms nothing per
	// write; the wire's deadline bounds each one, and a cancelled
	// connection aborts a write in progress.
	wc.wctx = context.WithoutCancel(ctx)
	defer context.AfterFunc(ctx, hj.Wire.Abort)()
	c.SetReadLimit(wsMaxMessage)
	p.obs.Connected(NameWS, 1)
	defer p.obs.Connected(NameWS, -1)
	wc.lastOut.Store(time.Now().UnixNano())
	// Server shutdown: the client hears 1001, the origin a CLOSE. (r's
	// context also ends when a client vanished before the hijack; the
	// reader finds that out.)
	stop := context.AfterFunc(r.Context(), func() {
		if shuttingDown(r) {
			wc.closeClient(websocket.StatusGoingAway, "the server is shutting down")
		}
	})
	defer stop()

	wc.wg.Add(2)
	go wc.readLoop()
	go wc.pingLoop()
	if wc.apply(events[1:]) {
		wc.originLoop()
	}
	wc.closeClient(websocket.StatusNormalClosure, "")
	cancel()
	wc.wg.Wait()
}

// acquireWS takes a GRIP WebSocket connection slot; false when
// MaxWebSockets are open.
func (p *Proxy) acquireWS() bool {
	if p.wsConns.Add(1) > int64(p.cfg.MaxWebSockets) {
		p.wsConns.Add(-1)
		p.obs.Limited(LimitWSConns)
		return false
	}
	return true
}

func (p *Proxy) releaseWS() { p.wsConns.Add(-1) }

// WebSockets is the number of GRIP WebSocket connections open now.
func (p *Proxy) WebSockets() int { return int(p.wsConns.Load()) }

// newConnectionID returns a random Connection-Id.
func newConnectionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// offer queues a client event without waiting: dropped when the queue is
// full (a ping, say).
func (wc *wsConn) offer(e wsevents.Event) {
	wc.mu.Lock()
	if !wc.detached && !wc.originDone && wc.end == nil && len(wc.queue) < wsMaxQueuedEvents && wc.queued+len(e.Content) <= wsMaxQueued {
		wc.queue = append(wc.queue, e)
		wc.queued += len(e.Content)
	}
	wc.mu.Unlock()
	signal(wc.wake)
}

// enqueue queues a client message for the origin, waiting while the
// queue is full. It returns false when the connection ends meanwhile.
func (wc *wsConn) enqueue(e wsevents.Event) bool {
	for {
		wc.mu.Lock()
		switch {
		case wc.detached || wc.originDone:
			wc.mu.Unlock()
			return true // nobody to tell
		case len(wc.queue) == 0 || len(wc.queue) < wsMaxQueuedEvents && wc.queued+len(e.Content) <= wsMaxQueued:
			wc.queue = append(wc.queue, e)
			wc.queued += len(e.Content)
			wc.mu.Unlock()
			signal(wc.wake)
			return true
		}
		wc.mu.Unlock()
		wc.stalls.Add(1) // pongs are not read meanwhile (pingLoop)
		select {
		case <-wc.room:
			wc.stalls.Add(1)
		case <-wc.ctx.Done():
			return false
		}
	}
}

// signal wakes the goroutine waiting on ch, if any, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// clientGone records how the client left (CLOSE with its code, or
// DISCONNECT) for the origin loop to tell the origin.
func (wc *wsConn) clientGone(e wsevents.Event) {
	wc.mu.Lock()
	if wc.end == nil {
		wc.end = &e
	}
	wc.mu.Unlock()
	signal(wc.wake)
}

// tellOrigin sends one last event (DISCONNECT, say) when the origin loop
// is not running, best effort.
func (wc *wsConn) tellOrigin(e wsevents.Event) {
	ctx, cancel := context.WithTimeout(wc.ctx, wc.p.cfg.OriginTimeout)
	defer cancel()
	_, _, _ = wc.postOnce(ctx, wsevents.Encode(e))
}

// readLoop reads client messages into the queue until the client leaves.
func (wc *wsConn) readLoop() {
	defer wc.wg.Done()
	for {
		typ, msg, err := wc.c.Read(wc.ctx)
		if err != nil {
			if ce := (websocket.CloseError{}); errors.As(err, &ce) {
				code := uint16(ce.Code)
				if ce.Code == websocket.StatusNoStatusRcvd {
					code = 0
				}
				wc.clientGone(wsevents.CloseEvent(code, ce.Reason))
			} else if strings.Contains(err.Error(), "read limited at") {
				// The library's error for a message over the read limit
				// (not a type of its own); it has sent the client 1009.
				wc.p.obs.Limited(LimitWSMessage)
				wc.clientGone(wsevents.CloseEvent(uint16(websocket.StatusMessageTooBig), "message too big"))
			} else if code := wc.closing.Load(); code != 0 {
				// hubbub closed the client and the library read its answer
				// (Close waits for it) before this read could.
				wc.clientGone(wsevents.CloseEvent(uint16(code), ""))
			} else {
				wc.clientGone(wsevents.Event{Type: wsevents.Disconnect})
			}
			return
		}
		t := wsevents.Text
		if typ == websocket.MessageBinary {
			t = wsevents.Binary
		}
		if !wc.enqueue(wsevents.Event{Type: t, Content: msg}) {
			return
		}
	}
}

// apply carries out the origin's answer events. It returns false when
// they end the connection (CLOSE, DISCONNECT).
func (wc *wsConn) apply(events []wsevents.Event) bool {
	for _, e := range events {
		switch e.Type {
		case wsevents.Text, wsevents.Binary:
			wc.mu.Lock()
			grip, prefix, detached := wc.grip, wc.prefix, wc.detached
			wc.mu.Unlock()
			if detached {
				continue
			}
			msg := e.Content
			if grip {
				if e.Type == wsevents.Text && bytes.HasPrefix(msg, []byte(controlPrefix)) {
					wc.control(msg[len(controlPrefix):])
					continue
				}
				if !bytes.HasPrefix(msg, prefix) {
					wc.p.log.Debug("grip websocket: origin message without the message prefix dropped", "prefix", string(prefix))
					continue
				}
				msg = msg[len(prefix):]
			}
			typ := websocket.MessageText
			if e.Type == wsevents.Binary {
				typ = websocket.MessageBinary
			}
			wc.write(typ, msg)
		case wsevents.Ping:
			wc.wg.Add(1)
			go func() { // Ping waits for the pong
				defer wc.wg.Done()
				ctx, cancel := context.WithTimeout(wc.ctx, wsPingEvery)
				defer cancel()
				_ = wc.c.Ping(ctx)
			}()
		case wsevents.Pong, wsevents.Open:
			// The library answers pings itself and sends no unasked pongs;
			// a second OPEN means nothing.
		case wsevents.Close:
			code, reason, err := wsevents.ParseClose(e.Content)
			if err != nil {
				wc.p.log.Warn("grip websocket: bad CLOSE from the origin", "err", err)
			}
			wc.mu.Lock()
			wc.originDone = true
			wc.mu.Unlock()
			wc.closeClient(clientCloseCode(code), reason)
			return false
		case wsevents.Disconnect:
			wc.mu.Lock()
			wc.originDone = true
			wc.mu.Unlock()
			_ = wc.c.CloseNow()
			return false
		}
	}
	return true
}

// clientCloseCode is the close code to send for an origin's code: codes a
// peer may not send (0, 1004-1006, 1015, out of range) become 1000.
func clientCloseCode(code uint16) websocket.StatusCode {
	switch {
	case code < 1000 || code > 4999, code >= 1004 && code <= 1006, code == 1015:
		return websocket.StatusNormalClosure
	}
	return websocket.StatusCode(code)
}

// write sends one message to the client (or to the batch, while a pump
// has the wire corked); a socket write that fails or takes longer than
// wsWriteTimeout ends the connection.
func (wc *wsConn) write(typ websocket.MessageType, msg []byte) bool {
	if err := wc.c.Write(wc.wctx, typ, msg); err != nil {
		wc.clientGone(wsevents.Event{Type: wsevents.Disconnect})
		return false
	}
	wc.lastOut.Store(time.Now().UnixNano())
	return true
}

// closeClient closes the client's WebSocket once, with the first code and
// reason given. It waits (up to the library's 5 s) for the client's
// answer, which readLoop reads.
func (wc *wsConn) closeClient(code websocket.StatusCode, reason string) {
	wc.closeOnce.Do(func() {
		wc.closing.Store(int32(code))
		if wc.c != nil {
			_ = wc.c.Close(code, truncateReason(reason))
		}
	})
}

// truncateReason fits a close reason in a control frame (123 bytes).
func truncateReason(s string) string {
	if len(s) <= 123 {
		return s
	}
	s = s[:123]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// pingLoop pings the client every wsPingEvery and drops it when a pong
// does not come back within as long again, unless the reader was held up
// by a slow origin meanwhile (the pong was not read, not missing).
func (wc *wsConn) pingLoop() {
	defer wc.wg.Done()
	t := time.NewTicker(wsPingEvery)
	defer t.Stop()
	for {
		select {
		case <-wc.ctx.Done():
			return
		case <-t.C:
		}
		before := wc.stalls.Load()
		ctx, cancel := context.WithTimeout(wc.ctx, wsPingEvery)
		err := wc.c.Ping(ctx)
		cancel()
		if stalled := before%2 == 1 || wc.stalls.Load() != before; err != nil && !stalled && wc.ctx.Err() == nil {
			wc.clientGone(wsevents.Event{Type: wsevents.Disconnect})
			_ = wc.c.CloseNow()
			return
		}
	}
}
