package grip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// maxNextLinks bounds the Grip-Link rel=next requests one client request
// makes (each part is appended to the answer).
const maxNextLinks = 1000

// serveHTTP proxies one plain HTTP request: the origin's answer passes
// through unchanged unless it holds GRIP instructions, which are carried
// out (hold.go). Errors reaching the origin are 502 (504 for a time-out)
// with a plain reason; bad instructions are 502 too, and logged.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	origin := p.originFor(r.URL.Path)
	if origin == nil {
		plainError(w, http.StatusBadGateway, "no origin serves this path")
		return
	}
	resp, err := p.fetch(r.Context(), r, origin, nil)
	if err != nil {
		p.originFailed(w, r, err)
		return
	}
	defer resp.Body.Close()
	var in Instruction
	if isInstruct(resp.Header) {
		// The instructions are the body; the answer for the client is
		// in it.
		var answer *http.Response
		if answer, in, err = p.instructResponse(resp); err == nil {
			resp = answer
		}
	} else {
		in, err = ParseInstruction(resp.Header, resp.Request.URL)
	}
	if err != nil {
		p.log.Warn("grip: bad instructions from the origin", "path", r.URL.Path, "err", err)
		plainError(w, http.StatusBadGateway, "the origin's GRIP instructions are invalid")
		return
	}
	switch in.Hold {
	case HoldResponse:
		p.holdResponse(w, r, resp, in)
	case HoldStream:
		p.holdStream(w, r, resp, in)
	default:
		p.passThrough(w, r, resp, in)
	}
}

// fetch sends r (or, with target, a GET of target) to origin.
func (p *Proxy) fetch(ctx context.Context, r *http.Request, origin *url.URL, target *url.URL) (*http.Response, error) {
	out, err := p.OriginRequest(ctx, r, origin, target)
	if err != nil {
		return nil, err
	}
	return p.client.Do(out)
}

// originFailed answers a request whose origin could not be reached.
func (p *Proxy) originFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	p.log.Warn("grip: origin request failed", "path", r.URL.Path, "err", err)
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		plainError(w, http.StatusGatewayTimeout, "the origin did not answer in time")
		return
	}
	plainError(w, http.StatusBadGateway, "the origin could not be reached")
}

// passThrough writes the origin's answer to the client as it came
// (without hop-by-hop and Grip-* headers), its body streamed; with a
// Grip-Link rel=next, the next parts follow (stream.go), and a later
// part's stream hold is honoured.
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, resp *http.Response, in Instruction) {
	copyHeaders(w.Header(), resp.Header)
	if in.Next == nil {
		w.WriteHeader(in.status(resp))
		_ = streamBody(w, resp.Body)
		return
	}
	w.Header().Del("Content-Length") // the length grows with the next parts
	w.WriteHeader(in.status(resp))
	s := &stream{p: p, w: w, r: r, rc: http.NewResponseController(w)}
	s.run(resp, in, nil)
}

// readBounded reads all of body, at most limit bytes; more is an error.
func readBounded(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the origin's answer is larger than %d bytes", limit)
	}
	return b, nil
}

// writeBuffered writes a buffered answer: status, headers, body with its
// length.
func writeBuffered(w http.ResponseWriter, code int, h http.Header, body []byte) {
	copyHeaders(w.Header(), h)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
