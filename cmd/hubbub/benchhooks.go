package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hookBench is what `hubbub bench --webhooks N` was asked to do.
type hookBench struct {
	root       string // the hub's base URL
	auth       string // publish credential
	topic      string
	webhooks   int // subscriptions, one callback each
	hosts      int // callback host names (127.0.0.1 .. 127.0.0.K)
	batch      int // hub.batch of each subscription (0: none)
	batchWait  int // hub.batch_wait_ms (0: none)
	events     int
	publishers int
	// publishBatch is the events per publish request.
	publishBatch int
	rate         int
	size         int
	flood        time.Duration // how long the plain POST flood runs (0: none)
}

// hookReport is the --json output of a webhook bench; latencies in ms.
type hookReport struct {
	Topic              string    `json:"topic"`
	Webhooks           int       `json:"webhooks"`
	Hosts              int       `json:"hosts"`
	Batch              int       `json:"batch,omitempty"`
	Events             int       `json:"events"`
	PublishSeconds     float64   `json:"publish_seconds"`
	Ack                latencyMS `json:"ack_latency_ms"`
	Deliveries         int64     `json:"deliveries"`
	DeliveriesExpected int64     `json:"deliveries_expected"`
	Duplicates         int64     `json:"duplicates"`
	Posts              int64     `json:"posts"`
	Seconds            float64   `json:"seconds"`
	DeliveriesPerSec   float64   `json:"deliveries_per_second"`
	Delivery           latencyMS `json:"delivery_latency_ms"`
	FloodPostsPerSec   float64   `json:"flood_posts_per_second,omitempty"`
	RatioToFlood       float64   `json:"ratio_to_flood,omitempty"`
}

// hookReceiver is the bench's own webhook receiver: it answers
// verifications, counts the events each subscription gets (by the event
// number in their data) and records publish-to-receipt latency. It answers
// every POST 204 at once.
type hookReceiver struct {
	servers []*http.Server
	urls    []string // base URL per host
	seen    [][]atomic.Bool
	total   atomic.Int64
	dups    atomic.Int64
	posts   atomic.Int64
	floods  atomic.Int64
	want    int64
	full    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	lat     []time.Duration
}

