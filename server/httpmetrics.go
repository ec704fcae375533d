package server

import (
	"net/http"
	"strconv"
)

// countRequests counts each request next answers in
// hubbub_http_requests_total, by the pattern of mux that routes it (never
// the raw path, so the label's values are the routes' few) and the status
// code. A request counts when next returns: a stream or WebSocket when it
// ends. next should reach mux through reportRoute, which hands the pattern
// the mux matched back to this wrapper; a request stopped before the mux
// (a limit, the admin split) is routed here once more to name its route.
func (m *metrics) countRequests(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := sw.route
		if !sw.routed {
			_, route = mux.Handler(r)
		}
		if route == "" {
			route = "unmatched" // 404, 405 and redirects to a cleaned path
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http answers 200
		}
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	})
}

// reportRoute serves mux and tells the statusWriter of countRequests,
// found beneath the writers wrapped around it (through their Unwrap), the
// pattern mux matched (ServeMux sets Request.Pattern on the request it
// serves), so no request is routed twice.
func reportRoute(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		for w != nil {
			if sw, ok := w.(*statusWriter); ok {
				sw.route, sw.routed = r.Pattern, true
				return
			}
			u, ok := w.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				return
			}
			w = u.Unwrap()
		}
	})
}

// statusWriter remembers the first status written. Unwrap lets
// http.ResponseController (flushes, hijacking for WebSockets) reach the
// writer beneath.
type statusWriter struct {
	http.ResponseWriter
	code   int
	route  string // the pattern that routed the request, set by reportRoute
	routed bool   // whether the request reached the mux
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
