package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/websub"
)

// The admin API beyond the read-only stats (api.go): one topic's numbers,
// trimming a topic, and one webhook subscription (show, remove, retry
// now). Every route is behind RequireAdmin and, with --admin-listen, only
// on the admin listener. Answers are JSON; errors plain text.

// maxTopicsPerLookup bounds GET /api/topics?topic=... (as a subscribe
// request bounds its topics).
const maxTopicsPerLookup = 256

// adminRoutes adds the routes above to mux, each wrapped in admin.
func (s *Server) adminRoutes(mux *http.ServeMux, admin func(http.Handler) http.Handler) {
	mux.Handle("POST /api/topics/trim", admin(http.HandlerFunc(s.apiTrim)))
	mux.Handle("GET /api/subscriptions/{id}", admin(http.HandlerFunc(s.apiSubscription)))
	mux.Handle("DELETE /api/subscriptions/{id}", admin(http.HandlerFunc(s.apiRemoveSubscription)))
	mux.Handle("POST /api/subscriptions/{id}/retry-now", admin(http.HandlerFunc(s.apiRetryNow)))
	mux.Handle("POST /api/subscriptions/{id}/resume", admin(http.HandlerFunc(s.apiResume)))
	mux.Handle("POST /api/subscriptions/{id}/replay", admin(http.HandlerFunc(s.apiReplay)))
}

// topicInfoOf is the GET /api/topics row of one named topic, whether or
// not it is among the busiest: its log's head from the store, its live
// subscribers on this node, and its activity when this node has seen any.
func (s *Server) topicInfoOf(ctx context.Context, topic string) (topicInfo, error) {
	h, err := s.store.Head(ctx, topic)
	if err != nil {
		return topicInfo{}, err
	}
	ti := topicInfo{Epoch: h.Epoch, History: h.Last + 1 - h.First}
	ti.Topic, _ = s.activity.Get(topic)
	ti.ByTransport = s.broker.SubscribersByLabel(topic)
	for _, n := range ti.ByTransport {
		ti.Subscribers += n
	}
	return ti, nil
}

// apiTopicsNamed answers GET /api/topics?topic=T[&topic=U...].
func (s *Server) apiTopicsNamed(w http.ResponseWriter, r *http.Request, topics []string) {
	if len(topics) > maxTopicsPerLookup {
		http.Error(w, "at most "+strconv.Itoa(maxTopicsPerLookup)+" topics per request", http.StatusBadRequest)
		return
	}
	out := make([]topicInfo, 0, len(topics))
	for _, t := range topics {
		if err := event.ValidateTopic(t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ti, err := s.topicInfoOf(r.Context(), t)
		if err != nil {
			http.Error(w, "reading the topic's head failed", http.StatusServiceUnavailable)
			return
		}
		out = append(out, ti)
	}
	writeAPI(w, map[string]any{"topics": out})
}

// trimAnswer is the body of POST /api/topics/trim.
type trimAnswer struct {
	Topic   string `json:"topic"`
	Epoch   string `json:"epoch"`
	First   uint64 `json:"first"` // the oldest seq still held (last+1 when none)
	Last    uint64 `json:"last"`
	History uint64 `json:"history"` // events held after the trim
	Removed uint64 `json:"removed"` // events this trim removed
}

// apiTrim answers POST /api/topics/trim with topic=T&keep=N (query or
// form): it trims T to its newest N events (store.TopicTrimmer).
func (s *Server) apiTrim(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form body", http.StatusBadRequest)
		return
	}
	topic, keepArg := r.Form.Get("topic"), r.Form.Get("keep")
	if topic == "" || keepArg == "" {
		http.Error(w, "give topic= and keep= (how many of the newest events to keep)", http.StatusBadRequest)
		return
	}
	if err := event.ValidateTopic(topic); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	keep, err := strconv.ParseUint(keepArg, 10, 64)
	if err != nil {
		http.Error(w, "keep= must be a whole number of events, 0 or more", http.StatusBadRequest)
		return
	}
	tr, ok := s.store.(store.TopicTrimmer)
	if !ok {
		http.Error(w, "this store cannot trim a topic", http.StatusNotImplemented)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	before, err := s.store.Head(ctx, topic)
	if err == nil && before.Epoch == "" {
		http.Error(w, "no such topic: nothing was ever published to it", http.StatusNotFound)
		return
	}
	var h store.Head
	if err == nil {
		h, err = tr.TrimTopic(ctx, topic, keep)
	}
	if err != nil {
		s.log.Error("admin: trim failed", "topic", topic, "err", err)
		http.Error(w, "trim failed", http.StatusServiceUnavailable)
		return
	}
	removed := uint64(0)
	if h.First > before.First {
		removed = h.First - before.First
	}
	s.log.Info("admin: topic trimmed", "topic", topic, "keep", keep, "removed", removed)
	writeAPI(w, trimAnswer{Topic: topic, Epoch: h.Epoch, First: h.First, Last: h.Last, History: h.Last + 1 - h.First, Removed: removed})
}

// viewOf is sub as the admin API shows it (subscriptionRow), with how far
// it lags behind its topic's log.
func (s *Server) viewOf(ctx context.Context, sub websub.Subscription) subscriptionRow {
	v := newSubscriptionRow(sub)
	if h, err := s.store.Head(ctx, sub.LogTopic); err == nil && h.Last > sub.Cursor.Seq {
		v.Lag = h.Last - sub.Cursor.Seq
	}
	return v
}

func (s *Server) apiSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok, err := s.webhooks.records.Get(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		http.Error(w, "reading the subscription failed", http.StatusServiceUnavailable)
	case !ok:
		http.Error(w, "no such subscription", http.StatusNotFound)
	default:
		writeAPI(w, s.viewOf(r.Context(), sub))
	}
}

