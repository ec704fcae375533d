// Package transport holds hubbub's HTTP transports, one file each: publish,
// Server-Sent Events, long-poll, HTTP (NDJSON) streaming and plain
// retrieval. Every one of them is written against the hub API (Publish,
// Retrieve, Subscribe); none touches the log or broker directly, and none
// deals with history, gaps or duplicates itself.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
)

// Transport names, as used in metrics.
const (
	NameSSE      = "sse"
	NamePoll     = "poll"
	NameStream   = "stream"
	NameRetrieve = "retrieve"
)

// Observer is told what the transports do, for metrics. Implementations
// must be safe for concurrent use and must not block.
type Observer interface {
	Connected(transport string, delta int)
	Delivered(transport string, n int)
	SlowDisconnect(transport string)
	// Limited is told of a request refused by a limit (the Limit*
	// names).
	Limited(limit string)
}

type nopObserver struct{}

func (nopObserver) Connected(string, int) {}
func (nopObserver) Delivered(string, int) {}
func (nopObserver) SlowDisconnect(string) {}
func (nopObserver) Limited(string)        {}

// Options tune the transports. Zero values take the defaults shown.
type Options struct {
	MaxBody        int64         // publish body limit in bytes (1 MiB)
	Heartbeat      time.Duration // SSE comment / NDJSON heartbeat interval (25s)
	SSERetry       time.Duration // the retry: hint sent once to SSE clients (2s)
	PollTimeout    time.Duration // default long-poll wait (30s)
	PollMaxTimeout time.Duration // longest long-poll wait a client may ask (120s)
	// PublicURL is the hub's external base URL for feed links; "" derives
	// it from the request.
	PublicURL string
	Observer  Observer
	Logger    *slog.Logger
	// Access decides who may read and publish; nil is a policy with no
	// keys (see access.Options).
	Access Access
	// WSOriginPatterns are the browser origins (host patterns) allowed to
	// open WebSockets besides the hub's own host.
	WSOriginPatterns []string
	// AllowPublish is asked once a publish is authorised (POST /publish,
	// and each WebSocket publish op with its upgrade request), with the
	// identity that authorised it, so the caller need not verify a token
	// again: false (and the wait until the next is allowed) refuses it,
	// with 429 and Retry-After or a rate_limited error op. nil allows
	// every one.
	AllowPublish func(r *http.Request, id access.Identity) (time.Duration, bool)
	// WSFrameRate and WSFrameBurst bound the messages per second one
	// WebSocket client may send (50 and 100); over them it gets a
	// rate_limited error op and the connection is closed with 1008.
	WSFrameRate  float64
	WSFrameBurst int
	// MaxResponseBytes bounds a retrieve or long-poll answer (16 MiB):
	// past it the answer stops early with the cursor to page on from, but
	// always holds at least one event.
	MaxResponseBytes int
}

// Handlers serves the HTTP transports over one Hub.
type Handlers struct {
	hub  *hub.Hub
	opts Options
	obs  Observer
	log  *slog.Logger
	// sockets counts the WebSocket handlers running: their connections
	// are hijacked, so http.Server.Shutdown does not wait for them.
	sockets sync.WaitGroup
}

// ErrShutdown is the cause with which the server cancels the base context
// of every request when it shuts down (context.WithCancelCause). The
// transports then end long-lived requests cleanly instead of as if the
// client had gone: a long-poll answers its cursor with no events, and a
// WebSocket is closed with 1001 (going away).
var ErrShutdown = errors.New("the server is shutting down")

// shuttingDown reports whether r ends because the server shuts down.
func shuttingDown(r *http.Request) bool {
	return errors.Is(context.Cause(r.Context()), ErrShutdown)
}

