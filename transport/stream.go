package transport

import (
	"errors"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
)

// Lines of an NDJSON stream that are not events.
var (
	heartbeatLine = []byte("{\"heartbeat\":true}\n")
	slowLine      = []byte("{\"error\":\"slow\",\"message\":\"this client fell too far behind; reconnect with after=CURSOR\"}\n")
	expiredLine   = []byte("{\"error\":\"auth_expired\",\"message\":\"token expired; reconnect with a fresh token and after=CURSOR\"}\n")
)

// stream serves wait=stream: the last count events (default 0), or the
// events after the cursor, then live events, one event JSON per line
// (application/x-ndjson). Other lines, told apart by having no "id":
// {"heartbeat":true} every Heartbeat; {"reset":{...}} before events that
// follow a gap; and, for subscriptions with several topics or a pattern,
// {"cursor":"..."} after each batch of events, to resume with. A stream
// that a token authorised ends at notAfter (when not zero) with the line
// {"error":"auth_expired",...}.
func (h *Handlers) stream(w http.ResponseWriter, r *http.Request, q query, notAfter time.Time) {
	lw := newLiveWriter(w)
	rc := lw.rc
	ctx, stop := untilExpiry(r.Context(), notAfter)
	defer stop()
	last := 0
	if q.countSet && !q.hasCursor {
		last = q.count
	}
	sub, ok := h.subscribe(w, r, q, last, 0, NameStream)
	if !ok {
		return
	}
	defer sub.Close()
	h.obs.Connected(NameStream, 1)
	defer h.obs.Connected(NameStream, -1)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 4096)
	if sub.Single() == "" {
		// The cursor to resume from before any event came.
		buf = append(buf, `{"cursor":`...)
		buf = appendJSON(buf, sub.Cursor())
		buf = append(buf, "}\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	compactFlags := event.CompactID // no frame around a line says its id
	if sub.Single() == "" {
		compactFlags |= event.CompactTopic
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		msgs, err := sub.Next(ctx, beat.C)
		if err != nil {
			if authExpired(ctx) && r.Context().Err() == nil {
				_, _ = w.Write(expiredLine)
				_ = rc.Flush()
			} else if errors.Is(err, broker.ErrSlow) {
				h.obs.SlowDisconnect(NameStream)
				_, _ = w.Write(slowLine)
				_ = rc.Flush()
			}
			return
		}
		buf = buf[:0]
		if msgs == nil {
			buf = append(buf, heartbeatLine...)
		}
		n := 0
		for _, m := range msgs {
			if m.Reset != nil {
				buf = append(buf, `{"reset":`...)
				buf = appendJSON(buf, toResetJSON(m.Reset))
				buf = append(buf, "}\n"...)
				continue
			}
			if q.compact {
				buf = append(buf, m.Item.CompactJSON(compactFlags)...)
			} else {
				buf = append(buf, m.Item.JSON()...)
			}
			buf = append(buf, '\n')
			n++
		}
		if n > 0 && sub.Single() == "" {
			buf = append(buf, `{"cursor":`...)
			buf = appendJSON(buf, sub.Cursor())
			buf = append(buf, "}\n"...)
		}
		if err := lw.write(buf); err != nil {
			return
		}
		h.obs.Delivered(NameStream, n)
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 4096)
		}
	}
}
