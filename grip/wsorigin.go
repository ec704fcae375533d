package grip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/grip/wsevents"
)

// The origin side of a WebSocket-over-HTTP connection: the OPEN
// handshake, the requests (one at a time) and what their answers' headers
// say (meta, keep-alive interval, the grip extension).

// open sends OPEN and reads the origin's answer. When the origin accepts
// it returns the answer's events (OPEN first) with the headers of the
// handshake answer set on w; otherwise it has answered the client.
func (wc *wsConn) open(w http.ResponseWriter) ([]wsevents.Event, bool) {
	resp, body, err := wc.post(wc.ctx, []wsevents.Event{{Type: wsevents.Open}})
	if err != nil {
		wc.p.log.Warn("grip websocket: the origin failed to answer OPEN", "origin", wc.origin.Redacted(), "err", err)
		plainError(w, http.StatusBadGateway, "the origin could not be reached")
		return nil, false
	}
	if resp.StatusCode != http.StatusOK || !isEventsType(resp.Header) {
		// A refusal: the client gets the origin's answer.
		copyHeaders(w.Header(), resp.Header)
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body[:min(len(body), wsMaxRejectBody)])
		return nil, false
	}
	events, err := wc.decode(body)
	switch {
	case err != nil:
		wc.p.log.Warn("grip websocket: bad answer to OPEN", "origin", wc.origin.Redacted(), "err", err)
		plainError(w, http.StatusBadGateway, "the origin's answer to OPEN is not valid application/websocket-events")
		return nil, false
	case len(events) == 0 || events[0].Type != wsevents.Open:
		plainError(w, http.StatusBadGateway, "the origin did not accept the connection (its answer has no OPEN first)")
		return nil, false
	}
	wc.mu.Lock()
	wc.readHeaders(resp.Header)
	if ext, ok := gripExtension(resp.Header); ok {
		wc.grip = true
		wc.prefix = []byte(defaultMessagePrefix)
		if v, ok := ext["message-prefix"]; ok {
			wc.prefix = []byte(v)
		}
	}
	wc.mu.Unlock()
	h := w.Header()
	copyHeaders(h, resp.Header)
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "set-meta-") {
			delete(h, name)
		}
	}
	for _, name := range []string{"Content-Type", "Content-Length", "Keep-Alive-Interval", "Sec-Websocket-Extensions"} {
		h.Del(name)
	}
	return events, true
}

// subprotocols is the subprotocol the origin chose (taken off the
// headers, the library writes it), for Accept.
func (wc *wsConn) subprotocols(w http.ResponseWriter) []string {
	p := w.Header().Get("Sec-WebSocket-Protocol")
	w.Header().Del("Sec-WebSocket-Protocol")
	if p == "" {
		return nil
	}
	return []string{p}
}

func isEventsType(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == wsevents.ContentType
}

// gripExtension finds the grip extension in Sec-WebSocket-Extensions and
// its parameters.
func gripExtension(h http.Header) (map[string]string, bool) {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for ext := range strings.SplitSeq(v, ",") {
			parts := strings.Split(ext, ";")
			if strings.TrimSpace(parts[0]) != "grip" {
				continue
			}
			params := make(map[string]string)
			for _, p := range parts[1:] {
				k, v, _ := strings.Cut(p, "=")
				v = strings.TrimSpace(v)
				if uq, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
					v = uq
				}
				params[strings.TrimSpace(k)] = v
			}
			return params, true
		}
	}
	return nil, false
}

// readHeaders applies an answer's Set-Meta-* and Keep-Alive-Interval.
// Called with mu held.
func (wc *wsConn) readHeaders(h http.Header) {
	if v := h.Get("Keep-Alive-Interval"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			wc.keepAlive = max(time.Duration(n)*time.Second, wsMinKeepAlive)
		} else {
			wc.keepAlive = 0
		}
	}
	for name, vs := range h {
		if len(name) <= len("Set-Meta-") || !strings.EqualFold(name[:len("Set-Meta-")], "Set-Meta-") {
			continue
		}
		field := name[len("Set-Meta-"):]
		value := ""
		if len(vs) > 0 {
			value = vs[0]
		}
		wc.setMeta(field, value)
	}
}

// setMeta sets (or with "" removes) a meta field, within the bounds.
func (wc *wsConn) setMeta(name, value string) {
	kept := wc.meta[:0]
	size := len(name) + len(value)
	for _, kv := range wc.meta {
		if !strings.EqualFold(kv[0], name) {
			kept = append(kept, kv)
			size += len(kv[0]) + len(kv[1])
		}
	}
	wc.meta = kept
	if value == "" {
		return
	}
	if len(wc.meta) >= wsMaxMeta || size > wsMaxMetaBytes {
		wc.p.log.Warn("grip websocket: Set-Meta ignored: too many meta fields", "name", name, "max", wsMaxMeta, "max_bytes", wsMaxMetaBytes)
		return
	}
	wc.meta = append(wc.meta, [2]string{name, value})
}

