package websub_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/tasks"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/pebblerecords"
)

const waitFor = 15 * time.Second

// clock is a test clock: real time plus an offset the test advances.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// obsEvent is one Observer call.
type obsEvent struct {
	what     string // verified, delivered, fetched, dropped, removed
	topic    string
	callback string
	mode     string // verified: mode; removed: reason
	status   int
	n        int
	err      error
}

type observer struct{ ch chan obsEvent }

func (o *observer) send(e obsEvent) {
	select {
	case o.ch <- e:
	default:
	}
}

func (o *observer) Verified(topic, callback, mode string, err error) {
	o.send(obsEvent{what: "verified", topic: topic, callback: callback, mode: mode, err: err})
}

func (o *observer) Delivered(s *websub.Subscription, n, status int, err error) {
	o.send(obsEvent{what: "delivered", topic: s.Topic, callback: s.Callback, n: n, status: status, err: err})
}

func (o *observer) Fetched(topic string, n int, err error) {
	o.send(obsEvent{what: "fetched", topic: topic, n: n, err: err})
}

func (o *observer) Dropped(s *websub.Subscription, n uint64) {
	o.send(obsEvent{what: "dropped", topic: s.Topic, callback: s.Callback, n: int(n)})
}

func (o *observer) Removed(s *websub.Subscription, reason string) {
	o.send(obsEvent{what: "removed", topic: s.Topic, callback: s.Callback, mode: reason})
}

// wait returns the next observed event matching ok.
func (o *observer) wait(t testing.TB, what string, ok func(obsEvent) bool) obsEvent {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		select {
		case e := <-o.ch:
			if e.what == what && (ok == nil || ok(e)) {
				return e
			}
		case <-deadline.C:
			t.Fatalf("no %s event within %v", what, waitFor)
		}
	}
}

// env is a hub with its store, tasks and records in one directory.
type env struct {
	t       testing.TB
	dir     string
	clock   *clock
	store   *embedded.Store
	queue   *tembedded.Queue
	runner  *tasks.Runner
	records *pebblerecords.Records
	hub     *hub.Hub
	ws      *websub.Hub
	srv     *httptest.Server
	obs     *observer

	cancel  context.CancelFunc
	stopped chan struct{}
	closed  bool
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEnv opens (or reopens) an environment in dir; start runs it.
func newEnv(t *testing.T, dir string, opt func(*websub.Options)) *env {
	t.Helper()
	return newEnvRetention(t, dir, store.Retention{}, opt)
}

func newEnvRetention(t testing.TB, dir string, ret store.Retention, opt func(*websub.Options)) *env {
	t.Helper()
	e := &env{t: t, dir: dir, clock: &clock{}, obs: &observer{ch: make(chan obsEvent, 4096)}}
	var ws atomic.Pointer[websub.Hub]
	b := broker.New()
	st, err := embedded.Open(filepath.Join(dir, "log"), store.Config{
		Now:       e.clock.Now,
		Retention: ret,
		OnCommit: func(evs []*event.Event) {
			b.Publish(evs)
			if w := ws.Load(); w != nil {
				w.OnCommit(evs)
			}
		},
	}, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	if e.queue, err = tembedded.Open(filepath.Join(dir, "tasks"), tembedded.WithLogger(quiet())); err != nil {
		t.Fatal(err)
	}
	e.runner = tasks.NewRunner(e.queue, tasks.Options{Logger: quiet(), MaxSleep: 50 * time.Millisecond, Grace: 5 * time.Second})
	if e.records, err = pebblerecords.Open(filepath.Join(dir, "websub"), quiet()); err != nil {
		t.Fatal(err)
	}
	e.hub = hub.New(st, b, hub.Options{})
	e.srv = httptest.NewServer(nil)
	o := websub.Options{
		Hub: e.hub, Log: st, Records: e.records, Tasks: e.runner,
		PublicURL:     e.srv.URL,
		AllowPrivate:  true,
		MinLease:      time.Second,
		Logger:        quiet(),
		Observer:      e.obs,
		HTTPTimeout:   5 * time.Second,
		RetryBase:     20 * time.Millisecond,
		RetryMax:      5 * time.Second,
		Now:           e.clock.Now,
		SubscribeRate: -1,
	}
	if opt != nil {
		opt(&o)
	}
	w, err := websub.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.ws = w
	ws.Store(w)
	w.Register(e.runner)
	e.srv.Config.Handler = w
	t.Cleanup(e.close)
	return e
}

// start runs the task runner and the reconciliation loop.
func (e *env) start() *env {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.stopped = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.runner.Run(ctx) })
	wg.Go(func() { _ = e.ws.Run(ctx) })
	go func() { wg.Wait(); close(e.stopped) }()
	return e
}

