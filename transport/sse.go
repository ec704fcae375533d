package transport

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
)

// resetJSON is a reset notice as JSON, the same in every transport.
type resetJSON struct {
	Topic  string `json:"topic"`
	Reason string `json:"reason"`
	Cursor string `json:"cursor,omitempty"` // none for hub.ResetLimit
}

func toResetJSON(r *hub.Reset) resetJSON {
	if r.Reason == hub.ResetLimit {
		// Not a position: the topic (or pattern) goes on live.
		return resetJSON{Topic: r.Topic, Reason: r.Reason}
	}
	return resetJSON{Topic: r.Topic, Reason: r.Reason, Cursor: r.Cursor.String()}
}

// subscribe starts the hub subscription for a live transport and answers
// the error itself when it fails. coalesce is the window to use when the
// request names none.
func (h *Handlers) subscribe(w http.ResponseWriter, r *http.Request, q query, last int, coalesce time.Duration, transport string) (*hub.Subscription, bool) {
	return h.subscribeReq(w, r, q, hub.SubscribeRequest{Last: last, Coalesce: coalesce, Transport: transport})
}

// subscribeReq is subscribe with the request's other fields given: the
// query fills in topics, cursor, filter and fields, and its coalesce_ms
// overrides req.Coalesce.
func (h *Handlers) subscribeReq(w http.ResponseWriter, r *http.Request, q query, req hub.SubscribeRequest) (*hub.Subscription, bool) {
	req.Topics, req.Cursor, req.Filter, req.Fields = q.topics, q.cursor, q.filter, q.fields
	req.Watermark = q.watermark
	req.Entries = wantsEntries(r, q)
	if q.coalesce >= 0 {
		req.Coalesce = q.coalesce
		req.EventCoalesce = false // the request chose its window
	}
	sub, err := h.hub.Subscribe(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return sub, true
}

// sse serves a Server-Sent Events stream: history after the cursor (or,
// with count=N and no cursor, the newest N events), then
// live events, each with "id:" the cursor after it (for several topics or a
// pattern, also an "id:" alone at the start). Reset notices come as
// "event: reset" with that reset's cursor as their id. A comment line is
// sent every Heartbeat. A subscriber that falls behind is told so in a
// comment and disconnected; EventSource then reconnects with Last-Event-ID
// and loses nothing that history still holds. A stream that a token
// authorised ends at notAfter (when not zero) with "event: auth-expired";
// at shutdown a comment says so before the stream ends.
//
// Comments (the opening one, heartbeats, the notices) are lone lines, with
// no blank line after them: a blank line ends an event, and clients that
// do not skip events without data (@microsoft/fetch-event-source) would
// otherwise see an empty message for each. Every write is flushed, so a
// lone line reaches the client (and an unbuffered proxy) at once.
func (h *Handlers) sse(w http.ResponseWriter, r *http.Request, q query, notAfter time.Time) {
	lw := newLiveWriter(w)
	ctx, stop := untilExpiry(r.Context(), notAfter)
	defer stop()
	last := 0 // count=N without a cursor: the newest N first, as wait=stream
	if q.countSet && !q.hasCursor {
		last = q.count
	}
	sub, ok := h.subscribe(w, r, q, last, 0, NameSSE)
	if !ok {
		return
	}
	defer sub.Close()
	h.obs.Connected(NameSSE, 1)
	defer h.obs.Connected(NameSSE, -1)

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 4096)
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, h.opts.SSERetry.Milliseconds(), 10)
	buf = append(buf, "\n"...)
	buf = append(buf, sseOpen...)
	if sub.Single() == "" {
		// An id without data sets EventSource's Last-Event-ID without an
		// event: a pattern subscriber that hears nothing before it
		// reconnects still resumes from here.
		buf = append(buf, "id: "...)
		buf = append(buf, sub.Cursor()...)
		buf = append(buf, "\n\n"...)
	}
	if _, err := w.Write(buf); err != nil {
		return
	}
	if err := lw.rc.Flush(); err != nil {
		return
	}

	compactFlags := 0 // the SSE id: line carries the position
	if sub.Single() == "" {
		compactFlags = event.CompactTopic
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		msgs, err := sub.Next(ctx, beat.C)
		if err != nil {
			switch {
			case authExpired(ctx) && r.Context().Err() == nil:
				_ = lw.write(sseAuthExpired)
			case errors.Is(err, broker.ErrSlow):
				h.obs.SlowDisconnect(NameSSE)
				_ = lw.write(sseSlow)
			case shuttingDown(r):
				_ = lw.write(sseShutdown)
			case r.Context().Err() == nil:
				h.log.Warn("sse subscription ended", "err", err)
			}
			return
		}
		buf = buf[:0]
		if msgs == nil {
			buf = append(buf, sseHeartbeat...)
		}
		n := 0
		for _, m := range msgs {
			switch {
			case m.Reset != nil:
				buf = appendSSEReset(buf, m)
			case q.compact: // m.Cursor "": the event's own position
				buf = event.AppendSSECompact(buf, m.Item, m.Cursor, compactFlags)
				n++
			case m.Cursor == "":
				buf = append(buf, m.Item.SSE()...)
				n++
			default:
				buf = event.AppendSSE(buf, m.Item, m.Cursor)
				n++
			}
		}
		if err := lw.write(buf); err != nil {
			return
		}
		h.obs.Delivered(NameSSE, n)
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 4096) // do not keep a burst's memory
		}
	}
}

// sseAuthExpired ends a stream whose token expired; the client should
// reconnect with a fresh token and its Last-Event-ID.
var sseAuthExpired = []byte("event: auth-expired\ndata: {\"reason\":\"token expired\"}\n\n")

// The comments a stream sends, each a lone line (see sse).
var (
	sseOpen      = []byte(": hubbub stream open\n")
	sseHeartbeat = []byte(": heartbeat\n")
	sseSlow      = []byte(": disconnected: this client fell too far behind; reconnect with Last-Event-ID\n")
	sseShutdown  = []byte(": the server is shutting down; reconnect with Last-Event-ID\n")
)

func appendSSEReset(b []byte, m hub.Message) []byte {
	rj := toResetJSON(m.Reset)
	js, _ := json.Marshal(rj)
	b = append(b, "id: "...)
	if m.Cursor != "" {
		b = append(b, m.Cursor...)
	} else {
		b = append(b, rj.Cursor...)
	}
	b = append(b, "\nevent: reset\ndata: "...)
	b = append(b, js...)
	return append(b, '\n', '\n')
}
