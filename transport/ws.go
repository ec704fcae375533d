package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/wswire"
)

// NameWS is the WebSocket transport's name in metrics.
const NameWS = "ws"

// WebSocket close codes of our own (4000-4999 are for applications).
const (
	// CloseSlow: the client did not read fast enough; resume with cursors.
	CloseSlow websocket.StatusCode = 4001
	// CloseUnavailable: the store failed under a subscription; retry later.
	CloseUnavailable websocket.StatusCode = 4002
)

// Limits of one WebSocket connection. A subscribe takes as many topics as
// one HTTP request (maxTopicsPerRequest); the connection's subscriptions
// together hold at most maxTopicsPerConn topics and patterns, since the
// broker walks every pattern for every event published.
const (
	maxSubsPerConn   = 256
	maxSubIDLen      = 128
	maxTopicsPerConn = 1024
	// maxHeldDocuments bounds the documents one document subscription
	// says it holds: each costs a store read when it starts.
	maxHeldDocuments = 1000
	// Messages a client may send per second, and in a burst, before the
	// connection is closed with code 1008 (Options.WSFrameRate/Burst).
	defaultFrameRate  = 50
	defaultFrameBurst = 100
)

// Names of the WebSocket limits, as passed to Observer.Limited.
const (
	LimitWSFrameRate     = "ws_frame_rate"
	LimitWSTopics        = "ws_topics"
	LimitWSSubscriptions = "ws_subscriptions"
	LimitWSDocuments     = "ws_documents"
)

// wsIn is a client message. Fields are shared between ops.
type wsIn struct {
	Op       string          `json:"op"`
	Sub      string          `json:"sub"`
	Topic    *string         `json:"topic"`
	Topics   []string        `json:"topics"`
	After    string          `json:"after"`
	Data     json.RawMessage `json:"data"`
	Type     string          `json:"type"`
	Key      string          `json:"key"`
	Tags     []string        `json:"tags"`
	Geo      *event.Geo      `json:"geo"`
	ClientID string          `json:"client_id"`
	Filter   json.RawMessage `json:"filter"`
	Fields   []string        `json:"fields"`
	// Documents maps the keys of documents the client holds to their
	// mtime: unix milliseconds, or an RFC 3339 time (the event's "time").
	Documents map[string]json.RawMessage `json:"documents"`
	Initial   bool                       `json:"initial"`
	// CoalesceMS opts a subscription into coalescing (milliseconds).
	CoalesceMS int `json:"coalesce_ms"`
	// Token is the credential of the auth and refresh ops.
	Token string `json:"token"`
	// Compact asks for the lean event shape (event.Item.CompactJSON).
	Compact bool `json:"compact"`
}

// wsError is the error message sent to a client.
type wsError struct {
	Op      string `json:"op"`
	Sub     string `json:"sub,omitempty"`
	Code    string `json:"code"`
	Status  int    `json:"status,omitempty"` // of an authorisation error: 401 or 403
	Message string `json:"message"`
}

// Error codes of {"op":"error"}.
const (
	wsBadRequest  = "bad_request"
	wsForbidden   = "forbidden"
	wsUnavailable = "unavailable"
	wsNotFound    = "not_found"
	wsConflict    = "conflict"
	wsRateLimited = "rate_limited"
	wsUnauthed    = "unauthorized"
)

