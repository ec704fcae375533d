package grip

import "net/http"

// serveWebSocket serves a client WebSocket as WebSocket-over-HTTP
// requests to the origin. Not yet implemented: 501.
func (p *Proxy) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	plainError(w, http.StatusNotImplemented, "WebSocket-over-HTTP is not implemented yet")
}
