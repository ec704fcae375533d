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
	"github.com/hubbub/hubbub/grip"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/buildinfo"
	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/limit"
	"github.com/hubbub/hubbub/origin"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	redisstore "github.com/hubbub/hubbub/store/redis"
	"github.com/hubbub/hubbub/transport"
	"github.com/hubbub/hubbub/web"
)

// Server is one running hub. Build it with New, serve with Serve or Run,
// and Close it to release the store.
type Server struct {
	cfg config.Config
	// draining is set when a graceful stop begins: /readyz answers 503
	// from then on (for ShutdownDelay before the listeners close).
	draining atomic.Bool
	log      *slog.Logger
	store    store.Log
	broker   *broker.Broker
	hub      *hub.Hub
	metrics  *metrics
	handler  http.Handler
	// adminHandler serves the admin listener (--admin-listen): every
	// route, while handler then lacks the admin ones (listen.go).
	adminHandler http.Handler
	// certs is the TLS certificate of both listeners; nil = plain HTTP.
	certs *certReloader
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
	// build is what this binary is (version, revision, toolchain).
	build buildinfo.Info
	// backups allows one backup at a time (backup.go).
	backups backupGate

	// startNotes are start-up log lines found before listening (Redis
	// persistence), logged by Run with the rest.
	startNotes []note

	// transports serve the wire protocol (kept to wait for WebSockets at
	// shutdown).
	transports *transport.Handlers
	// grip is the GRIP proxy (grip.go): its publish handler always, its
	// listener with --grip-listen (gripLn, set by Run); lim is the limiter
	// the GRIP listener shares with the main one.
	grip   *grip.Proxy
	gripLn net.Listener
	lim    *limit.Limiter

	// base is the parent of every request's context; cancelBase cancels it
	// with transport.ErrShutdown, which ends long-lived streams cleanly.
	base       context.Context
	cancelBase func()
}

// New opens the store named by cfg and wires the hub together. It does not
// listen yet. With --store redis it waits, with backoff, for Redis to
// answer, and refuses to start when a live node already has this node's
// --node-id; ctx bounds both waits (a signal ends them).
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nodeID := nodeName(cfg)
	logger = logger.With("node", nodeID)
	var certs *certReloader
	if cfg.TLSCert != "" {
		var err error
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, logger); err != nil {
			return nil, err
		}
	}
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
	onCommit := func(evs []*event.Event) { b.OnCommit(evs); commits.call(evs) }
	if cfg.Store != "" {
		// The cluster bridge feeds the broker from Redis (startCluster);
		// the store's listener only tells the webhooks of this node's
		// commits.
		onCommit = commits.call
	}
	var notes []note
	if cfg.Store != "" {
		// While waiting, the wait loop says why; go-redis's own pool
		// messages would only repeat it.
		redisconn.UseLogger(slog.New(slog.DiscardHandler))
		var err error
		notes, err = prepareRedis(ctx, cfg, logger)
		redisconn.UseLogger(logger)
		if err != nil {
			return nil, err
		}
	}
	st, err := openStore(ctx, cfg, store.Config{
		Retention: store.Retention{MaxEvents: cfg.HistoryMaxEvents, MaxAge: cfg.HistoryMaxAge},
		OnCommit:  onCommit,
	}, logger)
	if err != nil {
		return nil, err
	}
	log := metered(st, m)
	h := hub.New(log, b, hub.Options{SubscriberBuffer: cfg.SubscriberBuffer, Logger: logger, Coalesce: rules,
		MaxPageBytes: cfg.MaxResponseBytes,
		Retention:    store.Retention{MaxEvents: cfg.HistoryMaxEvents, MaxAge: cfg.HistoryMaxAge}})
	s := &Server{cfg: cfg, log: logger, store: st, broker: b, hub: h, metrics: m,
		activity: activity.New(10000, nil), node: nodeID,
		features: []string{"nodes"}, startNotes: notes,
		cluster: &clusterState{id: nodeID, instance: newInstanceID()}, commits: commits, certs: certs, build: buildinfo.Read()}
	registerBuildInfo(m, s.build)
	b.Tap(s.activity.Record)
	base, cancel := context.WithCancelCause(context.Background())
	s.base, s.cancelBase = base, func() { cancel(transport.ErrShutdown) }
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
	if _, ok := s.backupSources(); ok {
		s.features = append(s.features, "backup")
		if err := removeStaleBackups(cfg.Data); err != nil {
			logger.Warn("backup", "err", err)
		}
	}
	wsOrigins := append(append([]string(nil), cfg.WSOrigins...), originHosts(cfg.CORSOrigins)...)
	lim := limit.New(limit.Options{
		ReadTimeout: cfg.ReadTimeout, MaxConnsPerIP: cfg.MaxConnsPerIP, PublishRate: cfg.PublishRate,
		WSOriginPatterns: wsOrigins, OnReject: m.Limited,
		ClientAddr: s.access.ClientAddr,
	})
	s.transports = transport.New(h, transport.Options{
		MaxBody: cfg.MaxBody, MaxResponseBytes: cfg.MaxResponseBytes, Heartbeat: cfg.Heartbeat, SSERetry: cfg.SSERetry,
		PollTimeout: cfg.PollTimeout, PollMaxTimeout: cfg.PollMaxTimeout,
		PublicURL: cfg.PublicURL, Observer: m, Logger: logger,
		WSOriginPatterns: wsOrigins,
		Access:           s.access,
		AllowPublish: func(r *http.Request, id access.Identity) (time.Duration, bool) {
			return lim.AllowKey(s.rateKey(r, id)) // id is verified already: no second JWT check
		},
	})
	s.lim = lim
	if s.grip, err = s.newGrip(cfg, lim); err != nil {
		s.cancelBase()
		_ = s.webhooks.close()
		_ = st.Close()
		return nil, err
	}
	mux := s.routes(s.transports)
	all := lim.Wrap(reportRoute(mux))
	browsers := origin.New(origin.Options{Allowed: cfg.CORSOrigins, PublicURL: cfg.PublicURL})
	s.handler = m.countRequests(mux, browsers.Wrap(all))
	if cfg.AdminListen != "" {
		s.adminHandler = s.handler
		s.handler = m.countRequests(mux, browsers.Wrap(withoutAdmin(all)))
	}
	if err := s.startCluster(ctx); err != nil {
		_ = s.webhooks.close()
		_ = st.Close()
		return nil, err
	}
	return s, nil
}

