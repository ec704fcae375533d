// Package origin is the hub's one door for browsers on other origins: a
// middleware that answers CORS for the endpoints a web page may call, and
// refuses cross-site writes (CSRF) whatever their content type.
//
// Two rules, both decided from request headers alone, before any body is
// read:
//
//   - CORS. With origins configured, a request to a page endpoint
//     (/publish, /events, /documents, /topics/...) whose Origin is allowed
//     gets Access-Control-Allow-Origin (the origin itself with
//     Access-Control-Allow-Credentials: true for a listed origin; "*"
//     without credentials when only "*" covers it) and the exposed
//     headers; a preflight (OPTIONS with Access-Control-Request-Method) is
//     answered here with 204, or 403 for an origin not allowed. With no
//     origins configured no CORS header is ever sent.
//   - Writes. A POST to /publish, /publish/ (GRIP), /hub or / whose Origin is present and is
//     neither the hub's own (the request's Host, or the public URL's) nor
//     allowed gets 403 with a plain reason, as does one marked
//     Sec-Fetch-Site: cross-site without an allowed Origin. A POST to the
//     admin API (/api/...) is stricter: only the hub's own origin, whatever
//     --cors-origin allows, since a page could otherwise use a local
//     browser's admin rights (add an upstream, start a backup). Requests
//     without these headers (curl, servers, SDKs) are not affected.
package origin

import (
	"net/http"
	"net/url"
	"strings"
)

// The headers the JavaScript client sends, and the answer headers a page
// may read.
const (
	allowHeaders  = "Authorization, Content-Type, Last-Event-ID, Idempotency-Key, Accept"
	exposeHeaders = "Hubbub-Cursor, Link, Retry-After, ETag, Last-Modified, WWW-Authenticate"
	allowMethods  = "GET, HEAD, POST"
	maxAge        = "600" // seconds a browser may cache a preflight answer
)

// Options configure a Policy.
type Options struct {
	// Allowed are the origins (scheme://host[:port], as config validates
	// them) whose pages may call the hub; "*" allows any origin, without
	// credentials.
	Allowed []string
	// PublicURL is the hub's external base URL, if configured: its origin
	// counts as the hub's own.
	PublicURL string
}

// Policy is the configured middleware. It is immutable and safe for
// concurrent use.
type Policy struct {
	listed map[string]bool // lower-cased origins
	any    bool            // "*" configured
	public string          // lower-cased origin of PublicURL, or ""
}

// New builds a Policy from opts.
func New(opts Options) *Policy {
	p := &Policy{listed: map[string]bool{}}
	for _, o := range opts.Allowed {
		if o == "*" {
			p.any = true
			continue
		}
		p.listed[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	if u, err := url.Parse(opts.PublicURL); err == nil && u.Host != "" {
		p.public = strings.ToLower(u.Scheme + "://" + u.Host)
	}
	return p
}

// Wrap returns next behind the policy: CORS headers and preflights on the
// page endpoints, and the write check on POST /publish, /hub and /.
func (p *Policy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		cors := p.enabled() && pageEndpoint(r.URL.Path)
		if cors {
			w.Header().Add("Vary", "Origin")
		}
		if cors && r.Method == http.MethodOptions && o != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			p.preflight(w, r, o)
			return
		}
		if r.Method == http.MethodPost && (writeEndpoint(r.URL.Path) || strings.HasPrefix(r.URL.Path, "/api/")) {
			if reason := p.refuseWrite(r, o); reason != "" {
				http.Error(w, reason, http.StatusForbidden)
				return
			}
		}
		if cors && o != "" {
			p.allow(w.Header(), o)
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Policy) enabled() bool { return p.any || len(p.listed) > 0 }

// allow sets the CORS answer headers for origin o when it is allowed, and
// reports whether it was.
func (p *Policy) allow(h http.Header, o string) bool {
	switch {
	case p.listed[strings.ToLower(o)]:
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
	case p.any:
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	h.Set("Access-Control-Expose-Headers", exposeHeaders)
	return true
}

func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, o string) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if !p.allow(h, o) {
		http.Error(w, "origin "+o+" may not call this hub: its operator can allow it with --cors-origin", http.StatusForbidden)
		return
	}
	h.Set("Access-Control-Allow-Methods", allowMethods)
	h.Set("Access-Control-Allow-Headers", allowHeaders)
	h.Set("Access-Control-Max-Age", maxAge)
	w.WriteHeader(http.StatusNoContent)
}

// refuseWrite returns why a POST from origin o (possibly "") is refused,
// or "" when it may go on.
func (p *Policy) refuseWrite(r *http.Request, o string) string {
	if o == "" {
		if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
			return "cross-site request refused: the browser marked it Sec-Fetch-Site: cross-site and sent no Origin"
		}
		return ""
	}
	if p.own(r, o) {
		return ""
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return "cross-origin request to the admin API refused: only the hub's own pages may POST to /api/"
	}
	if p.any || p.listed[strings.ToLower(o)] {
		return ""
	}
	return "cross-origin write refused: origin " + o + " is not this hub's own; its operator can allow it with --cors-origin"
}

// own reports whether origin o is the hub's: its host[:port] is the
// request's Host (either scheme, so that a hub behind a TLS-terminating
// proxy still knows its own pages), or o is the public URL's origin.
func (p *Policy) own(r *http.Request, o string) bool {
	lo := strings.ToLower(o)
	if p.public != "" && lo == p.public {
		return true
	}
	u, err := url.Parse(lo)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // includes "null" (sandboxed frames, file: pages)
	}
	return u.Host == strings.ToLower(r.Host) || u.Host == defaultPort(strings.ToLower(r.Host), u.Scheme)
}

// defaultPort strips the scheme's default port from host, as browsers do
// in Origin.
func defaultPort(host, scheme string) string {
	if scheme == "https" {
		return strings.TrimSuffix(host, ":443")
	}
	return strings.TrimSuffix(host, ":80")
}

// pageEndpoint reports whether a page on another origin may call path.
func pageEndpoint(path string) bool {
	switch path {
	case "/publish", "/events", "/documents":
		return true
	}
	return strings.HasPrefix(path, "/topics/")
}

// writeEndpoint reports whether a POST to path writes: publish, or a
// WebSub request (subscribe, or a thin ping).
func writeEndpoint(path string) bool {
	return path == "/publish" || path == "/publish/" || path == "/hub" || path == "/"
}