// WebSocket serves GET /ws: JSON text messages, one per frame. A client
// subscribes (several subscriptions per connection, each with its own id),
// unsubscribes, publishes (when allowed) and pings; the server sends
// events, resets and errors, pings idle connections, and closes a
// connection that cannot keep up with code 4001.
//
// Each subscription runs its own catch-up-then-live pump; frames of one
// subscription are written in order, frames of different subscriptions
// interleave.
func (h *Handlers) WebSocket(w http.ResponseWriter, r *http.Request) {
	hj := &wswire.Hijacker{ResponseWriter: w, Timeout: writeTimeout}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		OriginPatterns:  h.opts.WSOriginPatterns,
		CompressionMode: websocket.CompressionDisabled, // context takeover costs ~1 MB per connection
	})
	if err != nil {
		return // Accept has answered the client
	}
	h.sockets.Add(1)
	defer h.sockets.Done()
	h.obs.Connected(NameWS, 1)
	defer h.obs.Connected(NameWS, -1)
	c.SetReadLimit(h.opts.MaxBody)
	// The connection's context is not r's: cancelling a read's context
	// drops the connection without a close frame. When r ends because the
	// server shuts down, the client gets 1001 first; otherwise (the client
	// is gone) the connection simply ends.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	stop := context.AfterFunc(r.Context(), func() {
		if shuttingDown(r) {
			_ = c.Close(websocket.StatusGoingAway, "the server is shutting down: reconnect with your cursors")
		}
		cancel()
	})
	defer stop()
	// A cancelled connection aborts a write in progress (a stalled
	// client's), as a write under a cancelled context would.
	defer context.AfterFunc(ctx, hj.Wire.Abort)()
	wc := &wsConn{
		h: h, c: c, ctx: ctx, cancel: cancel, wire: hj.Wire,
		// Writes' context never ends: the library then arms nothing per
		// write. The wire's deadline bounds each write, abort ends one.
		wctx:   context.WithoutCancel(ctx),
		frames: rate.NewLimiter(rate.Limit(h.opts.WSFrameRate), h.opts.WSFrameBurst),
		id:     h.opts.Access.Identify(r),
		r:      r,
		subs:   make(map[string]*wsSub),
	}
	defer wc.shutdown()
	go wc.pingLoop()
	wc.readLoop()
}

type wsConn struct {
	h      *Handlers
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	r      *http.Request // the upgrade request, for the local rule and rate keys
	frames *rate.Limiter // messages the client may send
	wire   *wswire.Wire  // the socket: write deadline and batching
	wctx   context.Context
	// batch is held by the pump that has the wire corked.
	batch sync.Mutex

	mu   sync.Mutex
	id   access.Identity // from the upgrade request, then each auth op
	subs map[string]*wsSub
	wg   sync.WaitGroup
	// topics counts the topics and patterns of subs, together (under mu).
	topics int

	closeOnce sync.Once
}

type wsSub struct {
	sub    *hub.Subscription
	cancel context.CancelCauseFunc // cause errAuthExpired or a wsDenied
	done   chan struct{}
	topics []string
	// compact is the CompactJSON flags of its events; -1 for the full
	// shape.
	compact int
	// expiry ends the subscription when the token it needed expires; nil
	// when it needed none. Guarded by wsConn.mu.
	expiry *time.Timer
}

func (wc *wsConn) shutdown() {
	wc.cancel()
	wc.wg.Wait()
	wc.closeWith(websocket.StatusNormalClosure, "")
}

// closeWith closes the connection once, with the first reason given.
func (wc *wsConn) closeWith(code websocket.StatusCode, reason string) {
	wc.closeOnce.Do(func() {
		wc.cancel()
		_ = wc.c.Close(code, reason)
	})
}

func (wc *wsConn) readLoop() {
	for {
		typ, msg, err := wc.c.Read(wc.ctx)
		if err != nil {
			return
		}
		if !wc.frames.Allow() {
			wc.h.obs.Limited(LimitWSFrameRate)
			msg := fmt.Sprintf("more than %g messages a second (bursts of %d): closing", wc.h.opts.WSFrameRate, wc.h.opts.WSFrameBurst)
			wc.sendError("", wsRateLimited, msg)
			wc.closeWith(websocket.StatusPolicyViolation, "too many messages")
			return
		}
		if typ != websocket.MessageText {
			wc.sendError("", wsBadRequest, "send JSON text messages")
			continue
		}
		if err := CheckJSONText(msg); err != nil {
			wc.sendError("", wsBadRequest, err.Error())
			continue
		}
		var in wsIn
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			wc.sendError("", wsBadRequest, fmt.Sprintf("malformed message: %v", err))
			continue
		}
		switch in.Op {
		case "subscribe":
			wc.subscribe(in)
		case "unsubscribe":
			wc.unsubscribe(in.Sub)
		case "publish":
			wc.publish(in)
		case "ping":
			wc.send([]byte(`{"op":"pong"}`))
		case "auth", "refresh":
			wc.auth(in.Token)
		default:
			wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("unknown op %q: use subscribe, unsubscribe, publish, auth, refresh or ping", in.Op))
		}
	}
}

