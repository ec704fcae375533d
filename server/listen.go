package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// certCheckEvery is how often, at most, the certificate files are looked
// at (two stat calls) when a TLS handshake asks for the certificate.
const certCheckEvery = 2 * time.Second

// certReloader serves a certificate pair from files and re-reads them when
// their modification time or size changes. A new pair that does not load
// (half-written, mismatched) is logged and the previous one kept; the
// files are tried again when they change again. Safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	every             time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string    // mtime and size of both files when last tried
	checked time.Time // of the last stat
}

// newCertReloader loads the pair once; an error here stops start-up.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log, every: certCheckEvery}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

func (c *certReloader) fileStamp() (string, error) {
	var b strings.Builder
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS file: %w", err)
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}

// GetCertificate is tls.Config.GetCertificate. It may block on two stat
// calls and, after a change, on reading the files.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.every {
		c.checked = now
		c.reload()
	}
	return c.cert, nil
}

// reload re-reads the pair if the files changed since the last try.
// c.mu is held.
func (c *certReloader) reload() {
	stamp, err := c.fileStamp()
	if err != nil {
		if stamp != c.stamp {
			c.log.Error("TLS certificate not reloaded, serving the previous one", "err", err)
		}
		c.stamp = ""
		return
	}
	if stamp == c.stamp {
		return
	}
	c.stamp = stamp
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Error("TLS certificate not reloaded, serving the previous one", "cert", c.certFile, "key", c.keyFile, "err", err)
		return
	}
	c.cert = &cert
	c.log.Info("TLS certificate reloaded", "cert", c.certFile)
}

// tlsConfig is the listeners' TLS configuration: the reloader's
// certificate, TLS 1.2 at least, and ALPN offering h2 then http/1.1 (a
// WebSocket upgrade needs HTTP/1.1; browsers ask for it on its own
// connection).
func tlsConfig(c *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// adminOnly reports whether a request is for the dashboard page, the admin
// API or the metrics, which --admin-listen moves off the main listener.
// POST / (WebSub) stays on the main listener.
func adminOnly(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case p == "/":
		return r.Method == http.MethodGet || r.Method == http.MethodHead
	case p == "/metrics", p == "/api", strings.HasPrefix(p, "/api/"), strings.HasPrefix(p, "/debug/pprof/"):
		return true
	}
	return false
}

// withoutAdmin answers 404 for what adminOnly names, and passes the rest
// to next.
func withoutAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if adminOnly(r) {
			http.Error(w, "404 page not found (served on the admin listener)", http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// metricsAuth guards /metrics with a bearer key when one is set: 401 with
// WWW-Authenticate without it. An empty key leaves next open.
func metricsAuth(key string, next http.Handler) http.Handler {
	if key == "" {
		return next
	}
	want := sha256.Sum256([]byte(key))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hubbub metrics"`)
			http.Error(w, "/metrics needs Authorization: Bearer KEY with the --metrics-key", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// listeners are the sockets a Server serves: the main one and, with
// --admin-listen, the admin one (nil without).
type listeners struct {
	main, admin net.Listener
}

// listen opens the configured addresses.
func (s *Server) listen() (listeners, error) {
	var ls listeners
	var err error
	if ls.main, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		return ls, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.AdminListen != "" {
		if ls.admin, err = net.Listen("tcp", s.cfg.AdminListen); err != nil {
			_ = ls.main.Close()
			return ls, fmt.Errorf("admin listen on %s: %w", s.cfg.AdminListen, err)
		}
	}
	return ls, nil
}

// serveOn serves hs on ln, over TLS when certificates are configured. It
// returns when hs is shut down or ln fails.
func (s *Server) serveOn(hs *http.Server, ln net.Listener) error {
	if s.certs == nil {
		return hs.Serve(ln)
	}
	hs.TLSConfig = tlsConfig(s.certs)
	return hs.ServeTLS(ln, "", "") // ServeTLS adds HTTP/2
}

// adminServer is an http.Server for the admin listener with main's
// settings and the admin handler.
func (s *Server) adminServer(main *http.Server) *http.Server {
	return &http.Server{
		Handler:           s.adminHandler,
		ReadTimeout:       main.ReadTimeout,
		ReadHeaderTimeout: main.ReadHeaderTimeout,
		WriteTimeout:      main.WriteTimeout,
		IdleTimeout:       main.IdleTimeout,
		MaxHeaderBytes:    main.MaxHeaderBytes,
		BaseContext:       main.BaseContext,
		ConnContext:       main.ConnContext,
		ConnState:         main.ConnState,
		ErrorLog:          main.ErrorLog,
	}
}

// scheme is the URL scheme the listeners serve.
func (s *Server) scheme() string {
	if s.certs != nil {
		return "https"
	}
	return "http"
}

// originHosts are the host[:port] parts of web origins, as WebSocket
// origin patterns: a page that may call the hub may also open /ws. "*"
// stays "*".
func originHosts(origins []string) []string {
	var hosts []string
	for _, o := range origins {
		if o == "*" {
			hosts = append(hosts, "*")
			continue
		}
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}
