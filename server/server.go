// Package server assembles hubbub from its parts (store, broker, hub,
// transports) under one configuration, and serves HTTP: routes, publish
// authorisation, metrics, health and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/activity"
	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	redisstore "github.com/hubbub/hubbub/store/redis"
	"github.com/hubbub/hubbub/transport"
	"github.com/hubbub/hubbub/web"
)

// Version is set at build time (-ldflags "-X .../server.Version=...").
var Version = "dev"

// Server is one running hub. Build it with New, serve with Serve or Run,
// and Close it to release the store.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	store   store.Log
	broker  *broker.Broker
	hub     *hub.Hub
	metrics *metrics
	handler http.Handler
	// activity tracks the busiest topics for the dashboard.
	activity *activity.Tracker
	// access decides who may read, publish and administer.
	access *access.Policy
	// node names this process in $sys/stats/NODE and the admin API.
	node string
	// features are the optional admin APIs served (see stats.Features).
	features []string
	// webhooks is the WebSub hub and the task runner under it.
	webhooks *webhooks
	// commits passes the store's commits of this node to the webhooks.
	commits *lateListener
	// cluster is the node's identity, and in Redis mode its fan-out
	// bridge and heartbeats (cluster.go).
	cluster *clusterState

	// base is the parent of every request's context; cancelling it ends
	// long-lived streams at shutdown.
	base       context.Context
	cancelBase context.CancelFunc
}

// New opens the store named by cfg and wires the hub together. It does not
// listen yet.
func New(cfg config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nodeID := nodeName(cfg)
	logger = logger.With("node", nodeID)
	var rules []hub.CoalesceRule
	for _, c := range cfg.Coalesce {
		r, err := hub.ParseCoalesceRule(c)
		if err != nil {
			return nil, fmt.Errorf("--coalesce: %w", err)
		}
		rules = append(rules, r)
	}
	b := broker.New()
	m := newMetrics(b)
	commits := &lateListener{}
	onCommit := func(evs []*event.Event) { b.Publish(evs); commits.call(evs) }
	if cfg.Store != "" {
		// The cluster bridge feeds the broker from Redis (startCluster);
		// the store's listener only tells the webhooks of this node's
		// commits.
		onCommit = commits.call
	}
	st, err := openStore(cfg, store.Config{
		Retention: store.Retention{MaxEvents: cfg.HistoryMaxEvents, MaxAge: cfg.HistoryMaxAge},
		OnCommit:  onCommit,
	}, logger)
	if err != nil {
		return nil, err
	}
	log := meteredLog{Log: st, m: m}
	h := hub.New(log, b, hub.Options{SubscriberBuffer: cfg.SubscriberBuffer, Logger: logger, Coalesce: rules})
	s := &Server{cfg: cfg, log: logger, store: st, broker: b, hub: h, metrics: m,
		activity: activity.New(10000, nil), node: nodeID,
		features: []string{"nodes"},
		cluster:  &clusterState{id: nodeID}, commits: commits}
	b.Tap(s.activity.Record)
	s.base, s.cancelBase = context.WithCancel(context.Background())
	if s.access, err = newAccess(s.base, cfg, logger); err != nil {
		s.cancelBase()
		_ = st.Close()
		return nil, err
	}
	if s.webhooks, err = s.openWebhooks(cfg); err != nil {
		s.cancelBase()
		_ = st.Close()
		return nil, err
	}
	s.features = append(s.features, "websub")
	s.handler = s.routes(transport.New(h, transport.Options{
		MaxBody: cfg.MaxBody, Heartbeat: cfg.Heartbeat, SSERetry: cfg.SSERetry,
		PollTimeout: cfg.PollTimeout, PollMaxTimeout: cfg.PollMaxTimeout,
		PublicURL: cfg.PublicURL, Observer: m, Logger: logger,
		WSOriginPatterns: cfg.WSOrigins,
		Access:           s.access,
	}))
	if err := s.startCluster(); err != nil {
		_ = s.webhooks.close()
		_ = st.Close()
		return nil, err
	}
	return s, nil
}

