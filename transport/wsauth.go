package transport

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/access"
)

// WebSocket authorisation. A connection starts with the identity of its
// upgrade request (Authorization header, ?access_token= or the
// hubbub_token cookie); {"op":"auth","token":T} and
// {"op":"refresh","token":T} replace it. Each subscription is authorised
// when made; one that needed a token ends when the token expires (an
// error op, code "unauthorized", status 401, "token expired") unless a
// refresh extends it first. A refreshed token that no longer covers a
// subscription ends that subscription with an error op (status 403).

// identity is the connection's current identity.
func (wc *wsConn) identity() access.Identity {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return wc.id
}

// wsDenied is the cause that ends a subscription a refreshed token no
// longer covers.
type wsDenied struct{ d access.Decision }

func (e *wsDenied) Error() string { return e.d.Reason }

// expireAt arms the end of a subscription at notAfter; nil when zero.
func expireAt(notAfter time.Time, cancel context.CancelCauseFunc) *time.Timer {
	if notAfter.IsZero() {
		return nil
	}
	return time.AfterFunc(time.Until(notAfter), func() { cancel(errAuthExpired) })
}

// sendDenial sends a refusal as an error op with the HTTP status.
func (wc *wsConn) sendDenial(sub string, d access.Decision) {
	code := wsForbidden
	if d.Status == http.StatusUnauthorized {
		code = wsUnauthed
	}
	wc.h.log.Debug("websocket request refused", "client", wc.h.opts.Access.ClientAddr(wc.r), "sub", sub, "status", d.Status, "reason", d.Reason)
	wc.sendJSON(wsError{Op: "error", Sub: sub, Code: code, Status: d.Status, Message: d.Reason})
}

// endAuthorised runs as a subscription's pump returns: it stops the
// expiry timer and, when the subscription ended because its token expired
// or no longer covers it, forgets it and tells the client. It runs before
// the pump's done is closed, so nothing of the subscription follows.
func (wc *wsConn) endAuthorised(ctx context.Context, id string, s *wsSub) {
	wc.mu.Lock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	var d access.Decision
	var denied *wsDenied
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errAuthExpired):
		d = access.Decision{Status: http.StatusUnauthorized, Reason: "token expired"}
	case errors.As(cause, &denied):
		d = denied.d
	default:
		wc.mu.Unlock()
		return
	}
	if wc.subs[id] == s {
		delete(wc.subs, id)
		wc.topics -= len(s.topics)
	}
	wc.mu.Unlock()
	if wc.ctx.Err() == nil {
		wc.sendDenial(id, d)
	}
}

// auth handles the auth and refresh ops: a valid token becomes the
// connection's identity, and every subscription that needed a token is
// checked again: still covered, it now ends when the new token expires;
// else it ends at once. An invalid token changes nothing.
func (wc *wsConn) auth(token string) {
	if token == "" {
		wc.sendDenial("", access.Decision{Status: http.StatusUnauthorized, Reason: `send {"op":"auth","token":"TOKEN"}`})
		return
	}
	id := wc.h.opts.Access.IdentifyToken(wc.r, token)
	if id.Err != nil {
		wc.sendDenial("", access.Decision{Status: http.StatusUnauthorized, Reason: id.Err.Error()})
		return
	}
	wc.mu.Lock()
	wc.id = id
	for _, s := range wc.subs {
		if s.expiry == nil {
			continue // it needed no token
		}
		d := wc.h.opts.Access.Read(id, s.topics)
		switch {
		case !d.Allowed():
			s.cancel(&wsDenied{d})
		case s.expiry.Stop(): // else it has expired already
			s.expiry = expireAt(d.NotAfter, s.cancel)
		}
	}
	wc.mu.Unlock()
	out := map[string]string{"op": "authenticated"}
	if exp := id.Expires(); !exp.IsZero() {
		out["expires"] = exp.UTC().Format(time.RFC3339)
	}
	wc.sendJSON(out)
}

// mayPublish decides whether the connection may publish to topics, and
// answers a refusal with an error op naming the client_id.
func (wc *wsConn) mayPublish(clientID string, topics []string) bool {
	d := wc.h.opts.Access.Publish(wc.identity(), topics)
	if d.Allowed() {
		return true
	}
	code := wsForbidden
	if d.Status == http.StatusUnauthorized {
		code = wsUnauthed
	}
	wc.h.log.Debug("websocket publish refused", "client", wc.h.opts.Access.ClientAddr(wc.r), "status", d.Status, "reason", d.Reason)
	wc.sendJSON(map[string]any{"op": "error", "client_id": clientID, "code": code, "status": d.Status, "message": d.Reason})
	return false
}
