package transport

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/event"
)

// Access decides who may read and publish; *access.Policy implements it.
// Every transport identifies a request once (a WebSocket connection at
// its upgrade and at each auth op) and asks before each subscription and
// publish.
type Access interface {
	Identify(r *http.Request) access.Identity
	IdentifyToken(r *http.Request, token string) access.Identity
	Read(id access.Identity, topics []string) access.Decision
	Publish(id access.Identity, topics []string) access.Decision
	ClientAddr(r *http.Request) string
}

// errAuthExpired ends a live subscription whose token expired.
var errAuthExpired = errors.New("token expired")

// untilExpiry is ctx ending at notAfter (when not zero) with the cause
// errAuthExpired.
func untilExpiry(ctx context.Context, notAfter time.Time) (context.Context, context.CancelFunc) {
	if notAfter.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, notAfter, errAuthExpired)
}

// authExpired reports whether ctx ended because its token expired.
func authExpired(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errAuthExpired)
}

// authorizeRead identifies r and decides whether it may read topics,
// answering the refusal itself.
func (h *Handlers) authorizeRead(w http.ResponseWriter, r *http.Request, topics []string) (access.Decision, bool) {
	d := h.opts.Access.Read(h.opts.Access.Identify(r), topics)
	if !d.Allowed() {
		h.log.Debug("read refused", "client", h.opts.Access.ClientAddr(r), "status", d.Status, "reason", d.Reason)
		access.WriteDenial(w, d)
		return d, false
	}
	return d, true
}

// authorizePublish decides whether id (the identity of r) may publish to
// topics (nil: to anything), answering the refusal itself.
func (h *Handlers) authorizePublish(w http.ResponseWriter, r *http.Request, id access.Identity, topics []string) bool {
	d := h.opts.Access.Publish(id, topics)
	if !d.Allowed() {
		h.log.Debug("publish refused", "client", h.opts.Access.ClientAddr(r), "status", d.Status, "reason", d.Reason)
		access.WriteDenial(w, d)
		return false
	}
	return true
}

// draftTopics lists every topic the drafts name.
func draftTopics(drafts []event.Draft) []string {
	var out []string
	for _, d := range drafts {
		out = append(out, d.Topics...)
	}
	return out
}