func (s *Server) apiRemoveSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ok, err := s.webhooks.hub.Remove(r.Context(), id)
	switch {
	case err != nil:
		s.log.Error("admin: removing a subscription failed", "id", id, "err", err)
		http.Error(w, "removing the subscription failed", http.StatusServiceUnavailable)
	case !ok:
		http.Error(w, "no such subscription", http.StatusNotFound)
	default:
		writeAPI(w, map[string]any{"id": id, "removed": true})
	}
}

func (s *Server) apiRetryNow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sub, err := s.webhooks.hub.RetryNow(r.Context(), id)
	s.answerSubscription(w, r, "retry-now", id, sub, err)
}

// answerSubscription answers an admin action on subscription id: the
// subscription as it now is, 404 when there is none, 409 when it is
// suspended and the action does not lift that, 503 when the action
// failed (logged).
func (s *Server) answerSubscription(w http.ResponseWriter, r *http.Request, action, id string, sub websub.Subscription, err error) {
	switch {
	case errors.Is(err, websub.ErrNotFound):
		http.Error(w, "no such subscription", http.StatusNotFound)
	case errors.Is(err, websub.ErrSuspended):
		http.Error(w, "the subscription is suspended; POST /api/subscriptions/"+id+"/resume to resume it", http.StatusConflict)
	case err != nil:
		s.log.Error("admin: "+action+" failed", "id", id, "err", err)
		http.Error(w, "queueing the delivery failed", http.StatusServiceUnavailable)
	default:
		writeAPI(w, s.viewOf(r.Context(), sub))
	}
}

// apiResume makes a suspended subscription active again and delivers at
// once; for one that is not suspended it is retry-now.
func (s *Server) apiResume(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sub, err := s.webhooks.hub.Resume(r.Context(), id)
	s.answerSubscription(w, r, "resume", id, sub, err)
}

// apiReplay moves a subscription's cursor to ?after=CURSOR or to before
// its last ?backfill=N events, and delivers from there.
func (s *Server) apiReplay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, backfillText := r.FormValue("after"), r.FormValue("backfill")
	backfill := 0
	switch {
	case (after == "") == (backfillText == ""):
		http.Error(w, "name where to replay from: ?after=CURSOR (an event's id) or ?backfill=N (the last N events)", http.StatusBadRequest)
		return
	case after != "":
		if _, err := event.ParsePosition(after); err != nil {
			http.Error(w, "after: "+err.Error(), http.StatusBadRequest)
			return
		}
	default:
		n, err := strconv.Atoi(backfillText)
		if err != nil || n < 1 || n > websub.MaxBackfill {
			http.Error(w, fmt.Sprintf("backfill must be an integer from 1 to %d", websub.MaxBackfill), http.StatusBadRequest)
			return
		}
		backfill = n
	}
	sub, err := s.webhooks.hub.Replay(r.Context(), id, backfill, after)
	s.answerSubscription(w, r, "replay", id, sub, err)
}
