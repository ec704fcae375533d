package server

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/follow"
	"github.com/hubbub/hubbub/hub"
)

// feedInterest is the hub's Interest: the follower of outside feeds,
// set once the webhooks it runs on are open (the hub comes first). Until
// then, and without --feeds, it follows nothing and refuses nothing.
type feedInterest struct {
	f atomic.Pointer[follow.Follower]
}

func (i *feedInterest) Listen(ctx context.Context, topics []string) (func(), error) {
	if f := i.f.Load(); f != nil {
		return f.Listen(ctx, topics)
	}
	return func() {}, nil
}

// openFollow builds the follower of outside feeds (--feeds) on the
// webhooks' runner, records and conduit, and makes it the hub's Interest.
func (s *Server) openFollow(cfg config.Config, w *webhooks) (*follow.Follower, error) {
	var f *follow.Follower
	obs := registerFeedMetrics(s.metrics, func() float64 {
		if f == nil {
			return 0
		}
		return float64(f.Followed())
	})
	f, err := follow.New(follow.Options{
		Hub: s.hub, Runner: w.runner, State: w.records, Leases: w.records.Count, Upstreams: w.upstream,
		Patterns: cfg.Feeds, PublicURL: cfg.PublicURL, AllowPrivate: cfg.AllowPrivateCallbacks,
		Max: cfg.FeedsMax, Linger: cfg.FeedsLinger, MinInterval: cfg.FeedsMinInterval, MaxInterval: cfg.FeedsMaxInterval,
		HostConcurrency: cfg.FeedsHostConcurrency, HostInterval: orNone(cfg.FeedsHostInterval),
		MaxBytes: cfg.MaxBody, Logger: s.log, Observer: obs,
	})
	if err != nil {
		return nil, err
	}
	f.Register(w.runner)
	s.interest.f.Store(f)
	if f.Enabled() {
		s.features = append(s.features, "feeds")
	}
	return f, nil
}

// orNone maps a setting's 0 ("none") to follow's negative.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// authorizeWebSub is the WebSub hub's Authorize: the access policy, then,
// for a subscribe to an outside feed, the follower (which refuses a feed
// it may not follow, and starts following one it may).
func (s *Server) authorizeWebSub(r *http.Request, mode, topic string) (time.Time, int, string) {
	notAfter, status, reason := s.access.WebSub(r, mode, topic)
	if status != 0 || mode != "subscribe" {
		return notAfter, status, reason
	}
	if f := s.interest.f.Load(); f != nil {
		if err := f.Touch(r.Context(), topic); err != nil {
			if ref, ok := err.(*hub.Refusal); ok {
				return notAfter, ref.Status, "websub: " + ref.Reason
			}
			s.log.Warn("follow: cannot start following", "topic", topic, "err", err)
		}
	}
	return notAfter, 0, ""
}

// apiFeeds answers GET /api/feeds (admin): the outside feeds this node
// follows (see follow.Follower.API).
func (s *Server) apiFeeds(w http.ResponseWriter, r *http.Request) {
	if f := s.interest.f.Load(); f != nil {
		f.API().ServeHTTP(w, r)
		return
	}
	writeAPI(w, map[string]any{"feeds": []any{}})
}

// feedMetrics is the follow.Observer for Prometheus.
type feedMetrics struct {
	fetches *prometheus.CounterVec
	entries prometheus.Counter
}

// registerFeedMetrics registers the metrics of outside feeds, followed
// reading how many this node follows.
func registerFeedMetrics(m *metrics, followed func() float64) *feedMetrics {
	m.gaugeFunc("hubbub_feeds_followed", "Outside feeds (--feeds) this node follows now.", followed)
	return &feedMetrics{
		fetches: m.counterVec("hubbub_feeds_fetches_total",
			"Fetches of outside feeds (--feeds), by HTTP status (200, 304, 410, ...; error when there was no answer).", "status"),
		entries: m.counter("hubbub_feeds_entries_total",
			"New or changed entries found in outside feeds and published."),
	}
}

func (m *feedMetrics) Fetched(status string) { m.fetches.WithLabelValues(status).Inc() }
func (m *feedMetrics) Entries(n int)         { m.entries.Add(float64(n)) }
