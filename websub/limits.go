package websub

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hubbub/hubbub/event"
)

// Defaults of the request limits.
const (
	DefaultMaxPerHost    = 1000
	DefaultSubscribeRate = 10 // subscription requests per second per client; the burst is twice that
	// maxRateClients bounds the per-client limiter map; when it is full,
	// idle clients are forgotten first, then everyone.
	maxRateClients = 10000
)

// HostCounter is implemented by Records that count subscriptions by the
// host of their callback (lower-cased, without port: CallbackHost). Records
// without it are counted by listing every subscription.
type HostCounter interface {
	CountHost(ctx context.Context, host string) (int, error)
}

// CallbackHost is the host a callback's subscriptions are counted and
// throttled under: its lower-cased host name without the port, so that
// one server's ports and cases share one budget.
func CallbackHost(callback string) string {
	u, err := url.Parse(callback)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// refuse is an answer to a hub request that ServeHTTP writes instead of
// going on.
type refuse struct {
	status     int
	reason     string
	retryAfter time.Duration // 429: sent as Retry-After (whole seconds, at least 1)
	bearer     bool          // 401: sent with WWW-Authenticate: Bearer
}

func (f *refuse) write(w http.ResponseWriter) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.retryAfter.Seconds())), 10))
	}
	if f.bearer {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	plain(w, f.status, f.reason)
}

// checkSubscription applies the rules a subscribe or unsubscribe request
// must pass before anything is queued, in this order: the reserved-topic
// rule (for any credentials), the callback port rule, the per-client rate,
// the Authorize hook, and for a new subscription the per-host cap. On
// success job's lease is capped by the hook's notAfter. The per-host cap
// is checked again when the verified subscription is stored (apply), so
// concurrent requests exceed it by at most the verifications in flight.
func (h *Hub) checkSubscription(r *http.Request, job *verifyJob) *refuse {
	if event.IsReserved(job.Topic) || event.IsReserved(job.LogTopic) {
		return &refuse{status: http.StatusForbidden, reason: "websub: topics under " + event.SysPrefix + " are the hub's own and cannot be subscribed to"}
	}
	if !h.o.AllowPrivate && !allowedPort(job.Callback) {
		return &refuse{status: http.StatusBadRequest, reason: "websub: hub.callback must use port 80, 443 or 1024 and above"}
	}
	if wait, ok := h.rates.allow(h.clientAddr(r), h.now()); !ok {
		return &refuse{status: http.StatusTooManyRequests, retryAfter: wait, reason: "websub: too many subscription requests from this client; try again later"}
	}
	notAfter, f := h.authorize(r, job.Mode, job.LogTopic)
	if f != nil {
		return f
	}
	if job.Mode == ModeSubscribe && !notAfter.IsZero() {
		left := notAfter.Sub(h.now()) / time.Second
		if left < 1 {
			return &refuse{status: http.StatusUnauthorized, bearer: true, reason: "websub: the credentials expire before a lease could start"}
		}
		job.LeaseSeconds = min(job.LeaseSeconds, int64(left))
		job.NotAfter = notAfter
	}
	if job.Mode == ModeSubscribe {
		over, err := h.overHostCap(r.Context(), SubscriptionID(job.Topic, job.Callback), job.Callback)
		if err != nil {
			h.log.Error("websub: counting the callback host's subscriptions failed", "err", err)
			return &refuse{status: http.StatusServiceUnavailable, reason: "websub: cannot check the subscription limits; try again"}
		}
		if over {
			return &refuse{status: http.StatusForbidden, reason: hostCapReason}
		}
	}
	return nil
}

// hostCapReason is the answer to a subscription over the per-host cap.
const hostCapReason = "websub: the callback's host has as many subscriptions as this hub allows per host"

// authorize asks the Authorize hook about mode on topic (nil hook: allowed).
func (h *Hub) authorize(r *http.Request, mode, topic string) (time.Time, *refuse) {
	if h.o.Authorize == nil {
		return time.Time{}, nil
	}
	notAfter, status, reason := h.o.Authorize(r, mode, topic)
	return notAfter, hookRefusal(status, reason)
}

// hookRefusal is the answer for an Authorize status (0: none). A status
// that is not an error status is taken as 403.
func hookRefusal(status int, reason string) *refuse {
	if status == 0 {
		return nil
	}
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	if reason == "" {
		reason = http.StatusText(status)
	}
	return &refuse{status: status, reason: reason, bearer: status == http.StatusUnauthorized}
}

// clientAddr names r's client for the rate limit.
func (h *Hub) clientAddr(r *http.Request) string {
	if h.o.ClientAddr != nil {
		return h.o.ClientAddr(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allowedPort reports whether callback's port is 80, 443 or 1024 and above
// (the port implied by the scheme when none is given).
func allowedPort(callback string) bool {
	u, err := url.Parse(callback)
	if err != nil {
		return false
	}
	p := u.Port()
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && portOK(n)
}

func portOK(n int) bool { return n == 80 || n == 443 || (n >= 1024 && n <= 65535) }

// overHostCap reports whether callback's host already has MaxPerHost
// subscriptions other than the one with id.
func (h *Hub) overHostCap(ctx context.Context, id, callback string) (bool, error) {
	if h.o.MaxPerHost < 0 {
		return false, nil
	}
	if _, found, err := h.o.Records.Get(ctx, id); err != nil {
		return false, fmt.Errorf("websub: get subscription: %w", err)
	} else if found {
		return false, nil // a renewal
	}
	n, err := h.countHost(ctx, CallbackHost(callback))
	if err != nil {
		return false, err
	}
	return n >= h.o.MaxPerHost, nil
}

// countHost counts the subscriptions of host, through HostCounter when the
// records have it.
func (h *Hub) countHost(ctx context.Context, host string) (int, error) {
	if hc, ok := h.o.Records.(HostCounter); ok {
		n, err := hc.CountHost(ctx, host)
		if err != nil {
			return 0, fmt.Errorf("websub: count subscriptions of %s: %w", host, err)
		}
		return n, nil
	}
	n, after := 0, ""
	for range 1 << 20 { // bounded: each page moves after forward
		page, err := h.o.Records.List(ctx, after, 1000)
		if err != nil {
			return 0, fmt.Errorf("websub: list subscriptions: %w", err)
		}
		for _, s := range page {
			if CallbackHost(s.Callback) == host {
				n++
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	return n, nil
}

// rateLimits holds one token bucket per client address. It is safe for
// concurrent use and holds at most maxRateClients clients.
type rateLimits struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

// newRateLimits returns limits of perSecond requests per client with a
// burst of twice that; nil (no limit) when perSecond is not positive.
func newRateLimits(perSecond float64) *rateLimits {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimits{limit: rate.Limit(perSecond), burst: max(1, int(math.Ceil(2*perSecond))), m: make(map[string]*rate.Limiter)}
}

// allow takes a token of client's bucket, or reports how long until one
// is available.
func (l *rateLimits) allow(client string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[client]
	if lim == nil {
		if len(l.m) >= maxRateClients {
			for k, v := range l.m {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxRateClients {
				clear(l.m)
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[client] = lim
	}
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// authorizePublish asks the Authorize hook about each topic a thin ping
// will publish into: every pinged URL except those of topics hubbub hosts
// (servePublish skips them). The first refusal answers the whole ping.
func (h *Hub) authorizePublish(r *http.Request, req Request) *refuse {
	if h.o.Authorize == nil {
		return nil
	}
	for _, u := range req.URLs {
		if h.isOwn(u, r) {
			continue
		}
		if _, f := h.authorize(r, ModePublish, u); f != nil {
			return f
		}
	}
	return nil
}
