package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/follow"
	"github.com/hubbub/hubbub/tasks"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	tredis "github.com/hubbub/hubbub/tasks/redis"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/upstream/redisupstreams"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/pebblerecords"
	"github.com/hubbub/hubbub/websub/redisrecords"
)

// webhooks is the WebSub hub with what it runs on: the durable task queue
// and runner (shared by every task kind) and the subscription records.
type webhooks struct {
	queue   tasks.Queue
	runner  *tasks.Runner
	records webhookRecords
	hub     *websub.Hub
	// upstream is the subscriber side: other hubs' topics republished here.
	upstream *upstream.Manager
	// upStore keeps the upstreams (the Manager owns and closes it).
	upStore upstream.Store
	// follow follows outside feeds (--feeds) on the runner and records.
	follow  *follow.Follower
	wg      sync.WaitGroup // Run goroutines of runner and hub
	metrics *webhookMetrics
	// backlog is the last webhook backlog measurement (nil before one).
	backlog atomic.Pointer[websub.Backlog]
}

// webhookRecords are the subscription records as the server uses them.
type webhookRecords interface {
	websub.Records
	Close() error
}

// openWebhooks opens the task queue, the subscription records and the
// upstreams, and builds the WebSub hub. With the embedded store they are
// on this node's disk (DATA/tasks, DATA/websub, DATA/upstream); with
// --store redis they are in Redis under --redis-prefix, shared by every
// node: any node accepts a subscription, any node runs any delivery (one
// at a time per subscription), and a dead node's deliveries are taken over
// when their lease (--task-lease) ends. Nothing runs until start.
func (s *Server) openWebhooks(cfg config.Config) (w *webhooks, err error) {
	w = &webhooks{}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	if w.queue, w.records, err = s.openWebhookStores(cfg); err != nil {
		return nil, err
	}
	closers = append(closers, w.queue.Close, w.records.Close)
	upStore, err := openUpstreamStore(cfg, s.log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, upStore.Close) // idempotent: the Manager closes it too
	w.upStore = upStore
	w.runner = tasks.NewRunner(w.queue, tasks.Options{Logger: s.log, Lease: cfg.TaskLease})
	w.metrics = newWebhookMetrics(s.metrics)
	w.hub, err = websub.New(websub.Options{
		Hub: s.hub, Log: s.hub.Log(), Records: w.records, Tasks: w.runner,
		PublicURL:    cfg.PublicURL,
		DefaultLease: cfg.WebSubLease, MinLease: cfg.WebSubMinLease, MaxLease: cfg.WebSubMaxLease,
		SignatureAlgorithm: cfg.WebSubSignature, AllowPrivate: cfg.AllowPrivateCallbacks,
		DeliverConcurrency: cfg.WebhookConcurrency,
		RetryBase:          cfg.WebhookRetryBase, RetryMax: cfg.WebhookRetryMax,
		SuspendAfter:  cfg.WebhookSuspendAfter,
		MaxPerHost:    orNoLimit(cfg.WebSubMaxPerHost),
		SubscribeRate: float64(orNoLimit(cfg.WebSubRate)),
		Logger:        s.log, Observer: w.metrics,
		MaxFetchBytes: cfg.MaxBody, FetchMinInterval: cfg.FetchMinInterval,
		Authorize: s.authorizeWebSub, ClientAddr: s.access.ClientAddr,
	})
	if err != nil {
		return nil, fmt.Errorf("websub: %w", err)
	}
	closers = append(closers, w.hub.Close)
	w.hub.Register(w.runner)
	registerBacklogMetrics(s.metrics, w.backlog.Load, time.Now)
	if w.upstream, err = upstream.New(upstream.Options{
		Hub: s.hub, Runner: w.runner, Store: upStore,
		PublicURL: cfg.PublicURL, AllowPrivate: cfg.AllowPrivateCallbacks, Logger: s.log,
	}); err != nil {
		return nil, err
	}
	closers = append(closers, w.upstream.Close)
	w.upstream.Register(w.runner)
	if err := w.ensureUpstreams(cfg); err != nil {
		return nil, err
	}
	if w.follow, err = s.openFollow(cfg, w); err != nil {
		return nil, fmt.Errorf("--feeds: %w", err)
	}
	// The hub learns of this node's own commits (the store's listener;
	// see Server.New): with a shared store each event is noted once, by
	// the node that stored it, and Run's reconciliation covers a node that
	// died before its notes became tasks.
	s.commits.set(w.hub.OnCommit)
	return w, nil
}

