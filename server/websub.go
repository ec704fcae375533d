package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/tasks"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/pebblerecords"
)

// webhooks is the WebSub hub with what it runs on: the durable task queue
// and runner (shared by every task kind) and the subscription records.
type webhooks struct {
	queue   tasks.Queue
	runner  *tasks.Runner
	records *pebblerecords.Records
	hub     *websub.Hub
	// upstream is the subscriber side: other hubs' topics republished here.
	upstream *upstream.Manager
	wg       sync.WaitGroup // Run goroutines of runner and hub
}

// openWebhooks opens the task queue (DATA/tasks) and the records
// (DATA/websub), and builds the WebSub hub.
// Nothing runs until start.
func (s *Server) openWebhooks(cfg config.Config) (*webhooks, error) {
	w := &webhooks{}
	// The subscription records are on this node's disk, even with --store
	// redis, so the tasks that read them must run here too: a shared
	// queue would let another node claim a delivery for a subscription it
	// does not know. tasks/redis is ready for the day the records move to
	// Redis as well.
	var err error
	w.queue, err = tembedded.Open(filepath.Join(cfg.Data, "tasks"))
	if err != nil {
		return nil, fmt.Errorf("open task queue: %w", err)
	}
	if w.records, err = pebblerecords.Open(filepath.Join(cfg.Data, "websub"), s.log); err != nil {
		_ = w.queue.Close()
		return nil, fmt.Errorf("open webhook subscriptions: %w", err)
	}
	w.runner = tasks.NewRunner(w.queue, tasks.Options{Logger: s.log})
	w.hub, err = websub.New(websub.Options{
		Hub: s.hub, Log: s.hub.Log(), Records: w.records, Tasks: w.runner,
		PublicURL:    cfg.PublicURL,
		DefaultLease: cfg.WebSubLease, MinLease: cfg.WebSubMinLease, MaxLease: cfg.WebSubMaxLease,
		SignatureAlgorithm: cfg.WebSubSignature, AllowPrivate: cfg.AllowPrivateCallbacks,
		DeliverConcurrency: cfg.WebhookConcurrency,
		Logger:             s.log, Observer: newWebhookMetrics(s.metrics.reg),
	})
	if err != nil {
		_ = w.records.Close()
		_ = w.queue.Close()
		return nil, fmt.Errorf("websub: %w", err)
	}
	w.hub.Register(w.runner)
	if w.upstream, err = upstream.New(upstream.Options{
		Hub: s.hub, Runner: w.runner, Dir: filepath.Join(cfg.Data, "upstream"),
		PublicURL: cfg.PublicURL, AllowPrivate: cfg.AllowPrivateCallbacks, Logger: s.log,
	}); err != nil {
		_ = w.hub.Close()
		_ = w.records.Close()
		_ = w.queue.Close()
		return nil, err
	}
	w.upstream.Register(w.runner)
	if err := w.ensureUpstreams(cfg); err != nil {
		_ = w.upstream.Close()
		_ = w.hub.Close()
		_ = w.records.Close()
		_ = w.queue.Close()
		return nil, err
	}
	// Every committed event passes the broker on every node (embedded:
	// the store's listener; Redis: the bridge), so the tap sees them all.
	s.broker.Tap(w.hub.OnCommit)
	return w, nil
}

// start runs the task runner and the hub's sweeps until ctx ends.
func (w *webhooks) start(ctx context.Context, s *Server) {
	for name, run := range map[string]func(context.Context) error{"task runner": w.runner.Run, "websub": w.hub.Run} {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error(name+" stopped", "err", err)
			}
		}()
	}
}

// close waits for the runs (their ctx must be done) and closes in order.
func (w *webhooks) close() error {
	w.wg.Wait()
	err := w.hub.Close()
	if e := w.upstream.Close(); err == nil {
		err = e
	}
	if e := w.records.Close(); err == nil {
		err = e
	}
	if e := w.queue.Close(); err == nil {
		err = e
	}
	return err
}

