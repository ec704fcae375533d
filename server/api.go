package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/activity"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/buildinfo"
)

// topicInfo is one row of GET /api/topics.
type topicInfo struct {
	activity.Topic
	Epoch       string `json:"epoch"`
	History     uint64 `json:"history"` // events held
	Subscribers int    `json:"subscribers"`
	// ByTransport splits Subscribers by transport (sse, ws, poll, stream).
	ByTransport map[string]int `json:"subscribers_by_transport"`
}

// stats is the body of GET /api/stats and of each $sys/stats/NODE event.
type stats struct {
	Node        string           `json:"node"`
	Time        string           `json:"time"`
	Connections map[string]int64 `json:"connections"`
	Published   uint64           `json:"published"` // events this node's fan-out took in, all nodes' in Redis mode
	// EventsIn counts the events publishers stored through this node
	// (hubbub_events_published_total).
	EventsIn  uint64      `json:"events_in"`
	Delivered uint64      `json:"delivered"`
	CutOff    uint64      `json:"cut_off"`
	Live      int64       `json:"live_subscriptions"`
	Topics    []topicInfo `json:"topics"`
	// Features lists the optional admin APIs this node serves ("websub":
	// GET /api/subscriptions, "nodes": GET /api/nodes, "backup": POST
	// /api/backup, embedded store only), so pages ask only
	// for what exists.
	Features []string `json:"features"`
	// Build names the binary this node runs, so that a mixed-version
	// cluster (an upgrade in progress) shows on the dashboard.
	Build buildinfo.Info `json:"build"`
	// Webhooks is the webhook side: this node's deliveries, and the
	// deployment's backlog as last measured.
	Webhooks webhookStats `json:"webhooks"`
}

// webhookStats is the "webhooks" member of the stats.
type webhookStats struct {
	DeliveriesOK     uint64 `json:"deliveries_ok"`     // this node's POSTs answered 2xx
	DeliveriesFailed uint64 `json:"deliveries_failed"` // and the others
	// The last backlog measurement (whole deployment): events still to
	// deliver, the age of the oldest, and the subscriptions.
	Backlog       uint64  `json:"backlog"`
	OldestSeconds float64 `json:"oldest_pending_seconds"`
	Subscriptions int     `json:"subscriptions"`
	Failing       int     `json:"failing"`
	Suspended     int     `json:"suspended"`
}

// topics lists the busiest topics with their history and subscribers.
func (s *Server) topics(ctx context.Context, n int) []topicInfo {
	top := s.activity.Top(n)
	out := make([]topicInfo, 0, len(top))
	for _, t := range top {
		if event.IsReserved(t.Topic) {
			continue
		}
		by := s.broker.SubscribersByLabel(t.Topic)
		ti := topicInfo{Topic: t, ByTransport: by}
		for _, n := range by {
			ti.Subscribers += n
		}
		if h, err := s.store.Head(ctx, t.Topic); err == nil {
			ti.Epoch, ti.History = h.Epoch, h.Last+1-h.First
		}
		out = append(out, ti)
	}
	return out
}

func (s *Server) snapshot(ctx context.Context) stats {
	st := stats{
		Node:        s.node,
		Time:        time.Now().UTC().Format(event.TimeFormat),
		Connections: s.metrics.connectionCounts(),
		Published:   s.broker.Stats.Published.Load(),
		EventsIn:    counterValue(s.metrics.published),
		Delivered:   s.metrics.deliveredTotal(),
		CutOff:      s.broker.Stats.CutOff.Load(),
		Live:        s.broker.Stats.Subscribers.Load(),
		Topics:      s.topics(ctx, 20),
		Features:    append([]string{}, s.features...),
		Build:       s.build,
	}
	if w := s.webhooks; w != nil {
		st.Webhooks.DeliveriesOK = counterValue(w.metrics.delivered.WithLabelValues("ok"))
		st.Webhooks.DeliveriesFailed = counterValue(w.metrics.delivered.WithLabelValues("failed"))
		if b := w.backlog.Load(); b != nil {
			st.Webhooks.Backlog, st.Webhooks.Subscriptions, st.Webhooks.Failing = b.Events, b.Subscriptions, b.Failing
			st.Webhooks.Suspended = b.Suspended
			if !b.Oldest.IsZero() {
				st.Webhooks.OldestSeconds = max(0, time.Since(b.Oldest).Seconds())
			}
		}
	}
	return st
}

// apiTopics answers GET /api/topics: the 100 busiest topics this node has
// seen, or with topic= (repeatable) the topics named, busy or not.
func (s *Server) apiTopics(w http.ResponseWriter, r *http.Request) {
	if named := r.URL.Query()["topic"]; len(named) > 0 {
		s.apiTopicsNamed(w, r, named)
		return
	}
	writeAPI(w, map[string]any{"topics": s.topics(r.Context(), 100)})
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	writeAPI(w, s.snapshot(r.Context()))
}

func writeAPI(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// statsTopic is where this node publishes its statistics.
func (s *Server) statsTopic() string { return statsTopicOf(s.node) }

// statsTopicOf is the stats topic of the node named id.
func statsTopicOf(id string) string { return event.SysPrefix + "stats/" + id }

// publishStats publishes a stats snapshot to $sys/stats/NODE every
// interval while anyone watches it (a live subscription names it, or a
// $sys/ pattern is open, on this node or, in Redis mode, on another: see
// statsWatched), so an unwatched hub writes nothing. It returns
// when ctx ends.
func (s *Server) publishStats(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.statsWatched(ctx) {
			continue
		}
		data, err := json.Marshal(s.snapshot(ctx))
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = s.hub.Publish(pctx, []event.Draft{{Topics: []string{s.statsTopic()}, Type: "stats", Data: data}})
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("publishing stats", "err", err)
		}
	}
}
