package websub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/topicurl"
)

// maxFormBytes bounds a hub request's body.
const maxFormBytes = 64 << 10

// verifyJob is the payload of a verify task: the request and what the hub
// derived from the HTTP request it came in.
type verifyJob struct {
	Request
	HubURL   string `json:"hub_url"`
	LogTopic string `json:"log_topic"`
	// Format is the feed format deliveries take ("", atom, rss): that of
	// the topic URL (see topicurl.Parse).
	Format string `json:"format,omitempty"`
	Reason string `json:"reason,omitempty"` // denial reason (Mode denied)
	// NotAfter, when set, caps the subscription's expiry (Authorize).
	NotAfter time.Time `json:"not_after,omitzero"`
	// Requested is when the request came (for its Verification record).
	Requested time.Time `json:"requested,omitzero"`
	// Failed counts the failed attempts of the task runs before the last
	// time it was put back for a busy host (see deferVerify); Waits
	// counts those put-backs.
	Failed int `json:"failed,omitempty"`
	Waits  int `json:"waits,omitempty"`
}

// ServeHTTP answers POST / and /hub: subscribe, unsubscribe and publish
// requests, form-encoded (see the package doc for the status codes).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		plain(w, http.StatusMethodNotAllowed, "websub: the hub takes POST requests")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			plain(w, http.StatusRequestEntityTooLarge, "websub: request body is too large")
			return
		}
		plain(w, http.StatusBadRequest, "websub: cannot parse the form: "+err.Error())
		return
	}
	req, err := parseRequest(r.Form, h.bounds())
	if err != nil {
		plain(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Mode == ModePublish {
		if f := h.authorizePublish(r, req); f != nil {
			f.write(w)
			return
		}
		h.servePublish(w, r, req)
		return
	}
	job, err := h.newJob(r, req)
	if err != nil {
		plain(w, http.StatusBadRequest, err.Error())
		return
	}
	if f := h.checkSubscription(r, &job); f != nil {
		f.write(w)
		return
	}
	if req.Mode == ModeSubscribe && h.o.Allow != nil {
		if aerr := h.o.Allow(req.Topic, req.Callback); aerr != nil {
			deny := job
			deny.Mode, deny.Reason = ModeDenied, aerr.Error()
			if err := h.enqueueVerify(r.Context(), deny); err != nil {
				h.log.Error("websub: enqueue denial failed", "err", err)
			}
			if !req.Sync {
				noted := job
				noted.Reason = aerr.Error()
				h.noteVerification(r.Context(), noted, VerifyDenied, 0, nil, time.Time{})
			}
			if req.Sync {
				plain(w, http.StatusForbidden, "websub: subscription denied: "+aerr.Error())
				return
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}
	if req.Sync {
		if err := h.verifySync(r.Context(), job); err != nil {
			plain(w, http.StatusConflict, "websub: verification failed: "+publicReason(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// On record before the task can run, so its outcome is never
	// overwritten by this note.
	job.Requested = h.now()
	h.noteVerification(r.Context(), job, VerifyPending, 0, nil, time.Time{})
	if err := h.enqueueVerify(r.Context(), job); err != nil {
		h.log.Error("websub: enqueue verification failed", "err", err)
		if derr := h.o.Records.DeleteVerification(r.Context(), SubscriptionID(job.Topic, job.Callback)); derr != nil {
			h.log.Warn("websub: removing a verification's record failed; the sweep will", "err", derr)
		}
		plain(w, http.StatusServiceUnavailable, "websub: cannot queue the verification; try again")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (h *Hub) bounds() leaseBounds {
	return leaseBounds{def: h.o.DefaultLease, min: h.o.MinLease, max: h.o.MaxLease}
}

// enqueueVerify queues a verify (or denial) task. Its key names the mode,
// topic, callback and a hash of the whole request, so that a repeated
// identical request is absorbed by the pending one, while a different
// request (a new secret, an unsubscribe) is never lost to de-duplication.
func (h *Hub) enqueueVerify(ctx context.Context, j verifyJob) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("websub: encode verify job: %w", err)
	}
	sum := sha256.Sum256(b)
	key := j.Mode + "\n" + j.Topic + "\n" + j.Callback + "\n" + hex.EncodeToString(sum[:8])
	if _, _, err := h.o.Tasks.Enqueue(ctx, tasks.Task{Kind: KindVerify, Key: key, Payload: b}); err != nil {
		return fmt.Errorf("websub: enqueue verify: %w", err)
	}
	return nil
}

// newJob makes the verify job of a subscribe or unsubscribe request. A
// topic URL under which hubbub serves one of its topics (resolve) is that
// topic, in that URL's format and with its filter parameters as the
// subscription's filter (which hub.filter may not also give). Its errors
// are client errors.
func (h *Hub) newJob(r *http.Request, req Request) (verifyJob, error) {
	ref, err := h.resolve(req.Topic, r)
	if err != nil {
		return verifyJob{}, bad("hub.topic: %v", err)
	}
	if ref.Filter != nil && req.Mode == ModeSubscribe {
		f, _, err := filter.FromQuery(ref.Filter)
		if err != nil {
			return verifyJob{}, bad("hub.topic's filter: %v", err)
		}
		if f != nil && !f.IsZero() {
			if req.Filter != "" {
				return verifyJob{}, bad("hub.topic's query has a filter, and so does hub.filter: give one")
			}
			req.Filter = f.Key()
		}
	}
	return verifyJob{Request: req, HubURL: topicurl.Hub(h.base(r)), LogTopic: ref.Topic, Format: ref.Format}, nil
}

// servePublish enqueues one fetch per pinged URL. URLs of topics hubbub
// hosts itself are not fetched: their events are in the log already.
func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request, req Request) {
	for _, u := range req.URLs {
		if h.isOwn(u, r) {
			continue
		}
		if err := h.enqueueFetch(r.Context(), u); err != nil {
			h.log.Error("websub: enqueue fetch failed", "topic", u, "err", err)
			plain(w, http.StatusServiceUnavailable, "websub: cannot queue the fetch; try again")
			return
		}
	}
	if req.Legacy {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// enqueueFetch queues a fetch of topic, keyed by it, at the time the fetch
// gate allows: pings arriving while one is pending make no new task.
func (h *Hub) enqueueFetch(ctx context.Context, topic string) error {
	return h.enqueueFetchAt(ctx, topic, h.gate.next(topic, h.now()))
}

// resolve maps a topic as a subscriber names it to what hubbub serves
// under it: a URL of one of hubbub's topics (see topicurl.Parse; under
// PublicURL or under the request's own scheme and host) is that topic,
// with the URL's format and filter; anything else (a name, another site's
// URL) is its own log topic. A URL of this hub that names no single topic
// is an error.
func (h *Hub) resolve(topic string, r *http.Request) (topicurl.Ref, error) {
	ref, ok, err := topicurl.Parse(topic, h.bases(r)...)
	if !ok {
		return topicurl.Ref{Topic: topic}, nil
	}
	return ref, err
}

// isOwn reports whether topic is a URL under which hubbub serves one of
// its own topics (see resolve); thin pings do not fetch those.
func (h *Hub) isOwn(topic string, r *http.Request) bool {
	_, ok, _ := topicurl.Parse(topic, h.bases(r)...)
	return ok
}

// base is the hub's external URL: PublicURL, else the request's scheme
// and host. No trailing slash.
func (h *Hub) base(r *http.Request) string {
	if h.o.PublicURL != "" || r == nil {
		return strings.TrimRight(h.o.PublicURL, "/")
	}
	return requestBase(r)
}

// bases are the URLs hubbub's own topic URLs may start with: PublicURL
// and the request's scheme and host (a proxy in front may show either).
func (h *Hub) bases(r *http.Request) []string {
	var out []string
	if h.o.PublicURL != "" {
		out = append(out, strings.TrimRight(h.o.PublicURL, "/"))
	}
	if r != nil {
		out = append(out, requestBase(r))
	}
	return out
}

func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// plain writes a text/plain answer.
func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