// post sends events to the origin, signed, with the client's handshake
// headers and the connection's meta, and reads the whole answer (at most
// MaxOriginBody). Requests that did not reach the origin are retried.
func (wc *wsConn) post(ctx context.Context, events []wsevents.Event) (*http.Response, []byte, error) {
	body := wsevents.Encode(events...)
	for attempt := 0; ; attempt++ {
		resp, b, err := wc.postOnce(ctx, body)
		opening := len(events) > 0 && events[0].Type == wsevents.Open // not retried, as Pushpin
		if err == nil || !unreached(err) || attempt >= wsRetries || opening {
			return resp, b, err
		}
		delay := time.Second << attempt
		wc.p.log.Debug("grip websocket: origin unreachable, retrying", "in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		}
	}
}

func (wc *wsConn) postOnce(ctx context.Context, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, wc.p.cfg.OriginTimeout)
	defer cancel()
	req, err := wc.p.OriginRequest(ctx, wc.r, wc.origin, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Method = http.MethodPost
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	h := req.Header
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "meta-") {
			delete(h, name) // a client cannot forge meta
		}
	}
	for _, name := range []string{"Accept", "Connection-Id", "Content-Length", "Sec-Websocket-Extensions"} {
		h.Del(name)
	}
	h.Set("Sec-WebSocket-Extensions", "grip")
	h.Set("Accept", wsevents.ContentType)
	h.Set("Content-Type", wsevents.ContentType)
	h.Set("Connection-Id", wc.cid)
	wc.mu.Lock()
	for _, kv := range wc.meta {
		h.Set("Meta-"+kv[0], kv[1])
	}
	wc.mu.Unlock()
	resp, err := wc.p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, wc.p.cfg.MaxOriginBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the origin's answer: %w", err)
	}
	if int64(len(b)) > wc.p.cfg.MaxOriginBody {
		return nil, nil, fmt.Errorf("the origin's answer is larger than %d bytes", wc.p.cfg.MaxOriginBody)
	}
	return resp, b, nil
}

// unreached reports whether a request failed before reaching the origin
// (nothing was sent), so that trying again cannot repeat it.
func unreached(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (wc *wsConn) decode(body []byte) ([]wsevents.Event, error) {
	return wsevents.Decode(body, wsevents.Limits{MaxContent: int(wc.p.cfg.MaxOriginBody)})
}

// take removes the next request's events from the queue: up to
// wsMaxEventsPerRequest and wsMaxQueued bytes, then the client's CLOSE
// once everything before it is taken (a DISCONNECT drops what is queued).
// last reports that the request ends the conversation. Called with mu held.
func (wc *wsConn) takeLocked() (events []wsevents.Event, last bool) {
	if wc.end != nil && wc.end.Type == wsevents.Disconnect {
		wc.queue, wc.queued = nil, 0
		return []wsevents.Event{*wc.end}, true
	}
	n, size := 0, 0
	for n < len(wc.queue) && n < wsMaxEventsPerRequest && (n == 0 || size+len(wc.queue[n].Content) <= wsMaxQueued) {
		size += len(wc.queue[n].Content)
		n++
	}
	events = append(events, wc.queue[:n]...)
	wc.queue = wc.queue[n:]
	wc.queued -= size
	if len(wc.queue) == 0 {
		wc.queue = nil // do not keep a burst's array
		if wc.end != nil {
			return append(events, *wc.end), true
		}
	}
	return events, false
}

// originLoop relays the client's events to the origin and applies its
// answers, one request at a time, until either side ends the connection.
func (wc *wsConn) originLoop() {
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		wc.mu.Lock()
		events, last := wc.takeLocked()
		detached, done, interval := wc.detached, wc.originDone, wc.keepAlive
		wc.mu.Unlock()
		signal(wc.room)
		switch {
		case done:
			return
		case detached:
			if last {
				return
			}
			events = nil
		}
		if len(events) == 0 {
			var tick <-chan time.Time
			if interval > 0 && !detached {
				if idle == nil {
					idle = time.NewTimer(interval)
				} else {
					idle.Reset(interval)
				}
				tick = idle.C
			}
			select {
			case <-wc.wake:
				continue
			case <-wc.ctx.Done():
				return
			case <-tick: // keep-alive: an empty request
			}
		}
		resp, body, err := wc.post(wc.ctx, events)
		if err == nil && (resp.StatusCode != http.StatusOK || !isEventsType(resp.Header)) {
			err = fmt.Errorf("the origin answered %s, not 200 with %s", resp.Status, wsevents.ContentType)
		}
		var answer []wsevents.Event
		if err == nil {
			answer, err = wc.decode(body)
		}
		if last {
			return // the client is gone: the answer has no one to go to
		}
		if err != nil {
			if wc.ctx.Err() == nil {
				wc.p.log.Warn("grip websocket: origin request failed", "origin", wc.origin.Redacted(), "err", err)
			}
			wc.mu.Lock()
			wc.originDone = true
			wc.mu.Unlock()
			wc.closeClient(websocket.StatusInternalError, "the origin failed")
			return
		}
		wc.mu.Lock()
		wc.readHeaders(resp.Header)
		wc.mu.Unlock()
		if !wc.apply(answer) {
			return
		}
	}
}
