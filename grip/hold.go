package grip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/transport"
)

// writeTimeout bounds one write to a held client: a client that stops
// reading is dropped instead of holding a goroutine forever.
const writeTimeout = 30 * time.Second

// Looking up a prev-id in a channel's log: the newest prevIDFirst events
// are read first (the usual case: the origin names the latest item), then
// the newest prevIDScan. An id not among them is unknown.
const (
	prevIDFirst    = 16
	prevIDScan     = 256
	prevIDMaxBytes = 1 << 20
)

// errNextLink ends a hold whose Grip-Link timeout has come.
var errNextLink = errors.New("grip: next link due")

// refuseHeld answers a hold over MaxHeld.
func (p *Proxy) refuseHeld(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	plainError(w, http.StatusServiceUnavailable,
		fmt.Sprintf("too many held connections (at most %d); try again later", p.cfg.MaxHeld))
}

// subscribe makes the hub subscription of a hold. A channel with a
// prev-id starts after that item when the channel's log has it, so what
// was published after the origin's answer was made (or while the client
// was away) is delivered from the log: hubbub's reliable mode. prev-id may
// also be a hubbub event id (EPOCH:SEQ). A channel without one, or whose
// prev-id is not among its newest prevIDScan events, starts live.
func (p *Proxy) subscribe(ctx context.Context, chans []Channel, transport string) (*hub.Subscription, error) {
	sub, _, err := p.subscribeReplay(ctx, chans, transport)
	return sub, err
}

// Replay says which events a hold gets from the log rather than live:
// per channel resumed from a prev-id, the seq of its newest event when the
// hold began. A close action among them was meant for the connections of
// its time, not for this one (a client reconnecting with the id before a
// close would otherwise be closed again at once, forever), so holds pass
// over replayed closes.
type Replay map[string]uint64

// Replayed reports whether it came from the log for this hold.
func (r Replay) Replayed(it *event.Item) bool {
	seq, ok := r[it.Topic]
	return ok && it.Seq <= seq
}

// subscribeReplay is subscribe, also returning the hold's Replay.
func (p *Proxy) subscribeReplay(ctx context.Context, chans []Channel, transport string) (*hub.Subscription, Replay, error) {
	topics := make([]string, 0, len(chans))
	var cursor event.Cursor
	replay := Replay{}
	seen := make(map[string]bool, len(chans))
	for _, c := range chans {
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		topics = append(topics, c.Name)
		if c.PrevID == "" {
			continue
		}
		pos, newest, ok, err := p.positionOf(ctx, c.Name, c.PrevID)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			if cursor == nil {
				cursor = event.Cursor{}
			}
			cursor[c.Name] = pos
			replay[c.Name] = newest
		}
	}
	sub, err := p.cfg.Hub.Subscribe(ctx, hub.SubscribeRequest{Topics: topics, Cursor: cursor, Transport: transport})
	if err != nil {
		return nil, nil, err
	}
	return sub, replay, nil
}

// positionOf finds the log position of the item id in topic, and the seq
// of the topic's newest event.
func (p *Proxy) positionOf(ctx context.Context, topic, id string) (pos event.Position, newest uint64, ok bool, err error) {
	direct, perr := event.ParsePosition(id)
	for _, n := range []int{prevIDFirst, prevIDScan} {
		res, err := p.cfg.Hub.Retrieve(ctx, hub.RetrieveRequest{Topics: []string{topic}, Count: n, MaxBytes: prevIDMaxBytes})
		if err != nil {
			return pos, 0, false, fmt.Errorf("look up prev-id: %w", err)
		}
		if len(res.Events) == 0 {
			break
		}
		newest = max(newest, res.Events[len(res.Events)-1].Seq)
		if perr == nil {
			return direct, newest, true, nil
		}
		for i := len(res.Events) - 1; i >= 0; i-- {
			e := res.Events[i]
			if e.ContentType == ItemContentType && FormatsOf(e).ID == id {
				return e.Position(), newest, true, nil
			}
		}
		if len(res.Events) < n {
			break // the whole log was read
		}
	}
	if perr == nil {
		return direct, newest, true, nil // an empty topic: the hub decides (a reset)
	}
	return pos, newest, false, nil
}