// WaitWebSockets waits until every WebSocket handler has returned (after
// its close frame went out), or ctx ends. The server calls it at shutdown,
// after cancelling the requests' base context with ErrShutdown.
func (h *Handlers) WaitWebSockets(ctx context.Context) {
	done := make(chan struct{})
	go func() { h.sockets.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// New returns the transports for h.
func New(h *hub.Hub, opts Options) *Handlers {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 16 << 20
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 25 * time.Second
	}
	if opts.SSERetry <= 0 {
		opts.SSERetry = 2 * time.Second
	}
	if opts.PollTimeout <= 0 {
		opts.PollTimeout = 30 * time.Second
	}
	if opts.PollMaxTimeout < opts.PollTimeout {
		opts.PollMaxTimeout = max(120*time.Second, opts.PollTimeout)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.WSFrameRate <= 0 {
		opts.WSFrameRate = defaultFrameRate
	}
	if opts.WSFrameBurst <= 0 {
		opts.WSFrameBurst = defaultFrameBurst
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Access == nil {
		// A policy without keys, JWKS or files cannot fail to build.
		opts.Access, _ = access.New(context.Background(), access.Options{Logger: opts.Logger})
	}
	return &Handlers{hub: h, opts: opts, obs: opts.Observer, log: opts.Logger}
}

// Events serves GET /events: SSE for Accept: text/event-stream, long-poll
// for wait=poll, NDJSON streaming for wait=stream, and retrieval otherwise.
func (h *Handlers) Events(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, ok := h.authorizeRead(w, r, q.topics)
	if !ok {
		return
	}
	switch {
	case q.wait == "poll":
		h.poll(w, r, q, d.NotAfter)
	case q.wait == "stream":
		h.stream(w, r, q, d.NotAfter)
	case q.wait == "" && (q.format == "sse" || q.format == "" && acceptsSSE(r)):
		h.sse(w, r, q, d.NotAfter)
	default:
		h.retrieve(w, r, q)
	}
}

// reservedIn returns the first reserved topic the drafts name, or "".
func reservedIn(drafts []event.Draft) string {
	for _, d := range drafts {
		for _, t := range d.Topics {
			if event.IsReserved(t) {
				return t
			}
		}
	}
	return ""
}

// writeTimeout bounds how long one batch may take to reach a live client.
// A client that stops reading is thus dropped even while its socket buffer
// is full (the broker has cut its queue by then), instead of holding a
// goroutine and a connection forever.
const writeTimeout = 30 * time.Second

// liveWriter writes a live stream's batches, each flushed at once and
// bounded by writeTimeout. Moving a connection's write deadline updates a
// timer in the runtime's poller, which cost 11% of a node's CPU at one
// write per delivery (profiled with 19,000 SSE subscribers), so it moves
// only once less than half of writeTimeout is left: every write still has
// between writeTimeout/2 and writeTimeout to finish. Not safe for
// concurrent use; one per response.
type liveWriter struct {
	rc    *http.ResponseController
	w     http.ResponseWriter
	until time.Time // the deadline last set; zero before the first write
}

func newLiveWriter(w http.ResponseWriter) *liveWriter {
	return &liveWriter{rc: http.NewResponseController(w), w: w}
}

// write writes and flushes b.
func (lw *liveWriter) write(b []byte) error {
	if now := time.Now(); lw.until.Sub(now) < writeTimeout/2 {
		lw.until = now.Add(writeTimeout)
		// Not every ResponseWriter supports deadlines (httptest's does
		// not); the write then simply has none.
		_ = lw.rc.SetWriteDeadline(lw.until)
	}
	if _, err := lw.w.Write(b); err != nil {
		return err
	}
	return lw.rc.Flush()
}

// retrySeconds is a wait as whole seconds for Retry-After, rounded up, at
// least 1.
func retrySeconds(wait time.Duration) int { return max(1, int(math.Ceil(wait.Seconds()))) }

// httpError writes a plain-text error answer.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// fail answers an error from parsing or the hub: 400 for bad input, 503
// when the store cannot serve.
func (h *Handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	var ref *hub.Refusal
	switch {
	case errors.As(err, &ref):
		httpError(w, ref.Status, ref.Reason)
	case errors.As(err, &mbe):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", mbe.Limit))
	case event.IsValidation(err):
		httpError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, hub.ErrNoDocuments):
		httpError(w, http.StatusNotImplemented, "the configured store cannot list documents")
	case r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	default:
		h.log.Error("request failed", "path", r.URL.Path, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the store could not serve this request; try again")
	}
}