// openStore opens the backend cfg names: Redis for a redis:// URL, else the
// embedded store in cfg.Data.
func openStore(ctx context.Context, cfg config.Config, sc store.Config, logger *slog.Logger) (store.Log, error) {
	if cfg.Store != "" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := redisstore.Open(ctx, cfg.Store, sc, redisstore.WithLogger(logger), redisstore.WithPrefix(cfg.RedisPrefix))
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redactURL(cfg.Store), err)
		}
		return st, nil
	}
	st, err := embedded.Open(filepath.Join(cfg.Data, dirLog), sc, embedded.WithLogger(logger))
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

// Handler returns the HTTP handler of the main listener: every route, or
// with --admin-listen every route but the admin ones.
func (s *Server) Handler() http.Handler { return s.handler }

// AdminHandler returns the handler of the admin listener, or nil without
// --admin-listen.
func (s *Server) AdminHandler() http.Handler { return s.adminHandler }

// routes is the mux of every route (served behind the limiter's door).
// Publishing is authorised inside the transports (per topic), which then
// ask the limiter's rate buckets.
func (s *Server) routes(t *transport.Handlers) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/publish", t.Publish)
	mux.HandleFunc("POST /publish/", s.grip.Publish) // GRIP (Pushpin's publishing format)
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
	s.adminRoutes(mux, admin)
	mux.Handle("POST /api/backup", admin(http.HandlerFunc(s.apiBackup)))
	if s.cfg.PProf {
		registerPProf(mux, admin)
	}
	mux.Handle("GET /metrics", metricsAuth(s.cfg.MetricsKey, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	web.New(web.Options{Version: s.build.Version, FrameAncestors: s.cfg.FrameAncestors}).Register(mux)
	return mux
}

// ready answers 200 when the store answers a read within a second, and 503
// once a graceful stop has begun.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: shutting down")
		return
	}
	if _, err := s.store.Head(ctx, "$sys/readyz"); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: store: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Serve serves HTTP (HTTPS with --tls-cert) on ln, and the admin handler on
// adminLn unless it is nil, until ctx is done, then shuts down gracefully:
// /readyz turns unready, the hub keeps serving for ShutdownDelay (so a load
// balancer can take it out of rotation), then it stops accepting, ends live
// streams (their clients reconnect elsewhere or later with their cursors),
// and waits up to ShutdownTimeout for
// requests in flight, such as publishes, to finish. It does not close the
// store; Close does.
//
// There is no ReadTimeout or WriteTimeout: both would end streams and
// WebSockets (a read deadline makes the server's background read cancel
// the request). Bodies get their deadline from the limit package instead;
// slow stream readers are cut by the per-subscriber buffer and the
// transports' write timeout.
func (s *Server) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.startHeartbeat(ln.Addr().String())
	s.webhooks.start(s.base, s)
	errc := make(chan error, 3)
	go func() { errc <- s.serveOn(hs, ln) }()
	var admin *http.Server
	if adminLn != nil {
		admin = s.adminServer(hs)
		go func() { errc <- s.serveOn(admin, adminLn) }()
	}
	var gripSrv *http.Server
	if s.gripLn != nil {
		gripSrv = s.gripServer(hs, s.lim)
		go func() { errc <- s.serveOn(gripSrv, s.gripLn) }()
	}
	go s.publishStats(s.base, 2*time.Second)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if d := s.cfg.ShutdownDelay; d > 0 {
		s.log.Info("draining: /readyz answers 503 while the hub keeps serving", "for", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 3)
	go func() { done <- hs.Shutdown(sctx) }()
	if admin != nil {
		go func() { done <- admin.Shutdown(sctx) }()
	}
	if gripSrv != nil {
		go func() { done <- gripSrv.Shutdown(sctx) }()
	}
	s.cancelBase() // streams and held connections never go idle by themselves
	err := <-done
	s.transports.WaitWebSockets(sctx) // hijacked: Shutdown does not wait for them
	s.waitGrip(sctx)
	for _, extra := range []*http.Server{admin, gripSrv} {
		if extra == nil {
			continue
		}
		err = errors.Join(err, <-done)
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Run listens on the configured address and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ls, err := s.listen()
	if err != nil {
		return err
	}
	if s.gripLn, err = s.listenGrip(); err != nil {
		_ = ls.main.Close()
		if ls.admin != nil {
			_ = ls.admin.Close()
		}
		return err
	}
	s.logStartup(ls)
	err = s.Serve(ctx, ls.main, ls.admin)
	s.log.Info("stopped", "err", err)
	return err
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