// send writes one frame (to the socket, or to the batch when the wire is
// corked); a write that fails or takes longer than writeTimeout ends the
// connection.
func (wc *wsConn) send(frame []byte) bool {
	if err := wc.c.Write(wc.wctx, websocket.MessageText, frame); err != nil {
		wc.closeWith(websocket.StatusGoingAway, "write failed")
		return false
	}
	return true
}

func (wc *wsConn) sendJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return wc.send(b)
}

func (wc *wsConn) sendError(sub, code, msg string) {
	wc.sendJSON(wsError{Op: "error", Sub: sub, Code: code, Message: msg})
}

func (wc *wsConn) sendErr(sub string, err error) {
	var ref *hub.Refusal
	if event.IsValidation(err) || errors.As(err, &ref) {
		wc.sendError(sub, wsBadRequest, err.Error())
		return
	}
	wc.h.log.Error("websocket request failed", "err", err)
	wc.sendError(sub, wsUnavailable, "the store could not serve this request; try again")
}

func topicsOf(in wsIn) ([]string, error) {
	switch {
	case in.Topic != nil && in.Topics != nil:
		return nil, event.Invalid("give topic or topics, not both")
	case in.Topic != nil:
		return []string{*in.Topic}, nil
	case len(in.Topics) > 0:
		return in.Topics, nil
	}
	return nil, event.Invalid("no topic given")
}

func (wc *wsConn) subscribe(in wsIn) {
	if in.Sub == "" || len(in.Sub) > maxSubIDLen {
		wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("sub must be a non-empty id of at most %d bytes", maxSubIDLen))
		return
	}
	if len(in.Topics) > maxTopicsPerRequest {
		wc.h.obs.Limited(LimitWSTopics)
		wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("more than %d topics in one subscribe", maxTopicsPerRequest))
		return
	}
	if len(in.Documents) > maxHeldDocuments {
		wc.h.obs.Limited(LimitWSDocuments)
		wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("more than %d documents held in one subscription", maxHeldDocuments))
		return
	}
	var req hub.SubscribeRequest
	var err error
	if in.CoalesceMS < 0 || in.CoalesceMS > 3600_000 {
		wc.sendError(in.Sub, wsBadRequest, "coalesce_ms must be from 0 to 3600000")
		return
	}
	req.Coalesce = time.Duration(in.CoalesceMS) * time.Millisecond
	if in.Documents != nil || in.Initial {
		if req.Documents, err = parseDocuments(in.Documents, in.Initial); err != nil {
			wc.sendErr(in.Sub, err)
			return
		}
	}
	if len(in.Filter) > 0 && !bytes.Equal(in.Filter, []byte("null")) {
		if req.Filter, err = filter.ParseJSON(in.Filter); err != nil {
			wc.sendErr(in.Sub, err)
			return
		}
	}
	if in.Fields != nil {
		if req.Fields, err = filter.ParseFields(in.Fields); err != nil {
			wc.sendErr(in.Sub, err)
			return
		}
	}
	topics, err := topicsOf(in)
	if err != nil {
		wc.sendErr(in.Sub, err)
		return
	}
	req.Topics, req.Transport = topics, NameWS
	d := wc.h.opts.Access.Read(wc.identity(), topics)
	if !d.Allowed() {
		wc.sendDenial(in.Sub, d)
		return
	}
	single := ""
	if len(topics) == 1 && !event.IsPattern(topics[0]) {
		single = topics[0]
	}
	req.Cursor, req.Watermark, err = event.ParseWatermarked(in.After, single)
	if err != nil {
		wc.sendErr(in.Sub, err)
		return
	}
	wc.mu.Lock()
	_, taken := wc.subs[in.Sub]
	full := len(wc.subs) >= maxSubsPerConn
	tooMany := wc.topics+len(topics) > maxTopicsPerConn
	wc.mu.Unlock()
	if taken {
		wc.sendError(in.Sub, wsConflict, "a subscription with this sub id is open; unsubscribe it first")
		return
	}
	if full {
		wc.h.obs.Limited(LimitWSSubscriptions)
		wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("at most %d subscriptions per connection", maxSubsPerConn))
		return
	}
	if tooMany {
		wc.h.obs.Limited(LimitWSTopics)
		wc.sendError(in.Sub, wsBadRequest, fmt.Sprintf("at most %d topics and patterns per connection, over all its subscriptions", maxTopicsPerConn))
		return
	}
	sub, err := wc.h.hub.Subscribe(wc.ctx, req)
	if err != nil {
		wc.sendErr(in.Sub, err)
		return
	}
	ctx, cancel := context.WithCancelCause(wc.ctx)
	s := &wsSub{sub: sub, cancel: cancel, done: make(chan struct{}), topics: topics, compact: -1}
	if in.Compact {
		s.compact = event.CompactID // a frame has no id line
		if sub.Single() == "" {
			s.compact |= event.CompactTopic
		}
	}
	wc.mu.Lock()
	wc.subs[in.Sub] = s
	wc.topics += len(s.topics)
	s.expiry = expireAt(d.NotAfter, cancel)
	wc.mu.Unlock()
	// "subscribed" goes out before any event of this subscription.
	if !wc.sendJSON(map[string]string{"op": "subscribed", "sub": in.Sub, "cursor": sub.Cursor()}) {
		cancel(nil)
		sub.Close()
		return
	}
	wc.wg.Add(2)
	go wc.pump(ctx, in.Sub, s)
	go func() { // a stalled client may hold the pump in a write: close at once
		defer wc.wg.Done()
		select {
		case <-sub.CutOff():
			wc.h.obs.SlowDisconnect(NameWS)
			wc.closeWith(CloseSlow, "too slow: reconnect and resubscribe with your cursors")
		case <-ctx.Done():
		}
	}()
}