func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.srv.Close()
	if e.cancel != nil {
		e.cancel()
		<-e.stopped
	}
	_ = e.ws.Close()
	_ = e.records.Close()
	_ = e.queue.Close()
	_ = e.store.Close()
}

// post sends a hub request.
func (e *env) post(v url.Values) (int, string) {
	e.t.Helper()
	resp, err := http.PostForm(e.srv.URL+"/hub", v)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// subscribe subscribes cb to topic with extra parameters and waits for
// the verification's outcome, which it returns.
func (e *env) subscribe(topic, cb string, extra url.Values) error {
	e.t.Helper()
	return e.request(websub.ModeSubscribe, topic, cb, extra)
}

func (e *env) request(mode, topic, cb string, extra url.Values) error {
	e.t.Helper()
	v := url.Values{"hub.mode": {mode}, "hub.topic": {topic}, "hub.callback": {cb}}
	for k, vs := range extra {
		v[k] = vs
	}
	code, body := e.post(v)
	if code != http.StatusAccepted {
		e.t.Fatalf("%s: status %d: %s", mode, code, body)
	}
	return e.obs.wait(e.t, "verified", func(o obsEvent) bool { return o.callback == cb && o.mode == mode }).err
}

func (e *env) publish(d event.Draft) {
	e.t.Helper()
	if _, err := e.hub.Publish(context.Background(), []event.Draft{d}); err != nil {
		e.t.Fatal(err)
	}
}

// delivery is one request a subscriber received.
type delivery struct {
	method string
	query  url.Values
	header http.Header
	body   []byte
}

// subscriber is a WebSub subscriber on loopback. Verification echoes the
// challenge unless verify says otherwise; deliveries answer 200 unless
// deliver says otherwise.
type subscriber struct {
	t       *testing.T
	srv     *httptest.Server
	verifs  chan delivery
	posts   chan delivery
	mu      sync.Mutex
	verify  func(challenge string) (int, string)
	deliver func(n int, d delivery) (int, http.Header)
	n       int
}

func newSubscriber(t *testing.T) *subscriber {
	s := &subscriber{t: t, verifs: make(chan delivery, 100), posts: make(chan delivery, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *subscriber) url(path string) string { return s.srv.URL + path }

func (s *subscriber) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	d := delivery{method: r.Method, query: r.URL.Query(), header: r.Header.Clone(), body: b}
	s.mu.Lock()
	verify, deliver := s.verify, s.deliver
	s.mu.Unlock()
	if r.Method == http.MethodGet {
		s.verifs <- d
		code, body := http.StatusOK, d.query.Get("hub.challenge")
		if verify != nil {
			code, body = verify(body)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
		return
	}
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	code := http.StatusOK
	var h http.Header
	if deliver != nil {
		code, h = deliver(n, d)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
	if code >= 200 && code < 300 {
		s.posts <- d
	}
}

func (s *subscriber) set(verify func(string) (int, string), deliver func(int, delivery) (int, http.Header)) {
	s.mu.Lock()
	s.verify, s.deliver = verify, deliver
	s.mu.Unlock()
}

// next returns the next successful delivery.
func (s *subscriber) next() delivery {
	s.t.Helper()
	select {
	case d := <-s.posts:
		return d
	case <-time.After(waitFor):
		s.t.Fatalf("no delivery within %v", waitFor)
	}
	return delivery{}
}

// none checks that no delivery arrives within a short quiet period (a
// negative check: the period bounds it, nothing waits on it).
func (s *subscriber) none() {
	s.t.Helper()
	select {
	case d := <-s.posts:
		s.t.Fatalf("unexpected delivery: %s", d.body)
	case <-time.After(300 * time.Millisecond):
	}
}

func storeQuery() store.Query { return store.Query{Limit: 100} }