// openStore opens the backend cfg names: Redis for a redis:// URL, else the
// embedded store in cfg.Data.
func openStore(cfg config.Config, sc store.Config, logger *slog.Logger) (store.Log, error) {
	if cfg.Store != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := redisstore.Open(ctx, cfg.Store, sc, redisstore.WithLogger(logger), redisstore.WithPrefix(cfg.RedisPrefix))
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redactURL(cfg.Store), err)
		}
		logger.Info("store: redis", "url", redactURL(cfg.Store))
		return st, nil
	}
	st, err := embedded.Open(filepath.Join(cfg.Data, "log"), sc, embedded.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.Data, err)
	}
	return st, nil
}

// redactURL hides a password in a store URL for logs and errors.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Hub returns the server's hub (for embedding and tests).
func (s *Server) Hub() *hub.Hub { return s.hub }

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes(t *transport.Handlers) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/publish", t.Publish)
	mux.HandleFunc("/events", t.Events)
	mux.HandleFunc("GET /ws", t.WebSocket)
	mux.HandleFunc("GET /documents", t.Documents)
	mux.HandleFunc("GET /topics/{topic...}", t.Topic) // HEAD too: WebSub discovery
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	// WebSub: POST / and /hub (GET / stays the dashboard).
	mux.Handle("POST /{$}", s.webhooks.hub)
	mux.Handle("POST /hub", s.webhooks.hub)
	admin := s.access.RequireAdmin
	mux.Handle("GET /api/subscriptions", admin(http.HandlerFunc(s.apiSubscriptions)))
	// Conduit: callbacks of other hubs, and the admin API of upstreams.
	mux.Handle("/upstream/", s.webhooks.upstream.Handler())
	upstreams := admin(s.webhooks.upstream.API())
	mux.Handle("/api/upstreams", upstreams)
	mux.Handle("/api/upstreams/", upstreams)
	mux.Handle("GET /api/nodes", admin(http.HandlerFunc(s.apiNodes)))
	mux.Handle("GET /api/topics", admin(http.HandlerFunc(s.apiTopics)))
	mux.Handle("GET /api/stats", admin(http.HandlerFunc(s.apiStats)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	web.New(web.Options{Version: Version}).Register(mux)
	return mux
}

// ready answers 200 when the store answers a read within a second.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.store.Head(ctx, "$sys/readyz"); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: store: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully:
// it stops accepting, ends live streams (their clients reconnect elsewhere
// or later with their cursors), and waits up to ShutdownTimeout for
// requests in flight, such as publishes, to finish. It does not close the
// store; Close does.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.startHeartbeat(ln.Addr().String())
	s.webhooks.start(s.base, s)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	go s.publishStats(s.base, 2*time.Second)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(sctx) }()
	s.cancelBase() // streams never go idle by themselves
	err := <-done
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Run listens on the configured address and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.log.Info("hubbub listening", "addr", ln.Addr().String(), "version", Version, "data", s.cfg.Data)
	s.logAccess()
	return s.Serve(ctx, ln)
}

// Close releases the store. Call it after Serve has returned.
func (s *Server) Close() error {
	s.cancelBase()
	s.cluster.wg.Wait() // the fan-out and heartbeats use the store
	err := s.webhooks.close()
	if e := s.store.Close(); err == nil {
		err = e
	}
	return err
}

// lateListener is a store.CommitListener whose target is set after the
// store is open (the webhooks need the hub, which needs the store). Events
// committed before set are not passed on.
type lateListener struct {
	fn atomic.Pointer[func([]*event.Event)]
}

func (l *lateListener) set(fn func([]*event.Event)) { l.fn.Store(&fn) }

func (l *lateListener) call(evs []*event.Event) {
	if fn := l.fn.Load(); fn != nil {
		(*fn)(evs)
	}
}