// ensureUpstreams adds the upstreams named by --upstream (the runner
// picks up their subscribe tasks once it runs).
func (w *webhooks) ensureUpstreams(cfg config.Config) error {
	specs, err := upstream.ParseSpecs(cfg.Upstreams)
	if err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.upstream.Ensure(ctx, specs)
}

// apiSubscriptions answers GET /api/subscriptions?after=ID&limit=N: the
// webhook subscriptions without their secrets, with how far each lags
// behind its topic's log.
func (s *Server) apiSubscriptions(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 && l <= 1000 {
		limit = l
	}
	subs, err := s.webhooks.records.List(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		http.Error(w, "listing subscriptions failed", http.StatusServiceUnavailable)
		return
	}
	type row struct {
		websub.Subscription
		LeaseExpires time.Time `json:"lease_expires"`
		Lag          uint64    `json:"lag"`
		Secret       bool      `json:"signed"` // never the secret itself
	}
	out := make([]row, len(subs))
	for i, sub := range subs {
		out[i] = row{Subscription: sub, LeaseExpires: sub.Expires, Secret: sub.Secret != ""}
		out[i].Subscription.Secret = ""
		if h, err := s.store.Head(r.Context(), sub.LogTopic); err == nil && h.Last > sub.Cursor.Seq {
			out[i].Lag = h.Last - sub.Cursor.Seq
		}
	}
	resp := map[string]any{"subscriptions": out}
	if len(subs) == limit {
		resp["next"] = subs[len(subs)-1].ID
	}
	writeAPI(w, resp)
}

// webhookMetrics is the websub.Observer for Prometheus.
type webhookMetrics struct {
	websub.NopObserver
	verified  *prometheus.CounterVec
	delivered *prometheus.CounterVec
	events    prometheus.Counter
	fetched   *prometheus.CounterVec
	dropped   prometheus.Counter
	removed   *prometheus.CounterVec
}

func newWebhookMetrics(reg *prometheus.Registry) *webhookMetrics {
	m := &webhookMetrics{
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hubbub_websub_verifications_total",
			Help: "Verifications of intent and denial notices, by mode and result."}, []string{"mode", "result"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hubbub_webhook_deliveries_total",
			Help: "Webhook POSTs, by result (ok, failed)."}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "hubbub_webhook_events_delivered_total",
			Help: "Events delivered to webhooks with a 2xx."}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hubbub_websub_fetches_total",
			Help: "Thin-ping fetches of topic URLs, by result."}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "hubbub_webhook_events_dropped_total",
			Help: "Events webhook subscriptions never received because retention removed them first."}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hubbub_websub_subscriptions_removed_total",
			Help: "Webhook subscriptions ended, by reason (unsubscribed, expired, gone)."}, []string{"reason"}),
	}
	reg.MustRegister(m.verified, m.delivered, m.events, m.fetched, m.dropped, m.removed)
	return m
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

func (m *webhookMetrics) Verified(_, _, mode string, err error) {
	m.verified.WithLabelValues(mode, result(err)).Inc()
}

func (m *webhookMetrics) Delivered(_ *websub.Subscription, events, status int, err error) {
	ok := err == nil && status >= 200 && status < 300
	if ok {
		m.delivered.WithLabelValues("ok").Inc()
		m.events.Add(float64(events))
	} else {
		m.delivered.WithLabelValues("failed").Inc()
	}
}

func (m *webhookMetrics) Fetched(_ string, _ int, err error) {
	m.fetched.WithLabelValues(result(err)).Inc()
}
func (m *webhookMetrics) Dropped(_ *websub.Subscription, n uint64) { m.dropped.Add(float64(n)) }
func (m *webhookMetrics) Removed(_ *websub.Subscription, reason string) {
	m.removed.WithLabelValues(reason).Inc()
}
