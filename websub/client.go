package websub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"code.dny.dev/ssrf"
)

// maxRedirects bounds the redirects followed by fetches (deliveries and
// verifications follow none: a callback must answer itself).
const maxRedirects = 5

// newClient returns the client for every outgoing request. Unless
// allowPrivate, its dialer checks each resolved address at dial time (so
// DNS rebinding cannot get around it) and refuses loopback, private,
// link-local, multicast and other non-public addresses, on any port.
// Proxies from the environment are not used: they would hide the address.
// It keeps up to perHost idle connections per host, so that as many
// concurrent requests to one host as the per-host limit lets through
// reuse their connections instead of dialing anew.
func newClient(allowPrivate bool, timeout time.Duration, perHost int) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = ssrf.New(ssrf.WithAnyPort()).Safe
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   max(perHost, DefaultPerHostConcurrency),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.Context().Value(followRedirects{}) == nil {
				return http.ErrUseLastResponse
			}
			if len(via) >= maxRedirects {
				return fmt.Errorf("websub: more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

// followRedirects, as a context key with any value, lets a request follow
// redirects.
type followRedirects struct{}

// isRefused reports whether err comes from the SSRF guard.
func isRefused(err error) bool {
	return errors.Is(err, ssrf.ErrProhibitedIP) || errors.Is(err, ssrf.ErrProhibitedNetwork) ||
		errors.Is(err, ssrf.ErrProhibitedPort) || errors.Is(err, ssrf.ErrInvalidHostPort)
}

// hostLimiter bounds the requests in flight per host. Its map holds only
// hosts with requests in flight.
type hostLimiter struct {
	n     int
	mu    sync.Mutex
	slots map[string]*hostSlot
}

type hostSlot struct {
	sem   chan struct{}
	users int
}

func newHostLimiter(n int) *hostLimiter {
	return &hostLimiter{n: n, slots: make(map[string]*hostSlot)}
}

// acquire waits for a slot for host; release must be called once after.
func (l *hostLimiter) acquire(ctx context.Context, host string) (release func(), err error) {
	l.mu.Lock()
	s := l.slots[host]
	if s == nil {
		s = &hostSlot{sem: make(chan struct{}, l.n)}
		l.slots[host] = s
	}
	s.users++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		s.users--
		if s.users == 0 {
			delete(l.slots, host)
		}
		l.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; done() }, nil
	case <-ctx.Done():
		done()
		return nil, fmt.Errorf("websub: waiting for a connection slot to %s: %w", host, ctx.Err())
	}
}

// do sends req within the per-host limit.
func (h *Hub) do(req *http.Request) (*http.Response, func(), error) {
	release, err := h.hosts.acquire(req.Context(), req.URL.Host)
	if err != nil {
		return nil, nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		release()
		return nil, nil, err
	}
	return resp, release, nil
}
