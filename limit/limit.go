// Package limit bounds what one client can cost the hub: how long a
// request body may take to arrive, how many requests one client address
// may have open at once, and how fast one publisher may publish. The server
// wires one [Limiter] in front of every route ([Limiter.Wrap]); the
// transports ask [Limiter.AllowKey], with the publisher the server names,
// once they have authorised a publish (HTTP and WebSocket alike).
//
// Every refusal is a plain-text answer with a status a client can act on
// (408, 429 with Retry-After) and is reported to Options.OnReject under one
// of the names below, for metrics.
package limit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Names of the limits, as passed to Options.OnReject (and used as the
// "limit" label of hubbub_limit_rejections_total).
const (
	ConnsPerIP  = "conns_per_ip"
	PublishRate = "publish_rate"
	ReadTimeout = "read_timeout"
)

// connsRetryAfter is the Retry-After sent with a 429 for too many
// connections: the limit frees a slot only when another request of the
// same client ends, which the hub cannot predict.
const connsRetryAfter = 5 * time.Second

// CloseReason is the reason of the WebSocket close (code 1008, policy
// violation) sent to an upgrade over the per-address limit. A browser
// cannot read the status of a refused upgrade, so the upgrade is accepted
// and the connection closed at once with this reason.
const CloseReason = "too many connections from your address"

// Options configure a Limiter. Zero values turn each limit off.
type Options struct {
	// ReadTimeout bounds how long a request body may take to arrive,
	// counted from when its handler starts; 0 = no bound. Requests
	// without a body (every streaming GET, WebSocket upgrades) are not
	// affected.
	ReadTimeout time.Duration
	// MaxConnsPerIP is how many requests one client address may have in
	// flight at once (a stream or WebSocket counts until it ends); 0 = no
	// limit.
	MaxConnsPerIP int
	// PublishRate is the publish requests per second allowed per rate key
	// (a token bucket, refilled continuously); 0 = no limit.
	PublishRate float64
	// PublishBurst is the bucket's size; 0 = one second's worth, at least 1.
	PublishBurst int
	// MaxTrackedKeys bounds the rate buckets kept (10000 when 0). When
	// full, idle buckets are dropped first, then arbitrary ones: a dropped
	// key starts again with a full bucket.
	MaxTrackedKeys int
	// ClientAddr names the client of a request; nil = the host of
	// r.RemoteAddr. A trusted-proxy rule plugs in here.
	ClientAddr func(*http.Request) string
	// RateKey names the publisher whose bucket a publish draws on; nil =
	// "key:" and the SHA-256 of the bearer token when there is one, else
	// "addr:" and ClientAddr.
	RateKey func(*http.Request) string
	// WSOriginPatterns are passed to websocket.Accept when an upgrade over
	// the limit is accepted only to be closed.
	WSOriginPatterns []string
	// OnReject is told of every refusal, by limit name. It must be safe
	// for concurrent use and must not block.
	OnReject func(limit string)
}

// Limiter applies Options. It is safe for concurrent use.
type Limiter struct {
	opts  Options
	conns conns
	rates *buckets // nil when PublishRate is 0
}

// New returns a Limiter for opts.
func New(opts Options) *Limiter {
	if opts.ClientAddr == nil {
		opts.ClientAddr = RemoteHost
	}
	if opts.RateKey == nil {
		addr := opts.ClientAddr
		opts.RateKey = func(r *http.Request) string { return DefaultRateKey(r, addr) }
	}
	if opts.OnReject == nil {
		opts.OnReject = func(string) {}
	}
	l := &Limiter{opts: opts, conns: conns{n: make(map[string]int)}}
	if opts.PublishRate > 0 {
		burst := opts.PublishBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(opts.PublishRate)))
		}
		maxKeys := opts.MaxTrackedKeys
		if maxKeys <= 0 {
			maxKeys = 10000
		}
		l.rates = newBuckets(opts.PublishRate, burst, maxKeys)
	}
	return l
}

// RemoteHost is the host part of r.RemoteAddr (all of it when it has no
// port).
func RemoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// DefaultRateKey is "key:" and the hex SHA-256 of r's bearer token when it
// has one, else "addr:" and clientAddr(r).
func DefaultRateKey(r *http.Request, clientAddr func(*http.Request) string) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if token = strings.TrimSpace(token); ok && strings.EqualFold(scheme, "Bearer") && token != "" {
		sum := sha256.Sum256([]byte(token))
		return "key:" + hex.EncodeToString(sum[:])
	}
	return "addr:" + clientAddr(r)
}

