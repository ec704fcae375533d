// Package grip makes hubbub a GRIP proxy (Pushpin compatible): every
// request to the GRIP listener is proxied to an origin web application,
// which may answer with GRIP instructions (Grip-Hold and friends) asking
// hubbub to hold the client's connection open as a subscriber of channels.
// Channels are hubbub topics: whatever is published to a topic, through
// POST /publish/ in Pushpin's JSON or through hubbub's own POST /publish,
// reaches the connections held on it (see item.go for how an event becomes
// each GRIP format).
//
// One door: New builds a Proxy from a Config; the server serves the Proxy
// on --grip-listen and its Publish handler on the main listener.
//
// Held connections are hub subscriptions, so they are fed across nodes
// (Redis) like every other subscriber, and what a connection missed is
// read from the topic's log (see hold.go).
package grip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

// Transport names, as used in metrics.
const (
	NameStream   = "grip-stream"
	NameResponse = "grip-response"
	NameWS       = "grip-ws"
)

// LimitHeld is the name of the held-connections limit in metrics.
const LimitHeld = "grip_held"

// Observer is told what the proxy does, for metrics; the server's metrics
// (the transports' Observer) implement it. Implementations must be safe
// for concurrent use and must not block.
type Observer interface {
	Connected(transport string, delta int)
	Delivered(transport string, n int)
	SlowDisconnect(transport string)
	Limited(limit string)
}

type nopObserver struct{}

func (nopObserver) Connected(string, int) {}
func (nopObserver) Delivered(string, int) {}
func (nopObserver) SlowDisconnect(string) {}
func (nopObserver) Limited(string)        {}

// Hub is what the proxy needs of the hub; *hub.Hub implements it.
type Hub interface {
	Publish(ctx context.Context, drafts []event.Draft) ([]store.Result, error)
	Subscribe(ctx context.Context, req hub.SubscribeRequest) (*hub.Subscription, error)
	Retrieve(ctx context.Context, req hub.RetrieveRequest) (hub.RetrieveResult, error)
}

// Access decides who may publish through POST /publish/; *access.Policy
// implements it.
type Access interface {
	Identify(r *http.Request) access.Identity
	Publish(id access.Identity, topics []string) access.Decision
	ClientAddr(r *http.Request) string
}

// Config configures a Proxy. Zero values take the defaults shown.
type Config struct {
	// Origin is the default origin (http://host:port[/base]), used for
	// requests no route's prefix matches; "" answers those with 502.
	Origin string
	// Routes are "PREFIX=URL" pairs: a request whose path starts with
	// PREFIX goes to URL (the longest prefix wins). The path is passed on
	// unchanged.
	Routes []string
	// SigKey signs Grip-Sig (HS256). Without one the proxy answers every
	// request 503 (Publish still works): a hub that only takes GRIP
	// publishes for other nodes' listeners needs none.
	SigKey []byte
	// MaxHeld bounds the connections held at once (10,000); past it a
	// hold is answered 503.
	MaxHeld int
	// MaxWebSockets bounds the WebSocket-over-HTTP connections open at
	// once (10,000); past it an upgrade is answered 503. They count
	// against MaxHeld too.
	MaxWebSockets int
	// MaxOriginBody bounds what is buffered of an origin answer: the body
	// of a response hold (its timeout answer) and of a grip-instruct
	// answer (1 MiB); past it the client gets 502. Bodies streamed to the
	// client (plain answers, stream holds) are not buffered and not
	// bounded.
	MaxOriginBody int64
	// OriginTimeout bounds how long the origin may take to answer a
	// request with its headers (30s); past it the client gets 504.
	OriginTimeout time.Duration
	// MaxPublishBody bounds a POST /publish/ body (1 MiB).
	MaxPublishBody int64
	// Transport makes the requests to the origin (nil: a dedicated
	// http.Transport).
	Transport http.RoundTripper
	Hub       Hub
	Access    Access
	// AllowPublish is asked once a POST /publish/ is authorised, as for
	// POST /publish (the publish rate): false and the wait refuse it with
	// 429. nil allows every one.
	AllowPublish func(r *http.Request, id access.Identity) (time.Duration, bool)
	Observer     Observer
	Logger       *slog.Logger
	// Now is the clock for Grip-Sig (time.Now when nil).
	Now func() time.Time
}

