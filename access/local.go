package access

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwardingHeaders are the headers a reverse proxy adds to name the
// client. Their presence means the peer is a proxy, not the client.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"}

// IsLocal reports whether r counts as coming from this host: its client
// address (see ClientAddr) is loopback, and its Host header is a loopback
// name (localhost, 127.x.x.x or [::1], any port), which a DNS-rebinding
// page cannot send. Unless the peer is a --trusted-proxy, a request that
// carries Forwarded, X-Forwarded-For or X-Real-IP is not local: a reverse
// proxy on the same host connects from loopback on behalf of anyone.
func (p *Policy) IsLocal(r *http.Request) bool {
	if !loopbackHost(r.Host) {
		return false
	}
	peer, ok := peerAddr(r)
	if !ok {
		return false
	}
	if !p.trusted(peer) {
		for _, h := range forwardingHeaders {
			if _, present := r.Header[h]; present {
				return false
			}
		}
		return peer.IsLoopback()
	}
	a, err := netip.ParseAddr(p.ClientAddr(r))
	return err == nil && a.IsLoopback()
}

// loopbackHost reports whether a Host header names this host.
func loopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		a, err := netip.ParseAddr(r.RemoteAddr)
		return a.Unmap(), err == nil
	}
	return ap.Addr().Unmap(), true
}

func (p *Policy) trusted(a netip.Addr) bool {
	for _, pre := range p.proxies {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// maxAddrLen bounds a forwarded address as logged.
const maxAddrLen = 64

// ClientAddr returns the address of r's client, for the local rule, rate
// limits and logs: the peer's IP, or, when the peer is a --trusted-proxy
// and names a client, the rightmost hop of X-Forwarded-For (else
// Forwarded's for=, else X-Real-IP) that is not itself a trusted proxy.
// Hops left of it were written by the client and are not believed. A hop
// that is not an IP (such as "unknown") is returned as sent, cut to 64
// bytes.
func (p *Policy) ClientAddr(r *http.Request) string {
	peer, ok := peerAddr(r)
	if !ok {
		return r.RemoteAddr
	}
	if !p.trusted(peer) {
		return peer.String()
	}
	hops := forwardedHops(r)
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return cut(hops[i])
		}
		if !p.trusted(a.Unmap()) || i == 0 {
			return a.Unmap().String()
		}
	}
	return peer.String()
}

// forwardedHops lists the client addresses a proxy chain reports, oldest
// first, from the first of X-Forwarded-For, Forwarded and X-Real-IP that
// is present.
func forwardedHops(r *http.Request) []string {
	var hops []string
	if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
		for _, h := range strings.Split(strings.Join(v, ","), ",") {
			hops = append(hops, stripPort(strings.TrimSpace(h)))
		}
		return hops
	}
	if v := r.Header.Values("Forwarded"); len(v) > 0 {
		for _, elem := range strings.Split(strings.Join(v, ","), ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					hops = append(hops, stripPort(strings.Trim(val, `"`)))
				}
			}
		}
		return hops
	}
	if v := r.Header.Get("X-Real-Ip"); v != "" {
		return []string{stripPort(strings.TrimSpace(v))}
	}
	return nil
}

// stripPort turns "1.2.3.4:80", "[::1]:80" and "[::1]" into bare addresses.
func stripPort(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
}

func cut(s string) string {
	if len(s) > maxAddrLen {
		return s[:maxAddrLen]
	}
	return s
}
