package server

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/grip"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/limit"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/transport"
)

// metrics are the server's Prometheus collectors, on their own registry
// (no global state). Every hubbub_ metric is registered through the
// helpers below (counter, gaugeFunc, ...), which also record its
// documentation; the README's table of metrics is generated from that
// record (metricsReference) and a test keeps the two, and the registry,
// in step.
type metrics struct {
	reg           *prometheus.Registry
	docs          []metricDoc
	published     prometheus.Counter
	sysPublished  prometheus.Counter // the hub's own $sys/ events, apart from publishers'
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
	// requests counts HTTP requests by route pattern and status code.
	requests *prometheus.CounterVec
}

// metricDoc is one metric as the README documents it.
type metricDoc struct {
	Name, Type, Help string
	Labels           []string
}

func (m *metrics) doc(name, typ, help string, labels ...string) {
	m.docs = append(m.docs, metricDoc{Name: name, Type: typ, Help: help, Labels: labels})
}

func (m *metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	m.reg.MustRegister(c)
	m.doc(name, "counter", help)
	return c
}

func (m *metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	m.doc(name, "counter", help, labels...)
	return c
}

func (m *metrics) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(g)
	m.doc(name, "gauge", help, labels...)
	return g
}

func (m *metrics) counterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	m.doc(name, "counter", help)
}

// gaugeFunc registers a gauge read by f; constLabels are label pairs fixed
// for the process (name, value, name, value...).
func (m *metrics) gaugeFunc(name, help string, f func() float64, constLabels ...string) {
	cl := prometheus.Labels{}
	var names []string
	for i := 0; i+1 < len(constLabels); i += 2 {
		cl[constLabels[i]] = constLabels[i+1]
		names = append(names, constLabels[i])
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: cl}, f))
	m.doc(name, "gauge", help, names...)
}

func (m *metrics) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	m.reg.MustRegister(h)
	m.doc(name, "histogram", help)
	return h
}

func newMetrics(b *broker.Broker) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.published = m.counter("hubbub_events_published_total",
		"Events stored for publishers, one per (event, topic) pair; repeated idempotency keys and the hub's own $sys/ events excluded.")
	m.sysPublished = m.counter("hubbub_sys_events_published_total",
		"Events the hub stored in its own $sys/ topics (the dashboard's stats).")
	m.duplicates = m.counter("hubbub_publish_duplicates_total",
		"Publishes answered from an earlier one because their idempotency key repeated.")
	m.delivered = m.counterVec("hubbub_events_delivered_total",
		"Events written to subscribers, by transport (sse, ws, poll, stream, retrieve, grip-stream, grip-response, grip-ws).", "transport")
	m.connections = m.gaugeVec("hubbub_connections",
		"Open subscriber connections, by transport (sse, ws, poll, stream, grip-stream, grip-response, grip-ws).", "transport")
	m.slow = m.counterVec("hubbub_slow_disconnects_total",
		"Subscribers disconnected because they fell too far behind, by transport (sse, ws, poll, stream, grip-stream, grip-response, grip-ws).", "transport")
	m.appendLatency = m.histogram("hubbub_store_append_seconds",
		"Time for a durable append to the log, from call to acknowledgement.",
		prometheus.ExponentialBuckets(0.0001, 2, 16)) // 0.1 ms .. 3.3 s
	m.appendErrors = m.counter("hubbub_store_append_errors_total", "Appends the store failed.")
	limits := []string{limit.ConnsPerIP, limit.PublishRate, limit.ReadTimeout,
		transport.LimitWSFrameRate, transport.LimitWSTopics, transport.LimitWSSubscriptions, transport.LimitWSDocuments, grip.LimitHeld,
		grip.LimitWSConns, grip.LimitWSChannels, grip.LimitWSMessage}
	m.rejections = m.counterVec("hubbub_limit_rejections_total",
		"Requests, connections and WebSocket messages refused by a limit, by limit ("+strings.Join(limits, ", ")+").", "limit")
	m.requests = m.counterVec("hubbub_http_requests_total",
		"HTTP requests answered, by route (the pattern that matched, \"unmatched\" for none) and status code; streams and WebSockets count when they end.",
		"route", "code")
	m.counterFunc("hubbub_broker_cutoffs_total",
		"Live subscriptions the broker cut off because their queue was full.",
		func() float64 { return float64(b.Stats.CutOff.Load()) })
	m.counterFunc("hubbub_broker_overflows_total",
		"Batches of events the node's live fan-out queue had no room for; the live subscribers older than each were cut off and resume from history.",
		func() float64 { return float64(b.Stats.Overflows.Load()) })
	m.gaugeFunc("hubbub_live_subscriptions", "Live subscriptions registered with the broker.",
		func() float64 { return float64(b.Stats.Subscribers.Load()) })
	for _, t := range liveTransports(transport.NameRetrieve) {
		m.delivered.WithLabelValues(t)
		if t != transport.NameRetrieve {
			m.connections.WithLabelValues(t)
			m.slow.WithLabelValues(t)
		}
	}
	for _, l := range limits {
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
			// publishers' traffic: counted apart.
			l.m.sysPublished.Inc()
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
	for _, t := range liveTransports() {
		var pm dto.Metric
		if g, err := m.connections.GetMetricWithLabelValues(t); err == nil && g.Write(&pm) == nil {
			out[t] = int64(pm.GetGauge().GetValue())
		}
	}
	return out
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) uint64 {
	var pm dto.Metric
	if c.Write(&pm) != nil {
		return 0
	}
	return uint64(pm.GetCounter().GetValue())
}

// deliveredTotal sums the delivered counter over transports.
func (m *metrics) deliveredTotal() uint64 {
	var total float64
	for _, t := range liveTransports(transport.NameRetrieve) {
		var pm dto.Metric
		if c, err := m.delivered.GetMetricWithLabelValues(t); err == nil && c.Write(&pm) == nil {
			total += pm.GetCounter().GetValue()
		}
	}
	return uint64(total)
}

// liveTransports are the names of the transports that hold connections,
// the GRIP proxy's included, followed by extra.
func liveTransports(extra ...string) []string {
	return append([]string{transport.NameSSE, transport.NamePoll, transport.NameStream, transport.NameWS,
		grip.NameStream, grip.NameResponse, grip.NameWS}, extra...)
}