// orNoLimit maps a setting's 0 ("no limit") to websub's -1.
func orNoLimit(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// openWebhookStores opens the task queue and the subscription records:
// in Redis for --store redis, else in DATA/tasks and DATA/websub. On an
// error nothing stays open.
func (s *Server) openWebhookStores(cfg config.Config) (tasks.Queue, webhookRecords, error) {
	if cfg.Store == "" {
		q, err := tembedded.Open(filepath.Join(cfg.Data, dirTasks))
		if err != nil {
			return nil, nil, fmt.Errorf("open task queue: %w", err)
		}
		r, err := pebblerecords.Open(filepath.Join(cfg.Data, dirWebSub), s.log)
		if err != nil {
			_ = q.Close()
			return nil, nil, fmt.Errorf("open webhook subscriptions: %w", err)
		}
		return q, r, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := tredis.Open(ctx, cfg.Store, tredis.WithPrefix(cfg.RedisPrefix), tredis.WithLogger(s.log))
	if err != nil {
		return nil, nil, fmt.Errorf("open task queue: %w", err)
	}
	r, err := redisrecords.Open(ctx, cfg.Store, cfg.RedisPrefix, s.log)
	if err != nil {
		_ = q.Close()
		return nil, nil, fmt.Errorf("open webhook subscriptions: %w", err)
	}
	return q, r, nil
}

// openUpstreamStore opens the conduit's upstreams: in Redis for --store
// redis, else in DATA/upstream.
func openUpstreamStore(cfg config.Config, log *slog.Logger) (upstream.Store, error) {
	if cfg.Store == "" {
		return upstream.OpenPebble(filepath.Join(cfg.Data, dirUpstream), log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisupstreams.Open(ctx, cfg.Store, cfg.RedisPrefix)
	if err != nil {
		return nil, fmt.Errorf("open upstreams: %w", err)
	}
	return st, nil
}

// start runs the task runner and the hub's sweeps until ctx ends.
func (w *webhooks) start(ctx context.Context, s *Server) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.measureBacklog(ctx, s.log)
	}()
	for name, run := range map[string]func(context.Context) error{"task runner": w.runner.Run, "websub": w.hub.Run, "feeds": w.follow.Run} {
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

// apiSubscriptions answers GET /api/subscriptions?after=ID&limit=N
// (&verifications_after=ID): the webhook subscriptions in id order
// (subscriptionRow: never a secret), with how far each lags behind its
// topic's log, and "next" to page on; and the requests whose verification
// has not succeeded (pending, failed, denied: websub.Verification), a page
// of up to N with "verifications_next".
func (s *Server) apiSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && l <= 1000 {
		limit = l
	}
	subs, err := s.webhooks.records.List(r.Context(), q.Get("after"), limit)
	if err != nil {
		http.Error(w, "listing subscriptions failed", http.StatusServiceUnavailable)
		return
	}
	verifs, err := s.webhooks.records.ListVerifications(r.Context(), q.Get("verifications_after"), limit)
	if err != nil {
		http.Error(w, "listing verifications failed", http.StatusServiceUnavailable)
		return
	}
	out := make([]subscriptionRow, len(subs))
	for i, sub := range subs {
		out[i] = s.viewOf(r.Context(), sub)
	}
	resp := map[string]any{"subscriptions": out, "verifications": verifs}
	if len(subs) == limit {
		resp["next"] = subs[len(subs)-1].ID
	}
	if len(verifs) == limit {
		resp["verifications_next"] = verifs[len(verifs)-1].ID
	}
	writeAPI(w, resp)
}

// subscriptionRow is a webhook subscription as the admin API shows it:
// snake_case throughout, the cursor as the EPOCH:SEQ string clients use
// everywhere else, the filter as JSON, and never the secret (signed says
// whether there is one).
type subscriptionRow struct {
	ID                 string          `json:"id"`
	Topic              string          `json:"topic"`     // hub.topic as the subscriber sent it
	LogTopic           string          `json:"log_topic"` // the topic of hubbub's log it reads
	Callback           string          `json:"callback"`
	State              string          `json:"state"` // active, failing or suspended
	Signed             bool            `json:"signed"`
	SignatureAlgorithm string          `json:"signature_algorithm,omitempty"`
	Format             string          `json:"format,omitempty"`
	Batch              int             `json:"batch,omitempty"`
	BatchBytes         int             `json:"batch_bytes,omitempty"`
	BatchWaitMS        int             `json:"batch_wait_ms,omitempty"`
	Filter             json.RawMessage `json:"filter,omitempty"`
	LeaseSeconds       int64           `json:"lease_seconds"`
	LeaseExpires       time.Time       `json:"lease_expires"`
	Created            time.Time       `json:"created"`
	Verified           time.Time       `json:"verified"`
	Cursor             string          `json:"cursor"`
	Lag                uint64          `json:"lag"`
	Failures           int             `json:"failures,omitempty"`
	FailingSince       time.Time       `json:"failing_since,omitzero"`
	LastError          string          `json:"last_error,omitempty"`
	LastSuccess        time.Time       `json:"last_success,omitzero"`
	NextAttempt        time.Time       `json:"next_attempt,omitzero"`
	Dropped            uint64          `json:"dropped,omitempty"`
}

func newSubscriptionRow(s websub.Subscription) subscriptionRow {
	row := subscriptionRow{
		ID: s.ID, Topic: s.Topic, LogTopic: s.LogTopic, Callback: s.Callback, State: s.State,
		Signed: s.Secret != "", Format: s.Format, Batch: s.Batch,
		BatchBytes: s.BatchBytes, BatchWaitMS: s.BatchWaitMS,
		LeaseSeconds: s.LeaseSeconds, LeaseExpires: s.Expires, Created: s.Created, Verified: s.Verified,
		Cursor: s.Cursor.String(), Failures: s.Failures, FailingSince: s.FailingSince, LastError: s.LastError,
		LastSuccess: s.LastSuccess, NextAttempt: s.NextAttempt, Dropped: s.Dropped,
	}
	if row.Signed {
		row.SignatureAlgorithm = s.SignatureAlgorithm
	}
	if s.Filter != "" && json.Valid([]byte(s.Filter)) {
		row.Filter = json.RawMessage(s.Filter)
	}
	return row
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

func newWebhookMetrics(m *metrics) *webhookMetrics {
	return &webhookMetrics{
		verified: m.counterVec("hubbub_websub_verifications_total",
			"Verifications of intent and denial notices, by mode (subscribe, unsubscribe, denied) and result (ok, failed).", "mode", "result"),
		delivered: m.counterVec("hubbub_webhook_deliveries_total",
			"Webhook POSTs, by result (ok, failed).", "result"),
		events: m.counter("hubbub_webhook_events_delivered_total",
			"Events delivered to webhooks with a 2xx."),
		fetched: m.counterVec("hubbub_websub_fetches_total",
			"Thin-ping fetches of topic URLs, by result (ok, failed).", "result"),
		dropped: m.counter("hubbub_webhook_events_dropped_total",
			"Events webhook subscriptions never received because retention removed them first."),
		removed: m.counterVec("hubbub_websub_subscriptions_removed_total",
			"Webhook subscriptions ended, by reason (unsubscribed, expired, gone, removed by an admin).", "reason"),
	}
}

// Backlog measurements run at most every backlogEvery, and take at most a
// tenth of the time: after a pass that took d, the next waits 10*d.
const backlogEvery = 10 * time.Second

// registerBacklogMetrics registers the gauges of the last backlog
// measurement that last returns (nil before the first).
func registerBacklogMetrics(m *metrics, last func() *websub.Backlog, now func() time.Time) {
	read := func(f func(*websub.Backlog) float64) func() float64 {
		return func() float64 {
			if b := last(); b != nil {
				return f(b)
			}
			return 0
		}
	}
	m.gaugeFunc("hubbub_webhook_backlog_events",
		"Events in the logs after webhook subscriptions' cursors, summed: what is still to deliver (for filtered subscriptions an upper bound). Measured every 10 s or so; in Redis mode every node reports the whole deployment's.",
		read(func(b *websub.Backlog) float64 { return float64(b.Events) }))
	m.gaugeFunc("hubbub_webhook_backlog_oldest_seconds",
		"Age of the oldest event not yet delivered to a webhook subscription; 0 when none waits.",
		read(func(b *websub.Backlog) float64 {
			if b.Oldest.IsZero() {
				return 0
			}
			return max(0, now().Sub(b.Oldest).Seconds())
		}))
	m.gaugeFunc("hubbub_webhook_subscriptions",
		"Live webhook subscriptions (whole deployment), as of the last backlog measurement.",
		read(func(b *websub.Backlog) float64 { return float64(b.Subscriptions) }))
	m.gaugeFunc("hubbub_webhook_subscriptions_failing",
		"Webhook subscriptions whose last 5 or more deliveries failed in a row.",
		read(func(b *websub.Backlog) float64 { return float64(b.Failing) }))
	m.gaugeFunc("hubbub_webhook_subscriptions_suspended",
		"Webhook subscriptions suspended after their deliveries failed for --webhook-suspend-after; nothing is delivered to them until resumed.",
		read(func(b *websub.Backlog) float64 { return float64(b.Suspended) }))
	m.gaugeFunc("hubbub_webhook_subscriptions_behind",
		"Webhook subscriptions with events still to deliver.",
		read(func(b *websub.Backlog) float64 { return float64(b.Behind) }))
}

// measureBacklog measures the webhook backlog until ctx ends, keeping the
// last result in w.backlog. A failed pass keeps the previous result and
// is logged once per run of failures.
func (w *webhooks) measureBacklog(ctx context.Context, log *slog.Logger) {
	failing := false
	for {
		b, err := w.hub.MeasureBacklog(ctx)
		wait := backlogEvery
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Warn("measuring the webhook backlog failed; the metrics keep the last measurement", "err", err)
			}
			failing = true
		default:
			failing = false
			w.backlog.Store(&b)
			wait = max(wait, 10*b.Took)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
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