// holdResponse holds a long-poll (Grip-Hold: response): the origin's
// answer, buffered (at most MaxOriginBody), is the answer on timeout or
// shutdown; the first item with an http-response format published to a
// channel after the hold began (or after its prev-id) answers instead.
// Items without that format are passed over.
func (p *Proxy) holdResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, in Instruction) {
	body, err := readBounded(resp.Body, p.cfg.MaxOriginBody)
	if err != nil {
		p.log.Warn("grip: response hold", "path", r.URL.Path, "err", err)
		plainError(w, http.StatusBadGateway, "the origin's answer is too large to hold")
		return
	}
	if !p.acquire() {
		p.refuseHeld(w)
		return
	}
	defer p.release()
	ctx, cancel := context.WithTimeout(r.Context(), in.Timeout)
	defer cancel()
	sub, err := p.subscribe(ctx, in.Channels, NameResponse)
	if err != nil {
		p.holdFailed(w, r, err)
		return
	}
	defer sub.Close()
	p.obs.Connected(NameResponse, 1)
	defer p.obs.Connected(NameResponse, -1)
	for {
		msgs, err := sub.Next(ctx, nil)
		if err != nil {
			if errors.Is(err, broker.ErrSlow) {
				p.obs.SlowDisconnect(NameResponse)
			}
			if r.Context().Err() == nil || shuttingDown(r) {
				// Timed out, cut off or shutting down: the origin's own
				// answer, after which the client asks again.
				writeBuffered(w, in.status(resp), resp.Header, body)
			}
			return
		}
		for _, m := range msgs {
			if m.Item == nil {
				continue
			}
			if hr := p.renders.get(m.Item).Formats.HTTPResponse; hr != nil {
				writeHTTPResponse(w, resp.Header, hr)
				p.obs.Delivered(NameResponse, 1)
				return
			}
		}
	}
}

// writeHTTPResponse answers with a published http-response, as Pushpin
// does: its code (200 when none), the origin's headers with the
// published ones in their place (hop-by-hop ones and Content-Length left
// out), and its body. The reason phrase is the standard one for the code
// (Go's server writes no other).
func writeHTTPResponse(w http.ResponseWriter, origin http.Header, hr *HTTPResponse) {
	h := origin.Clone()
	removeGrip(h)
	published := make(http.Header, len(hr.Headers))
	for _, kv := range hr.Headers {
		published.Add(kv[0], kv[1])
	}
	for k, vs := range published {
		h[k] = vs
	}
	removeHop(h)
	h.Del("Content-Length")
	var body []byte
	switch {
	case hr.Body != nil:
		body = []byte(*hr.Body)
	default:
		body = hr.BodyBin
	}
	code := hr.Code
	if code == 0 {
		code = http.StatusOK
	}
	writeBuffered(w, code, h, body)
}

// holdFailed answers a hold whose subscription could not start.
func (p *Proxy) holdFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	p.log.Error("grip: hold failed", "path", r.URL.Path, "err", err)
	plainError(w, http.StatusServiceUnavailable, "the store could not serve this request; try again")
}

// shuttingDown reports whether r ends because the server shuts down
// (the server cancels every request's base context with
// transport.ErrShutdown).
func shuttingDown(r *http.Request) bool {
	return errors.Is(context.Cause(r.Context()), transport.ErrShutdown)
}

// holdStream holds a stream (Grip-Hold: stream): see stream.go.
func (p *Proxy) holdStream(w http.ResponseWriter, r *http.Request, resp *http.Response, in Instruction) {
	if !p.acquire() {
		p.refuseHeld(w)
		return
	}
	defer p.release()
	sub, replay, err := p.subscribeReplay(r.Context(), in.Channels, NameStream)
	if err != nil {
		p.holdFailed(w, r, err)
		return
	}
	copyHeaders(w.Header(), resp.Header)
	w.Header().Del("Content-Length") // the stream goes on after the body
	s := &stream{p: p, w: w, r: r, rc: http.NewResponseController(w), replay: replay}
	w.WriteHeader(in.status(resp))
	p.obs.Connected(NameStream, 1)
	defer p.obs.Connected(NameStream, -1)
	s.run(resp, in, sub)
}

// setDeadline is the write deadline of one write to a held client.
func setDeadline(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
}