func (wc *wsConn) unsubscribe(id string) {
	wc.mu.Lock()
	s := wc.subs[id]
	delete(wc.subs, id)
	if s != nil {
		wc.topics -= len(s.topics)
	}
	wc.mu.Unlock()
	if s == nil {
		wc.sendError(id, wsNotFound, "no subscription with this sub id")
		return
	}
	s.cancel(nil)
	<-s.done // no event of it may follow "unsubscribed"
	wc.sendJSON(map[string]string{"op": "unsubscribed", "sub": id})
}

// pump delivers one subscription's messages until ctx ends or the
// subscription fails.
func (wc *wsConn) pump(ctx context.Context, id string, s *wsSub) {
	defer wc.wg.Done()
	defer close(s.done)
	defer s.sub.Close()
	defer wc.endAuthorised(ctx, id, s)
	quoted, _ := json.Marshal(id)
	var buf []byte
	for {
		msgs, err := s.sub.Next(ctx, nil)
		if err != nil {
			switch {
			case errors.Is(err, broker.ErrSlow):
				// The watcher in subscribe counts it and closes.
			case ctx.Err() != nil:
			default:
				wc.h.log.Warn("websocket subscription failed", "err", err)
				wc.closeWith(CloseUnavailable, "the store failed; reconnect with your cursors")
			}
			return
		}
		// The frames of what is ready go out in one socket write. Close
		// only after uncork: closing waits for the client's answer to a
		// close frame, which may be held in the batch.
		wc.batch.Lock()
		wc.wire.Cork()
		var werr error
		n := 0
		for _, m := range msgs {
			buf = buf[:0]
			if m.Reset != nil {
				buf = append(buf, `{"op":"reset","sub":`...)
				buf = append(buf, quoted...)
				rj, _ := json.Marshal(toResetJSON(m.Reset))
				buf = append(buf, ',')
				buf = append(buf, rj[1:]...)
			} else {
				// {"op":"event","sub":S[,"cursor":C], ...the event JSON}
				buf = append(buf, `{"op":"event","sub":`...)
				buf = append(buf, quoted...)
				if m.Cursor != "" {
					buf = append(buf, `,"cursor":"`...)
					buf = append(buf, m.Cursor...) // URL-safe: no escaping needed
					buf = append(buf, '"')
				}
				buf = append(buf, ',')
				if s.compact >= 0 { // never "{}": CompactID keeps the id
					buf = append(buf, m.Item.CompactJSON(s.compact)[1:]...)
				} else {
					buf = append(buf, m.Item.JSON()[1:]...)
				}
				n++
			}
			if werr = wc.c.Write(wc.wctx, websocket.MessageText, buf); werr != nil {
				break
			}
		}
		if err := wc.wire.Uncork(); werr == nil {
			werr = err
		}
		wc.batch.Unlock()
		if werr != nil {
			wc.closeWith(websocket.StatusGoingAway, "write failed")
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a burst's memory
		}
		wc.h.obs.Delivered(NameWS, n)
	}
}

