package web_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// slowProxy is an HTTP reverse proxy to a hub that can hold, delay, fail
// or lose POST /publish requests, so tests can show what a client does
// before the hub answers and when answers go missing. Everything else
// (pages, SSE streams) passes straight through. It forwards no
// X-Forwarded-For and keeps the Host, so the hub sees a local, same-origin
// client, as it would directly.
type slowProxy struct {
	addr string // the proxy
	ctl  string // its control endpoint (see control)

	mu       sync.Mutex
	held     bool          // requests wait for release before going on
	heldResp bool          // answers wait for release before going back
	release  chan struct{} // closed by /release
	maxDelay time.Duration // each request waits up to this long, at random
	fail     int           // the next fail requests get 503, not forwarded
	lose     int           // the next lose requests are forwarded, and answered 503
	seen     int           // POST /publish requests seen
}

func newSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{release: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the page's origin stays same-origin for the hub
		},
		FlushInterval: -1, // SSE streams pass at once
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/publish" {
			rp.ServeHTTP(w, r)
			return
		}
		p.publish(w, r, rp)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { p.open(); _ = srv.Close() })
	p.addr = ln.Addr().String()
	p.ctl = p.control(t)
	return p
}

func (p *slowProxy) publish(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	p.mu.Lock()
	p.seen++
	held, heldResp, release, maxDelay := p.held, p.heldResp, p.release, p.maxDelay
	fail := p.fail > 0
	lose := !fail && p.lose > 0
	if fail {
		p.fail--
	} else if lose {
		p.lose--
	}
	p.mu.Unlock()
	wait := func() bool {
		select {
		case <-release:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if held && !wait() {
		return
	}
	if maxDelay > 0 {
		select {
		case <-time.After(rand.N(maxDelay)):
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		http.Error(w, "slow proxy: failing this publish on purpose", http.StatusServiceUnavailable)
		return
	}
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	if lose {
		http.Error(w, "slow proxy: the hub's answer was lost on purpose", http.StatusServiceUnavailable)
		return
	}
	if heldResp && !wait() {
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// open lets held requests and answers go, and stops holding new ones.
func (p *slowProxy) open() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held, p.heldResp = false, false
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// control serves POST /hold (requests wait), /hold-answers (requests go
// on, answers wait), /release, /delay?ms=N (each request waits up to N ms,
// at random), /fail?n=N, /lose?n=N and GET /seen (requests so far).
func (p *slowProxy) control(t *testing.T) string {
	mux := http.NewServeMux()
	hold := func(answers bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			select {
			case <-p.release:
				p.release = make(chan struct{})
			default:
			}
			if answers {
				p.heldResp = true
			} else {
				p.held = true
			}
			p.mu.Unlock()
			fmt.Fprintln(w, "holding")
		}
	}
	mux.HandleFunc("POST /hold", hold(false))
	mux.HandleFunc("POST /hold-answers", hold(true))
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		p.open()
		fmt.Fprintln(w, "released")
	})
	count := func(set func(n int)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.URL.Query().Get("n") + r.URL.Query().Get("ms"))
			if err != nil || n < 0 {
				http.Error(w, "give n= or ms=, a number", http.StatusBadRequest)
				return
			}
			p.mu.Lock()
			set(n)
			p.mu.Unlock()
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("POST /delay", count(func(n int) { p.maxDelay = time.Duration(n) * time.Millisecond }))
	mux.HandleFunc("POST /fail", count(func(n int) { p.fail = n }))
	mux.HandleFunc("POST /lose", count(func(n int) { p.lose = n }))
	mux.HandleFunc("GET /seen", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		fmt.Fprintln(w, p.seen)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