// Proxy is the GRIP proxy. It is safe for concurrent use.
type Proxy struct {
	cfg    Config
	routes []route // longest prefix first
	def    *url.URL
	client *http.Client
	obs    Observer
	log    *slog.Logger
	// held counts the connections held now (response and stream holds,
	// and WebSocket-over-HTTP connections), against cfg.MaxHeld.
	held atomic.Int64
	// wsConns counts the WebSocket-over-HTTP connections open now, against
	// cfg.MaxWebSockets (ws.go).
	wsConns atomic.Int64
	// sockets counts the WebSocket handlers running: their connections
	// are hijacked, so http.Server.Shutdown does not wait for them.
	sockets sync.WaitGroup
	// renders shares the GRIP rendering of an event among connections.
	renders renderCache
}

// WaitWebSockets waits until every WebSocket-over-HTTP handler has
// returned, or ctx ends. The server calls it at shutdown, after
// cancelling the requests' base context.
func (p *Proxy) WaitWebSockets(ctx context.Context) {
	done := make(chan struct{})
	go func() { p.sockets.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// route sends paths under prefix to target.
type route struct {
	prefix string
	target *url.URL
}

// New checks cfg and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Hub == nil {
		return nil, errors.New("grip: no hub")
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 10000
	}
	if cfg.MaxWebSockets <= 0 {
		cfg.MaxWebSockets = 10000
	}
	if cfg.MaxOriginBody <= 0 {
		cfg.MaxOriginBody = 1 << 20
	}
	if cfg.OriginTimeout <= 0 {
		cfg.OriginTimeout = 30 * time.Second
	}
	if cfg.MaxPublishBody <= 0 {
		cfg.MaxPublishBody = 1 << 20
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Proxy{cfg: cfg, obs: cfg.Observer, log: cfg.Logger}
	if cfg.Origin != "" {
		u, err := ParseOrigin(cfg.Origin)
		if err != nil {
			return nil, fmt.Errorf("grip origin: %w", err)
		}
		p.def = u
	}
	for _, s := range cfg.Routes {
		r, err := ParseRoute(s)
		if err != nil {
			return nil, err
		}
		p.routes = append(p.routes, r)
	}
	sort.SliceStable(p.routes, func(i, j int) bool { return len(p.routes[i].prefix) > len(p.routes[j].prefix) })
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 nil, // the origin is reached directly, never through HTTP_PROXY
			ResponseHeaderTimeout: cfg.OriginTimeout,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true, // bodies pass through as the origin sent them
		}
	}
	// No redirects are followed: a redirect is the origin's answer to the
	// client.
	p.client = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return p, nil
}

// ParseOrigin checks an origin URL: http or https, a host, no query,
// user or fragment.
func ParseOrigin(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("%q: want http://HOST:PORT or https://HOST:PORT", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("%q: an origin has no query, fragment or user", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// ParseRoute reads "PREFIX=URL", e.g. "/api/=http://127.0.0.1:3000".
func ParseRoute(s string) (route, error) {
	prefix, target, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(prefix, "/") {
		return route{}, fmt.Errorf("grip route %q: want /PREFIX=http://HOST:PORT, e.g. /api/=http://127.0.0.1:3000", s)
	}
	u, err := ParseOrigin(target)
	if err != nil {
		return route{}, fmt.Errorf("grip route %q: %w", s, err)
	}
	return route{prefix: prefix, target: u}, nil
}

// originFor is the origin of a request path: the longest matching route's,
// else the default; nil when there is none.
func (p *Proxy) originFor(path string) *url.URL {
	for _, r := range p.routes {
		if strings.HasPrefix(path, r.prefix) {
			return r.target
		}
	}
	return p.def
}

// ServeHTTP proxies r to its origin and carries out the origin's GRIP
// instructions. A WebSocket upgrade goes to the WebSocket-over-HTTP side.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(p.cfg.SigKey) == 0 {
		plainError(w, http.StatusServiceUnavailable, "the GRIP proxy has no signing key (--grip-sig-key)")
		return
	}
	if isWebSocket(r) {
		p.serveWebSocket(w, r)
		return
	}
	p.serveHTTP(w, r)
}

// isWebSocket reports whether r asks to upgrade to a WebSocket.
func isWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// acquire takes a held-connection slot; false when MaxHeld are held (the
// caller answers 503).
func (p *Proxy) acquire() bool {
	if p.held.Add(1) > int64(p.cfg.MaxHeld) {
		p.held.Add(-1)
		p.obs.Limited(LimitHeld)
		return false
	}
	return true
}

// release gives back a slot taken by acquire.
func (p *Proxy) release() { p.held.Add(-1) }

// Held is the number of connections held now.
func (p *Proxy) Held() int { return int(p.held.Load()) }

// plainError writes a plain-text error answer.
func plainError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