func newHookReceiver(hosts, subs, events int) (*hookReceiver, error) {
	r := &hookReceiver{seen: make([][]atomic.Bool, subs), want: int64(subs) * int64(events), full: make(chan struct{})}
	for i := range r.seen {
		r.seen[i] = make([]atomic.Bool, events+1)
	}
	port := "0"
	for h := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0."+strconv.Itoa(h+1), port))
		if err != nil {
			r.close()
			return nil, fmt.Errorf("receiver on 127.0.0.%d: %w", h+1, err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		r.servers = append(r.servers, srv)
		r.urls = append(r.urls, "http://"+ln.Addr().String())
	}
	return r, nil
}

func (r *hookReceiver) close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// callback is subscription i's callback URL, its host chosen round robin.
func (r *hookReceiver) callback(i int) string {
	return r.urls[i%len(r.urls)] + "/s/" + strconv.Itoa(i)
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet { // a verification
		_, _ = io.WriteString(w, req.URL.Query().Get("hub.challenge"))
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if req.URL.Path == "/flood" {
		r.floods.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sub, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/s/"))
	if err != nil || sub < 0 || sub >= len(r.seen) {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	r.posts.Add(1)
	now := time.Now()
	var lat []time.Duration
	// Each event's data is {"t":UNIX_NANOS,"n":NUMBER,...}: in a batch,
	// each array element's data holds one; alone, the body is the data.
	for rest := body; ; {
		i := bytes.Index(rest, []byte(`"t":`))
		if i < 0 {
			break
		}
		rest = rest[i+4:]
		t, n := leadingInt(rest), 0
		if j := bytes.Index(rest, []byte(`"n":`)); j >= 0 {
			n = int(leadingInt(rest[j+4:]))
		}
		if n < 1 || n >= len(r.seen[sub]) {
			continue
		}
		if r.seen[sub][n].Swap(true) {
			r.dups.Add(1)
			continue
		}
		lat = append(lat, now.Sub(time.Unix(0, t)))
	}
	w.WriteHeader(http.StatusNoContent)
	if len(lat) == 0 {
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, lat...)
	r.mu.Unlock()
	if r.total.Add(int64(len(lat))) >= r.want {
		r.once.Do(func() { close(r.full) })
	}
}

// leadingInt parses the digits at the start of b.
func leadingInt(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// flood POSTs body to the receiver from 32 keep-alive connections for d
// and returns the POSTs answered per second: the rate the receiver and
// this machine allow, to compare the hub's delivery rate with.
func (r *hookReceiver) flood(ctx context.Context, d time.Duration, body []byte) float64 {
	const conns = 32
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	before := r.floods.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.urls[0]+"/flood", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return float64(r.floods.Load()-before) / time.Since(start).Seconds()
}

// hubRequest sends one WebSub subscribe or unsubscribe (verified
// synchronously by the receiver), waiting out 429s.
func hubRequest(ctx context.Context, hc *http.Client, root, mode, topic, callback string, extra url.Values) error {
	form := url.Values{"hub.mode": {mode}, "hub.topic": {topic}, "hub.callback": {callback}, "hub.verify": {"sync"}}
	for k, v := range extra {
		form[k] = v
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, root+"/hub", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode == http.StatusTooManyRequests:
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			t := time.NewTimer(time.Duration(max(wait, 1)) * time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		default:
			return fmt.Errorf("%s %s: %s: %s", mode, callback, resp.Status, bytes.TrimSpace(b))
		}
	}
}

// each runs fn(i) for i in [0,n) on conc goroutines and returns the first
// error.
func each(n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; failed.Store(true) })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// runHookBench subscribes b.webhooks callbacks of its own receiver to one
// topic, publishes b.events events and waits until every subscription has
// every event (or ctx ends), then unsubscribes them all.
func runHookBench(ctx context.Context, e env, b hookBench, asJSON bool) error {
	rcv, err := newHookReceiver(b.hosts, b.webhooks, b.events)
	if err != nil {
		return err
	}
	defer rcv.close()
	pad := strings.Repeat("x", b.size)
	rep := hookReport{Topic: b.topic, Webhooks: b.webhooks, Hosts: b.hosts, Batch: b.batch, Events: b.events,
		DeliveriesExpected: rcv.want}
	if b.flood > 0 {
		body := fmt.Appendf(nil, `{"t":%d,"n":0,"pad":%q}`, time.Now().UnixNano(), pad)
		rep.FloodPostsPerSec = rcv.flood(ctx, b.flood, body)
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.publishers + 16}}
	extra := url.Values{}
	if b.batch > 0 {
		extra.Set("hub.batch", strconv.Itoa(b.batch))
	}
	if b.batchWait > 0 {
		extra.Set("hub.batch_wait_ms", strconv.Itoa(b.batchWait))
	}
	fmt.Fprintf(e.stderr, "hubbub bench: subscribing %d webhooks on %d host(s)...\n", b.webhooks, b.hosts)
	subscribed := make([]bool, b.webhooks)
	defer func() {
		// Unsubscribe (the receiver answers the verification), so the hub
		// does not go on retrying callbacks that are gone.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = each(b.webhooks, 16, func(i int) error {
			if subscribed[i] {
				if err := hubRequest(ctx, hc, b.root, "unsubscribe", b.topic, rcv.callback(i), nil); err != nil {
					fmt.Fprintf(e.stderr, "hubbub bench: %v\n", err)
				}
			}
			return nil
		})
	}()
	if err := each(b.webhooks, 16, func(i int) error {
		if err := hubRequest(ctx, hc, b.root, "subscribe", b.topic, rcv.callback(i), extra); err != nil {
			return err
		}
		subscribed[i] = true
		return nil
	}); err != nil {
		return fmt.Errorf("subscribe (a hub on this machine needs --allow-private-callbacks to reach the bench's receiver; --websub-subscribe-rate and --websub-max-per-host bound how fast and how many): %w", err)
	}

	all, took, err := publishAll(ctx, hc, pubSpec{root: b.root, auth: b.auth, topic: b.topic, events: b.events,
		publishers: b.publishers, batch: b.publishBatch, rate: b.rate, size: b.size})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	start := time.Now().Add(-took)
	rep.PublishSeconds = took.Seconds()
	rep.Ack = latencies(all)

	select {
	case <-rcv.full:
	case <-ctx.Done():
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Deliveries, rep.Duplicates, rep.Posts = rcv.total.Load(), rcv.dups.Load(), rcv.posts.Load()
	rep.DeliveriesPerSec = float64(rep.Deliveries) / rep.Seconds
	if rep.FloodPostsPerSec > 0 {
		rep.RatioToFlood = rep.DeliveriesPerSec / rep.FloodPostsPerSec
	}
	rcv.mu.Lock()
	rep.Delivery = latencies(rcv.lat)
	lat := append([]time.Duration(nil), rcv.lat...)
	rcv.mu.Unlock()

	if asJSON {
		js, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", js)
	} else {
		fmt.Fprintf(e.stdout, "topic %s: %d events to %d webhooks on %d host(s), batch %d\n", rep.Topic, rep.Events, rep.Webhooks, rep.Hosts, rep.Batch)
		fmt.Fprintf(e.stdout, "published in %.2fs; ack latency: %s\n", rep.PublishSeconds, percentiles(all))
		fmt.Fprintf(e.stdout, "deliveries: %d of %d in %.2fs (%d POSTs, %d duplicates): %.0f deliveries/s\n",
			rep.Deliveries, rep.DeliveriesExpected, rep.Seconds, rep.Posts, rep.Duplicates, rep.DeliveriesPerSec)
		fmt.Fprintf(e.stdout, "publish-to-receipt latency: %s\n", percentiles(lat))
		if rep.FloodPostsPerSec > 0 {
			fmt.Fprintf(e.stdout, "plain POST flood (32 keep-alive connections) to the same receiver: %.0f POSTs/s; hub/flood = %.2f\n",
				rep.FloodPostsPerSec, rep.RatioToFlood)
		}
	}
	if rep.Deliveries < rep.DeliveriesExpected {
		return errors.New(strconv.FormatInt(rep.DeliveriesExpected-rep.Deliveries, 10) + " deliveries missing when the bench ended (see --timeout)")
	}
	return nil
}
