package upstream

import (
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

// Handler serves the callbacks, GET and POST /upstream/{id} (mount it at
// "/upstream/"). GET answers the remote hub's verification of intent and
// denial notices; POST takes content distribution. See the package doc.
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/upstream/")
		if !ok || id == "" || strings.Contains(id, "/") {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			m.verify(w, r, id)
		case http.MethodPost:
			m.content(w, r, id)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// verify answers a verification GET. Only a subscribe for the topic of a
// pending or active upstream, or an unsubscribe of an unsubscribing one,
// gets its challenge back (200, text/plain); a denial for the upstream's
// topic is recorded (200); everything else is 404.
func (m *Manager) verify(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	mode, topic, challenge := q.Get("hub.mode"), q.Get("hub.topic"), q.Get("hub.challenge")
	u, ok, err := m.st.Get(r.Context(), id)
	if err != nil {
		http.Error(w, "cannot read the upstream; try again", http.StatusServiceUnavailable)
		return
	}
	if !ok || topic != u.Topic {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	switch {
	case mode == "subscribe" && challenge != "" && (u.State == StatePending || u.State == StateActive):
		lease := u.LeaseSeconds
		if n, err := strconv.ParseInt(q.Get("hub.lease_seconds"), 10, 64); err == nil && n > 0 {
			lease = n
		}
		now := m.o.Now()
		d := time.Duration(lease) * time.Second
		// The renewal first: an upstream marked active always has one.
		if err := m.enqueue(ctx, KindSubscribe, id, now.Add(time.Duration(float64(d)*RenewAt))); err != nil {
			http.Error(w, "cannot schedule renewal", http.StatusServiceUnavailable)
			return
		}
		_, _, err := m.st.Update(ctx, id, func(u *Upstream) error {
			u.State, u.LeaseSeconds, u.Expires, u.Verified, u.LastError = StateActive, lease, now.Add(d), now, ""
			return nil
		})
		if err != nil {
			http.Error(w, "cannot record verification", http.StatusServiceUnavailable)
			return
		}
		m.log.Info("upstream: subscription verified", "id", id, "topic", topic, "lease", d)
	case mode == "unsubscribe" && challenge != "" && u.State == StateUnsubscribing:
		if err := m.st.Delete(ctx, id); err != nil {
			http.Error(w, "cannot record unsubscription", http.StatusServiceUnavailable)
			return
		}
		m.log.Info("upstream: unsubscription verified", "id", id, "topic", topic)
	case mode == "denied" && u.State != StateUnsubscribing:
		reason := q.Get("hub.reason")
		_, _, err := m.st.Update(ctx, id, func(u *Upstream) error {
			u.State, u.LastError = StateDenied, "denied: "+reason
			return nil
		})
		if err != nil {
			http.Error(w, "cannot record denial", http.StatusServiceUnavailable)
			return
		}
		m.log.Warn("upstream: subscription denied", "id", id, "topic", topic, "reason", reason)
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
// (so the remote hub ends the subscription); a body over MaxBody gets 413.
// A push with a missing or wrong X-Hub-Signature, or for an upstream not
// pending or active, is dropped but answered 202 (the spec's "ignore"),
// and counted by Rejected. Otherwise the body is republished into the
// upstream's Into topic (202): a feed as its new or changed entries, JSON
// (application/json) as a JSON event, anything else as one raw event with
// its Content-Type. A publish failure is 503, for the hub to retry.
func (m *Manager) content(w http.ResponseWriter, r *http.Request, id string) {
	u, ok, err := m.st.Get(r.Context(), id)
	if err != nil {
		http.Error(w, "cannot read the upstream; try again", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		http.Error(w, "no such subscription", http.StatusGone)
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
	n, err := websub.PublishFeed(r.Context(), m.o.Hub, u.Into, m.o.PublicURL, body)
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