func (wc *wsConn) publish(in wsIn) {
	topics, err := topicsOf(in)
	if err != nil {
		wc.sendErr(in.Sub, err)
		return
	}
	if !wc.mayPublish(in.ClientID, topics) {
		return
	}
	if wc.h.opts.AllowPublish != nil {
		if wait, ok := wc.h.opts.AllowPublish(wc.r, wc.identity()); !ok {
			secs := retrySeconds(wait)
			wc.sendJSON(map[string]any{"op": "error", "client_id": in.ClientID, "code": wsRateLimited, "retry_after": secs,
				"message": fmt.Sprintf("publish rate limit: try again in %ds", secs)})
			return
		}
	}
	if t := reservedIn([]event.Draft{{Topics: topics}}); t != "" {
		wc.sendJSON(map[string]string{"op": "error", "client_id": in.ClientID, "code": wsForbidden,
			"message": "topics under $sys/ are the hub's own and cannot be published to"})
		return
	}
	coalesce, err := coalesceMS(int64(in.CoalesceMS))
	if err != nil {
		wc.sendError("", wsBadRequest, err.Error())
		return
	}
	d := event.Draft{Topics: topics, Type: in.Type, Key: in.Key, Tags: in.Tags, Geo: in.Geo, IdempotencyKey: in.ClientID,
		Coalesce: coalesce}
	if len(in.Data) > 0 && !bytes.Equal(in.Data, []byte("null")) {
		var b bytes.Buffer
		if err := json.Compact(&b, in.Data); err != nil {
			wc.sendError("", wsBadRequest, "data: "+err.Error())
			return
		}
		d.Data = b.Bytes()
	}
	ctx, cancel := context.WithTimeout(wc.ctx, 30*time.Second)
	defer cancel()
	res, err := wc.h.hub.Publish(ctx, []event.Draft{d})
	if err != nil {
		wc.sendErr("", err)
		return
	}
	out := publishResults(res)
	wc.sendJSON(struct {
		Op       string          `json:"op"`
		ClientID string          `json:"client_id,omitempty"`
		Topic    string          `json:"topic"`
		ID       string          `json:"id"`
		Seq      uint64          `json:"seq"`
		Time     string          `json:"time"`
		Events   []PublishResult `json:"events,omitempty"`
	}{"published", in.ClientID, out[0].Topic, out[0].ID, out[0].Seq, out[0].Time, eventsIfMany(out)})
}

// parseDocuments reads a subscribe's held documents.
func parseDocuments(held map[string]json.RawMessage, initial bool) (*hub.DocumentsSpec, error) {
	if len(held) > maxHeldDocuments {
		return nil, event.Invalid("more than %d documents held", maxHeldDocuments)
	}
	spec := &hub.DocumentsSpec{Held: make(map[string]time.Time, len(held)), Initial: initial}
	for key, raw := range held {
		var ms int64
		var str string
		switch {
		case json.Unmarshal(raw, &ms) == nil:
			spec.Held[key] = time.UnixMilli(ms).Add(time.Millisecond - 1) // all of that millisecond
		case json.Unmarshal(raw, &str) == nil:
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return nil, event.Invalid("documents[%q]: %q is not an RFC 3339 time", key, str)
			}
			spec.Held[key] = t
		default:
			return nil, event.Invalid("documents[%q]: give the mtime as unix milliseconds or an RFC 3339 time", key)
		}
	}
	return spec, nil
}

func eventsIfMany(r []PublishResult) []PublishResult {
	if len(r) > 1 {
		return r
	}
	return nil
}

// pingLoop pings the client every Heartbeat and closes the connection when
// a pong does not come back within another Heartbeat.
func (wc *wsConn) pingLoop() {
	t := time.NewTicker(wc.h.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-wc.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(wc.ctx, wc.h.opts.Heartbeat)
		err := wc.c.Ping(ctx)
		cancel()
		if err != nil && wc.ctx.Err() == nil {
			wc.closeWith(websocket.StatusGoingAway, "no pong")
			return
		}
	}
}
