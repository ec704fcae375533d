package upstream

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
)

// Handler serves the callbacks, GET and POST /upstream/{id}/{token}
// (mount it at "/upstream/"). GET answers the remote hub's verification of
// intent and denial notices; POST takes content distribution. See the
// package doc. A request whose token is not the upstream's (compared in
// constant time) gets 404, as does a GET without a token.
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, token, ok := parseCallbackPath(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			m.verify(w, r, id, token)
		case http.MethodPost:
			m.content(w, r, id, token)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// parseCallbackPath splits /upstream/{id} or /upstream/{id}/{token}
// (token "" in the first form, and for a trailing slash).
func parseCallbackPath(p string) (id, token string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/upstream/")
	id, token, _ = strings.Cut(rest, "/")
	if !ok || id == "" || strings.Contains(token, "/") {
		return "", "", false
	}
	return id, token, true
}

// tokenOK reports whether token is u's callback token. An upstream
// without one yet (stored before tokens existed) matches no token.
func tokenOK(u Upstream, token string) bool {
	return u.Token != "" && subtle.ConstantTimeCompare([]byte(u.Token), []byte(token)) == 1
}

// clampLease reads hub.lease_seconds (def when absent or not a positive
// integer) and clamps it to MinLease..MaxLease, before any multiplication.
func clampLease(v string, def int64) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		n = def
	}
	n = min(max(n, int64(MinLease/time.Second)), int64(MaxLease/time.Second))
	return time.Duration(n) * time.Second
}

// verify answers a verification GET on the callback of upstream id with
// token. Only a subscribe for the topic of a pending or active upstream
// with a subscribe request outstanding, or an unsubscribe of an
// unsubscribing one with its request outstanding, gets its challenge back
// (200, text/plain); a denial for the upstream's topic is recorded (200);
// everything else is 404.
func (m *Manager) verify(w http.ResponseWriter, r *http.Request, id, token string) {
	q := r.URL.Query()
	mode, topic, challenge := q.Get("hub.mode"), q.Get("hub.topic"), q.Get("hub.challenge")
	u, ok, err := m.st.Get(r.Context(), id)
	if err != nil {
		http.Error(w, "cannot read the upstream; try again", http.StatusServiceUnavailable)
		return
	}
	if !ok || !tokenOK(u, token) || topic != u.Topic {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	switch {
	case mode == "subscribe" && challenge != "" && (u.State == StatePending || u.State == StateActive) && u.Requested == "subscribe":
		d := clampLease(q.Get("hub.lease_seconds"), u.LeaseSeconds)
		now := m.o.Now()
		// The renewal first: an upstream marked active always has one.
		if err := m.enqueue(ctx, KindSubscribe, id, now.Add(time.Duration(float64(d)*RenewAt))); err != nil {
			http.Error(w, "cannot schedule renewal", http.StatusServiceUnavailable)
			return
		}
		_, _, err := m.st.Update(ctx, id, func(u *Upstream) error {
			u.State, u.LeaseSeconds, u.Expires, u.Verified, u.LastError = StateActive, int64(d/time.Second), now.Add(d), now, ""
			u.Requested, u.Denials = "", 0
			return nil
		})
		if err != nil {
			http.Error(w, "cannot record verification", http.StatusServiceUnavailable)
			return
		}
		m.log.Info("upstream: subscription verified", "id", id, "topic", topic, "lease", d)
	case mode == "unsubscribe" && challenge != "" && u.State == StateUnsubscribing && u.Requested == "unsubscribe":
		if err := m.st.Delete(ctx, id); err != nil {
			http.Error(w, "cannot record unsubscription", http.StatusServiceUnavailable)
			return
		}
		m.log.Info("upstream: unsubscription verified", "id", id, "topic", topic)
	case mode == "denied" && u.State != StateUnsubscribing:
		reason := q.Get("hub.reason")
		u, _, err := m.st.Update(ctx, id, func(u *Upstream) error {
			u.State, u.LastError, u.Requested = StateDenied, "denied: "+reason, ""
			u.Denials++
			return nil
		})
		if err != nil {
			http.Error(w, "cannot record denial", http.StatusServiceUnavailable)
			return
		}
		retry := DenialRetry(u.Denials)
		if err := m.enqueue(ctx, KindSubscribe, id, m.o.Now().Add(retry)); err != nil {
			m.log.Error("upstream: cannot schedule the retry of a denied subscription; re-add it", "id", id, "err", err)
		}
		m.log.Warn("upstream: subscription denied", "id", id, "topic", topic, "reason", reason, "retry_in", retry)
		w.WriteHeader(http.StatusOK)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, challenge)
}

// content takes a content distribution POST. An unknown id gets 410 Gone
// (so the remote hub ends the subscription), as does a POST without a
// token to an upstream that has one (a subscription to its old, tokenless
// callback URL, which should end); a wrong token gets 404; a body over
// MaxBody gets 413. A POST without a token to an upstream that has none
// yet is taken (its signature still decides).
// A push with a missing or wrong X-Hub-Signature, or for an upstream not
// pending or active, is dropped but answered 202 (the spec's "ignore"),
// and counted by Rejected. Otherwise the body is republished into the
// upstream's Into topic (202): a feed as its new or changed entries, JSON
// (application/json) as a JSON event, anything else as one raw event with
// its Content-Type. A publish failure is 503, for the hub to retry.
func (m *Manager) content(w http.ResponseWriter, r *http.Request, id, token string) {
	u, ok, err := m.st.Get(r.Context(), id)
	if err != nil {
		http.Error(w, "cannot read the upstream; try again", http.StatusServiceUnavailable)
		return
	}
	switch {
	case !ok || (token == "" && u.Token != ""):
		http.Error(w, "no such subscription", http.StatusGone)
		return
	case token != "" && !tokenOK(u, token):
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.o.MaxBody+1))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if int64(len(body)) > m.o.MaxBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if (u.State != StatePending && u.State != StateActive) ||
		!websub.VerifySignature(r.Header.Get(websub.SignatureHeader), u.Secret, body) {
		m.rejected.Add(1)
		m.log.Warn("upstream: push dropped (bad signature or inactive)", "id", id, "state", u.State)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	n, err := m.republish(r, u, body)
	if err != nil {
		if event.IsValidation(err) {
			m.rejected.Add(1)
			m.log.Warn("upstream: push cannot be published", "id", id, "err", err)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		m.log.Error("upstream: republish failed", "id", id, "err", err)
		http.Error(w, "cannot publish", http.StatusServiceUnavailable)
		return
	}
	m.received.Add(1)
	m.log.Debug("upstream: republished", "id", id, "into", u.Into, "events", n)
	w.WriteHeader(http.StatusAccepted)
}

// republish publishes body into u.Into and returns the number of events.
func (m *Manager) republish(r *http.Request, u Upstream, body []byte) (int, error) {
	n, err := websub.PublishFeed(r.Context(), m.o.Hub, u.Into, websub.PublicHub(m.o.PublicURL), body)
	if !errors.Is(err, websub.ErrNotFeed) {
		return n, err
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	d := event.Draft{Topics: []string{u.Into}, ContentType: ct, Data: body}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" && json.Valid(body) {
		d.ContentType = "" // a JSON event, as if published with POST /publish
	}
	if _, err := m.o.Hub.Publish(r.Context(), []event.Draft{d}); err != nil {
		return 0, err
	}
	return 1, nil
}
