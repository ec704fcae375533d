package grip

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1) a proxy does not
// pass on, in either direction.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHop deletes the hop-by-hop headers of h, including those its
// Connection header names.
func removeHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// removeGrip deletes every Grip-* header of h: a client cannot send the
// origin a Grip-Sig (or any other GRIP header) of its own, and a client
// never sees the origin's instructions.
func removeGrip(h http.Header) {
	for name := range h {
		if len(name) >= 5 && strings.EqualFold(name[:5], "Grip-") {
			delete(h, name)
		}
	}
}

// OriginRequest builds the request to send to origin for the client's
// request r, for the path and query target (r's own when target is nil):
// r's method, headers and body, with
//   - the hop-by-hop headers and every client-sent Grip-* header removed,
//   - Host kept as the client sent it (the origin sees the name the
//     client used, as behind Pushpin),
//   - X-Forwarded-For with the client's address appended, X-Forwarded-Proto
//     set to the scheme the client used and X-Forwarded-Host to its Host,
//   - Grip-Sig set to a fresh signature (sig.go).
//
// The request's context is ctx; the body is r's (the caller must not read
// r.Body afterwards).
func (p *Proxy) OriginRequest(ctx context.Context, r *http.Request, origin *url.URL, target *url.URL) (*http.Request, error) {
	u := *origin
	if target == nil {
		target = r.URL
	}
	u.Path = origin.Path + target.Path
	if target.RawPath != "" {
		u.RawPath = origin.Path + target.RawPath
	}
	u.RawQuery = target.RawQuery
	body := r.Body
	if target != r.URL || r.ContentLength == 0 {
		body = nil
	}
	method := r.Method
	if target != r.URL {
		method = http.MethodGet // a Grip-Link next part is fetched with GET
	}
	out, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		out.ContentLength = r.ContentLength
	}
	out.Header = r.Header.Clone()
	if target != r.URL { // a next part: a GET without the client's body
		out.Header.Del("Content-Length")
		out.Header.Del("Content-Type")
	}
	removeHop(out.Header)
	removeGrip(out.Header)
	out.Host = r.Host
	out.Header.Del("Accept-Encoding") // plain bodies: GRIP answers are read
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := out.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.Header.Set("X-Forwarded-Proto", proto)
	out.Header.Set("X-Forwarded-Host", r.Host)
	sig, err := p.sign()
	if err != nil {
		return nil, err
	}
	out.Header.Set("Grip-Sig", sig)
	return out, nil
}

// copyHeaders copies the origin's answer headers to the client, without
// hop-by-hop and Grip-* headers.
func copyHeaders(dst, src http.Header) {
	h := src.Clone()
	removeHop(h)
	removeGrip(h)
	for k, vs := range h {
		dst[k] = vs
	}
}

// streamBody copies body to w, flushing after each read so that a streamed
// answer reaches the client as the origin sends it. It returns the first
// error of either side.
func streamBody(w http.ResponseWriter, body io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
