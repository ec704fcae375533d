package websub

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// dialTimeout bounds connecting to a callback or feed: a host that does
// not accept a connection by then counts as unreachable.
const dialTimeout = 5 * time.Second

// maxRedirects bounds the redirects followed by fetches (deliveries and
// verifications follow none: a callback must answer itself).
const maxRedirects = 5

// newClient returns the client for every outgoing request. Unless
// allowPrivate, its dialer checks each resolved address at dial time (so
// DNS rebinding and redirects cannot get around it) and refuses loopback,
// private, link-local, multicast and other non-public addresses, and
// ports other than 80, 443 and 1024 and above. A dial gives up after
// dialTimeout (or timeout, if shorter).
// Proxies from the environment are not used: they would hide the address.
// It keeps up to perHost idle connections per host, so that as many
// concurrent requests to one host as the per-host limit lets through
// reuse their connections instead of dialing anew.
func newClient(allowPrivate bool, timeout time.Duration, perHost int) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, dialTimeout), KeepAlive: 30 * time.Second}
	if !allowPrivate {
		guard := ssrf.New(ssrf.WithAnyPort()).Safe
		d.Control = func(network, address string, c syscall.RawConn) error {
			if _, p, err := net.SplitHostPort(address); err == nil {
				if n, err := strconv.Atoi(p); err != nil || !portOK(n) {
					return ssrf.ErrProhibitedPort
				}
			}
			return guard(network, address, c)
		}
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

// hostKey is the host a request is counted under in the per-host limits
// (CallbackHost's rule: lower-cased, without port).
func hostKey(u *url.URL) string { return strings.ToLower(u.Hostname()) }

// errHostBusy is tryDo's answer when the host has PerHostConcurrency
// requests in flight.
var errHostBusy = errors.New("websub: the host has as many requests in flight as allowed")

// do sends req within the per-host limit, waiting for a slot.
func (h *Hub) do(req *http.Request) (*http.Response, func(), error) {
	release, err := h.hosts.acquire(req.Context(), hostKey(req.URL))
	if err != nil {
		return nil, nil, err
	}
	return h.send(req, release)
}

// tryDo sends req if its host has a free slot, and fails with errHostBusy
// at once otherwise, so that a task for a busy host does not hold a worker
// while it waits.
func (h *Hub) tryDo(req *http.Request) (*http.Response, func(), error) {
	release, ok := h.hosts.try(hostKey(req.URL))
	if !ok {
		return nil, nil, errHostBusy
	}
	return h.send(req, release)
}

// send sends req holding a host slot; release is returned with the
// response, or called on error.
func (h *Hub) send(req *http.Request, release func()) (*http.Response, func(), error) {
	resp, err := h.client.Do(req)
	if err != nil {
		release()
		return nil, nil, err
	}
	return resp, release, nil
}
