package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/client"
)

// bench loads a running hub: S SSE subscribers on one topic, P publishers
// sending E events in all (optionally at a fixed total rate), and reports
// publish throughput, publish acknowledgement latency and publish-to-
// delivery latency. Every loop is bounded by the event count and --timeout.
//
// With several nodes sharing one Redis, --subscribe-server (repeatable)
// puts the subscribers on other nodes than the publishers (spread round
// robin), so the latency measured is cross-node.
func bench(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub bench", `hubbub bench [flags]

Loads a running hub with SSE subscribers and publishers and reports publish
throughput, acknowledgement latency and publish-to-delivery latency (with
--json, as one JSON object). With --webhooks N, the subscribers are N WebSub
subscriptions to a receiver the bench runs itself, and it reports
deliveries per second, publish-to-receipt latency and duplicates, beside
the rate of a plain POST flood to the same receiver.`)
	base := serverFlag(f)
	publishers := f.Int("publishers", 16, "`N` concurrent publishers")
	subscribers := f.Int("subscribers", 100, "`N` SSE subscribers")
	events := f.Int("events", 10000, "`N` events to publish in all")
	rate := f.Int("rate", 0, "total `EVENTS` per second (0: as fast as the hub acknowledges)")
	publishBatch := f.Int("publish-batch", 1, "`N` events per publish request (a JSON array)")
	size := f.Int("size", 256, "approximate payload size in `BYTES`")
	topic := f.String("topic", "", "`TOPIC` (default: a fresh bench/... topic)")
	auth := publishKeyFlag(f)
	timeout := f.Duration("timeout", 2*time.Minute, "give up after this `DURATION`")
	var subServers stringList
	f.Var(&subServers, "subscribe-server", "base `URL` of a hub the subscribers connect to (repeatable; spread round robin; default: --server)")
	transportName := f.String("transport", "sse", "how the subscribers listen: `sse` or ws (WebSocket)")
	compact := f.Bool("compact", false, "subscribe with compact=1 (the lean event shape)")
	procs := f.Int("procs", 1, "spread the subscribers over `N` worker processes (one process holds about as many as its open-file limit)")
	worker := f.Bool("worker", false, "internal: run only the subscribers, for --procs")
	workerOffset := f.Int("worker-offset", 0, "internal: the first subscriber's number, for --procs")
	webhooks := f.Int("webhooks", 0, "instead of SSE subscribers, `N` WebSub subscriptions to a receiver the bench runs on 127.0.0.x (the hub needs --allow-private-callbacks)")
	hosts := f.Int("hosts", 1, "with --webhooks: spread the callbacks over `K` host names, 127.0.0.1 to 127.0.0.K")
	batch := f.Int("batch", 0, "with --webhooks: hub.batch=`N` for each subscription (0: one event per POST)")
	batchWait := f.Int("batch-wait-ms", 0, "with --webhooks and --batch: hub.batch_wait_ms=`MS`")
	flood := f.Duration("flood", 3*time.Second, "with --webhooks: first flood the receiver with plain keep-alive POSTs (32 connections) for this `DURATION`, to compare rates (0: skip)")
	asJSON := jsonFlag(f)
	f.Lookup("json").Usage = "print the report as JSON"
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs(); err != nil {
		return err
	}
	switch {
	case *publishers < 1:
		return f.fail("--publishers must be at least 1")
	case *events < 1:
		return f.fail("--events must be at least 1")
	case *publishBatch < 1 || *publishBatch > 1000:
		return f.fail("--publish-batch must be from 1 to 1000")
	case *subscribers < 0, *size < 0, *rate < 0, *webhooks < 0, *batch < 0, *batchWait < 0, *flood < 0:
		return f.fail("--subscribers, --size, --rate, --webhooks, --batch, --batch-wait-ms and --flood must not be negative")
	case *procs < 1 || *procs > 64:
		return f.fail("--procs must be from 1 to 64")
	case *transportName != "sse" && *transportName != "ws":
		return f.fail("--transport must be sse or ws")
	case *hosts < 1 || *hosts > 254:
		return f.fail("--hosts must be from 1 to 254")
	}
	if _, err := newAPIClient(*base, "", ""); err != nil {
		return err
	}
	if *topic == "" {
		*topic = fmt.Sprintf("bench/%d", time.Now().UnixNano())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	root := strings.TrimRight(*base, "/")
	if *webhooks > 0 {
		return runHookBench(ctx, e, hookBench{root: root, auth: *auth, topic: *topic, webhooks: *webhooks, hosts: *hosts,
			batch: *batch, batchWait: *batchWait, events: *events, publishers: *publishers, publishBatch: *publishBatch, rate: *rate, size: *size, flood: *flood}, *asJSON)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *publishers + 4, MaxConnsPerHost: 0}}

	// Subscribers: connected once their response headers arrive (the hub
	// registers a subscription before it answers), or their WebSocket
	// subscribe is answered.
	if len(subServers) == 0 {
		subServers = stringList{root}
	}
	spec := subSpec{topic: *topic, transport: *transportName, compact: *compact, events: *events, timeout: *timeout}
	for _, s := range subServers {
		spec.servers = append(spec.servers, strings.TrimRight(s, "/"))
	}
	if *worker {
		return runWorker(ctx, e, spec, *workerOffset, *subscribers)
	}
	var pool subPool
	if *procs > 1 && *subscribers > 0 {
		pp, err := startProcs(ctx, e, spec, *procs, *subscribers)
		if err != nil {
			return err
		}
		pool = pp
	} else {
		pool = startLocal(ctx, spec, 0, *subscribers)
	}
	if err := pool.ready(ctx); err != nil {
		return err
	}

	all, pubDur, err := publishAll(ctx, hc, pubSpec{root: root, auth: *auth, topic: *topic, events: *events,
		publishers: *publishers, batch: *publishBatch, rate: *rate, size: *size})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	deliveries, received, err := pool.results()
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}

	rep := benchReport{Topic: *topic, Events: *events, Publishers: *publishers, Seconds: pubDur.Seconds(),
		EventsPerSecond: float64(*events) / pubDur.Seconds(), Ack: latencies(all),
		Subscribers: *subscribers, SubscribeServers: subServers}
	want := *subscribers * *events
	if *subscribers > 0 {
		rep.Deliveries, rep.DeliveriesExpected = len(deliveries), want
		d := latencies(deliveries)
		rep.Delivery = &d
		rep.Transport, rep.Compact = *transportName, *compact
		if len(deliveries) > 0 {
			rep.BytesPerDelivery = float64(received) / float64(len(deliveries))
		}
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		fmt.Fprintf(e.stdout, "topic %s: %d events by %d publishers in %v: %.0f events/s acknowledged\n",
			*topic, *events, *publishers, pubDur.Round(time.Millisecond), rep.EventsPerSecond)
		fmt.Fprintf(e.stdout, "publish ack latency: %s\n", percentiles(all))
		if *subscribers > 0 {
			shape := ""
			if *compact {
				shape = ", compact"
			}
			fmt.Fprintf(e.stdout, "deliveries: %d of %d to %d %s subscribers on %s; %.0f bytes read per delivery%s\n", len(deliveries), want, *subscribers,
				strings.ToUpper(*transportName), strings.Join(subServers, ", "), rep.BytesPerDelivery, shape)
			fmt.Fprintf(e.stdout, "publish-to-delivery latency: %s\n", percentiles(deliveries))
		}
	}
	if *subscribers > 0 && len(deliveries) != want {
		return fmt.Errorf("%d deliveries missing", want-len(deliveries))
	}
	return nil
}

// benchReport is bench's --json output; latencies are in milliseconds.
type benchReport struct {
	Topic              string     `json:"topic"`
	Events             int        `json:"events"`
	Publishers         int        `json:"publishers"`
	Seconds            float64    `json:"seconds"`
	EventsPerSecond    float64    `json:"events_per_second"`
	Ack                latencyMS  `json:"ack_latency_ms"`
	Subscribers        int        `json:"subscribers"`
	SubscribeServers   []string   `json:"subscribe_servers,omitempty"`
	Transport          string     `json:"transport,omitempty"`
	Compact            bool       `json:"compact,omitempty"`
	BytesPerDelivery   float64    `json:"bytes_per_delivery,omitempty"`
	Deliveries         int        `json:"deliveries"`
	DeliveriesExpected int        `json:"deliveries_expected"`
	Delivery           *latencyMS `json:"delivery_latency_ms,omitempty"`
}

type latencyMS struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func latencies(d []time.Duration) latencyMS {
	if len(d) == 0 {
		return latencyMS{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	p := func(q float64) float64 { return ms(d[min(len(d)-1, int(q*float64(len(d))))]) }
	return latencyMS{P50: p(0.50), P90: p(0.90), P99: p(0.99), Max: ms(d[len(d)-1])}
}

func benchPublish(ctx context.Context, hc *http.Client, endpoint, auth, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// benchSubscriber reads n events over SSE, recording each one's latency
// from the publish time carried in its data.
func benchSubscriber(ctx context.Context, hc *http.Client, endpoint string, n int, lat *[]time.Duration, received *atomic.Int64, ready func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	ready()
	*lat = make([]time.Duration, 0, n)
	r := client.NewSSEReader(countingReader{resp.Body, received})
	var msg struct {
		Data struct {
			T int64 `json:"t"`
		} `json:"data"`
	}
	for len(*lat) < n {
		ev, err := r.Next()
		if err != nil {
			return err
		}
		if ev.Event != "message" {
			continue
		}
		if err := json.Unmarshal([]byte(ev.Data), &msg); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(time.Unix(0, msg.Data.T)))
	}
	return nil
}

// countingReader adds what it reads to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// benchWSSubscriber subscribes to topic over one WebSocket and reads n
// events, recording each one's latency from the publish time in its data.
func benchWSSubscriber(ctx context.Context, endpoint, topic string, compact bool, n int, lat *[]time.Duration, received *atomic.Int64, ready func()) error {
	c, _, err := websocket.Dial(ctx, endpoint, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "sub": "b", "topic": topic, "compact": compact})
	if err := c.Write(ctx, websocket.MessageText, sub); err != nil {
		return err
	}
	*lat = make([]time.Duration, 0, n)
	var msg struct {
		Op      string `json:"op"`
		Message string `json:"message"`
		Data    struct {
			T int64 `json:"t"`
		} `json:"data"`
	}
	for len(*lat) < n {
		_, b, err := c.Read(ctx)
		if err != nil {
			return err
		}
		msg.Op, msg.Data.T = "", 0
		if err := json.Unmarshal(b, &msg); err != nil {
			return err
		}
		switch msg.Op {
		case "subscribed":
			ready()
		case "event":
			received.Add(int64(len(b)))
			*lat = append(*lat, time.Since(time.Unix(0, msg.Data.T)))
		case "error":
			return errors.New(msg.Message)
		}
	}
	return nil
}

func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	p := func(q float64) time.Duration {
		return d[min(len(d)-1, int(q*float64(len(d))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v", p(0.50), p(0.90), p(0.99), d[len(d)-1].Round(10*time.Microsecond))
}