// Wrap is the door in front of every route. It refuses a request whose
// client address already has MaxConnsPerIP requests in flight (429 with
// Retry-After; a WebSocket upgrade is accepted and closed with code 1008
// and CloseReason), holds the slot until next returns, and gives a request
// body ReadTimeout to arrive: a body still incomplete then fails to read,
// the answer is 408 unless next has answered already, and the connection
// is closed.
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.opts.MaxConnsPerIP > 0 {
			addr := l.opts.ClientAddr(r)
			if !l.conns.acquire(addr, l.opts.MaxConnsPerIP) {
				l.opts.OnReject(ConnsPerIP)
				l.refuseConn(w, r)
				return
			}
			defer l.conns.release(addr)
		}
		if l.opts.ReadTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			l.serveBody(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (l *Limiter) refuseConn(w http.ResponseWriter, r *http.Request) {
	msg := fmt.Sprintf("too many connections from your address: at most %d at once; close one or try again later", l.opts.MaxConnsPerIP)
	if !isWebSocketUpgrade(r) {
		TooMany(w, connsRetryAfter, msg)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  l.opts.WSOriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered the client
	}
	// Close waits up to 5 s for the client's close frame; the slot was
	// never taken, so this wait costs the client's count nothing.
	_ = c.Close(websocket.StatusPolicyViolation, CloseReason)
}

func isWebSocketUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "websocket") {
				return true
			}
		}
	}
	return false
}

// serveBody serves r with its body under the read deadline.
func (l *Limiter) serveBody(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(l.opts.ReadTimeout)); err != nil {
		next.ServeHTTP(w, r) // the writer has no deadlines (httptest)
		return
	}
	body := &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: l.opts.ReadTimeout}
	tw := &trackingWriter{ResponseWriter: w}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = body
	next.ServeHTTP(tw, r2)
	if body.timedOut {
		l.opts.OnReject(ReadTimeout)
		if !tw.wrote {
			w.Header().Set("Connection", "close")
			plain(w, http.StatusRequestTimeout, BodyTimeoutError{l.opts.ReadTimeout}.Error())
		}
	}
}

// deadlineBody lifts the read deadline once the body has been read to its
// end, so that the server's background read (which watches for the client
// going away) does not time out while a handler is still working. (Go
// 1.26's net/http clears it too when that read starts; this does not rely
// on it.)
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	done     bool
	timedOut bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
		err = BodyTimeoutError{b.timeout}
	case errors.Is(err, io.EOF) && !b.done:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// BodyTimeoutError is the error a request body's Read returns once the
// read timeout has passed. It is an os.ErrDeadlineExceeded.
type BodyTimeoutError struct{ Timeout time.Duration }

func (e BodyTimeoutError) Error() string {
	return fmt.Sprintf("the request body did not arrive within %s", e.Timeout)
}

func (BodyTimeoutError) Unwrap() error { return os.ErrDeadlineExceeded }

// trackingWriter notes whether the handler has answered.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(p)
}

// Flush forwards to the underlying writer.
func (t *trackingWriter) Flush() {
	t.wrote = true
	_ = http.NewResponseController(t.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// conns counts the requests in flight per client address. An address with
// none is not kept.
type conns struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *conns) acquire(addr string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[addr] >= limit {
		return false
	}
	c.n[addr]++
	return true
}

func (c *conns) release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[addr]--; c.n[addr] <= 0 {
		delete(c.n, addr)
	}
}

// InFlight returns the requests addr has in flight (for tests and the
// admin API).
func (l *Limiter) InFlight(addr string) int {
	l.conns.mu.Lock()
	defer l.conns.mu.Unlock()
	return l.conns.n[addr]
}

// AllowPublish is AllowKey for r's rate key (Options.RateKey).
func (l *Limiter) AllowPublish(r *http.Request) (time.Duration, bool) {
	if l.rates == nil {
		return 0, true
	}
	return l.AllowKey(l.opts.RateKey(r))
}

// AllowKey takes one token from the bucket of the publisher named key; the
// transports ask it (through the server) after authorising a publish, so
// that only authorised publishes draw on a bucket. When the bucket is
// empty it takes none and returns how long until one is there.
func (l *Limiter) AllowKey(key string) (time.Duration, bool) {
	if l.rates == nil {
		return 0, true
	}
	wait, ok := l.rates.take(key, time.Now())
	if !ok {
		l.opts.OnReject(PublishRate)
	}
	return wait, ok
}

// TooMany answers 429 with a Retry-After of wait in whole seconds, rounded
// up, and msg.
func TooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", retrySeconds(wait))
	plain(w, http.StatusTooManyRequests, msg)
}

func retrySeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
