package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/limit"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/transport"
)

// metrics are the server's Prometheus collectors, on their own registry
// (no global state).
type metrics struct {
	reg           *prometheus.Registry
	published     prometheus.Counter
	duplicates    prometheus.Counter
	delivered     *prometheus.CounterVec
	connections   *prometheus.GaugeVec
	slow          *prometheus.CounterVec
	appendLatency prometheus.Histogram
	appendErrors  prometheus.Counter
	live          atomic.Int64 // open subscriber connections, all transports

	// rejections counts requests refused by a limit (package limit and
	// the WebSocket limits of package transport), by limit name.
	rejections *prometheus.CounterVec
}

func newMetrics(b *broker.Broker) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubbub_events_published_total",
			Help: "Events stored, one per (event, topic) pair; repeated idempotency keys excluded.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubbub_publish_duplicates_total",
			Help: "Publishes answered from an earlier one because their idempotency key repeated.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubbub_events_delivered_total",
			Help: "Events written to subscribers, by transport.",
		}, []string{"transport"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hubbub_connections",
			Help: "Open subscriber connections, by transport.",
		}, []string{"transport"}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubbub_slow_disconnects_total",
			Help: "Subscribers disconnected because they fell too far behind, by transport.",
		}, []string{"transport"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hubbub_store_append_seconds",
			Help:    "Time for a durable append to the log, from call to acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms .. 3.3 s
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubbub_store_append_errors_total",
			Help: "Appends the store failed.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubbub_limit_rejections_total",
			Help: "Requests, connections and WebSocket messages refused by a limit, by limit.",
		}, []string{"limit"}),
	}
	m.reg.MustRegister(m.published, m.duplicates, m.delivered, m.connections, m.slow, m.appendLatency, m.appendErrors, m.rejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hubbub_broker_cutoffs_total",
			Help: "Live subscriptions the broker cut off because their queue was full.",
		}, func() float64 { return float64(b.Stats.CutOff.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hubbub_live_subscriptions",
			Help: "Live subscriptions registered with the broker.",
		}, func() float64 { return float64(b.Stats.Subscribers.Load()) }),
	)
	for _, t := range []string{transport.NameSSE, transport.NamePoll, transport.NameStream, transport.NameWS, transport.NameRetrieve} {
		m.delivered.WithLabelValues(t)
		m.slow.WithLabelValues(t)
		if t != transport.NameRetrieve {
			m.connections.WithLabelValues(t)
		}
	}
	for _, l := range []string{limit.ConnsPerIP, limit.PublishRate, limit.ReadTimeout,
		transport.LimitWSFrameRate, transport.LimitWSTopics, transport.LimitWSSubscriptions, transport.LimitWSDocuments} {
		m.rejections.WithLabelValues(l)
	}
	return m
}

// The transport.Observer methods.

func (m *metrics) Connected(t string, delta int) {
	m.connections.WithLabelValues(t).Add(float64(delta))
	m.live.Add(int64(delta))
}
func (m *metrics) Delivered(t string, n int) {
	if n > 0 {
		m.delivered.WithLabelValues(t).Add(float64(n))
	}
}
func (m *metrics) SlowDisconnect(t string) { m.slow.WithLabelValues(t).Inc() }

// Limited counts a refusal; it is also the limit package's OnReject.
func (m *metrics) Limited(limit string) { m.rejections.WithLabelValues(limit).Inc() }

// meteredLog times appends and counts what they store. It forwards the
// store's optional capabilities (store.DocumentLister; store.ActivityIndex
// through indexedLog), since hiding them would silently turn features off.
type meteredLog struct {
	store.Log
	m *metrics
}

// indexedLog is a meteredLog over a store with an activity index.
type indexedLog struct {
	meteredLog
	store.ActivityIndex
}

// metered wraps st in a meteredLog, keeping its activity index if it has
// one.
func metered(st store.Log, m *metrics) store.Log {
	ml := meteredLog{Log: st, m: m}
	if ai, ok := st.(store.ActivityIndex); ok {
		return indexedLog{ml, ai}
	}
	return ml
}

func (l meteredLog) Append(ctx context.Context, drafts []event.Draft) ([]store.Result, error) {
	start := time.Now()
	res, err := l.Log.Append(ctx, drafts)
	l.m.appendLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		l.m.appendErrors.Inc()
		return res, err
	}
	for _, r := range res {
		switch {
		case event.IsReserved(r.Topic):
			// The hub's own $sys/ events (dashboard stats) are not
			// publishers' traffic.
		case r.Duplicate:
			l.m.duplicates.Inc()
		default:
			l.m.published.Inc()
		}
	}
	return res, nil
}

// Documents forwards store.DocumentLister.
func (l meteredLog) Documents(ctx context.Context, topic, after string, limit int) ([]*event.Event, error) {
	dl, ok := l.Log.(store.DocumentLister)
	if !ok {
		return nil, hub.ErrNoDocuments
	}
	return dl.Documents(ctx, topic, after, limit)
}

// connectionCounts reads the connections gauge per transport.
func (m *metrics) connectionCounts() map[string]int64 {
	out := make(map[string]int64)
	for _, t := range []string{transport.NameSSE, transport.NamePoll, transport.NameStream, transport.NameWS} {
		var pm dto.Metric
		if g, err := m.connections.GetMetricWithLabelValues(t); err == nil && g.Write(&pm) == nil {
			out[t] = int64(pm.GetGauge().GetValue())
		}
	}
	return out
}

// deliveredTotal sums the delivered counter over transports.
func (m *metrics) deliveredTotal() uint64 {
	var total float64
	for _, t := range []string{transport.NameSSE, transport.NamePoll, transport.NameStream, transport.NameWS, transport.NameRetrieve} {
		var pm dto.Metric
		if c, err := m.delivered.GetMetricWithLabelValues(t); err == nil && c.Write(&pm) == nil {
			total += pm.GetCounter().GetValue()
		}
	}
	return uint64(total)
}
