package server

import (
	"net/http"
	"strconv"
)

// countRequests counts each request next answers in
// hubbub_http_requests_total, by the pattern of mux that routes it (never
// the raw path, so the label's values are the routes' few) and the status
// code. A request counts when next returns: a stream or WebSocket when it
// ends.
func (m *metrics) countRequests(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		_, route := mux.Handler(r)
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

// statusWriter remembers the first status written. Unwrap lets
// http.ResponseController (flushes, hijacking for WebSockets) reach the
// writer beneath.
type statusWriter struct {
	http.ResponseWriter
	code int
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
