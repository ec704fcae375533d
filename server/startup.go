package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/internal/redisconn"
)

// note is one start-up log line decided before the server listens and
// logged with the others once it does (Run).
type note struct {
	level slog.Level
	msg   string
	attrs []any
}

// Redis start-up waits: the first retry after redisWaitFirst, doubling up
// to redisWaitMax.
const (
	redisWaitFirst = time.Second
	redisWaitMax   = 10 * time.Second
)

// waitForRedis returns once the Redis (or Redis Cluster) that url names
// answers PING, trying again with backoff, and logging each wait, while it
// is unreachable or busy starting (LOADING and the like): under compose or
// Kubernetes, hubbub may start before its Redis. It gives up only when ctx
// ends (a signal), or at once on an answer that waiting cannot change (a
// wrong password, a refused command). The client is the caller's.
func waitForRedis(ctx context.Context, rdb goredis.UniversalClient, where string, log *slog.Logger) error {
	wait := redisWaitFirst
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, redisconn.DefaultDialTimeout+time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("Redis answers", "at", where, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while waiting for Redis at %s: %w", where, context.Cause(ctx))
		}
		if permanentRedisError(err) {
			return fmt.Errorf("the Redis at %s refused us: %w", where, err)
		}
		log.Warn(fmt.Sprintf("waiting for Redis at %s; retrying in %s", where, wait), "err", err, "attempt", attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stopped while waiting for Redis at %s: %w", where, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, redisWaitMax)
	}
}

// permanentRedisError reports whether err is an answer of Redis itself
// that retrying will not change. Network errors and the answers of a
// Redis still starting or failing over are not.
func permanentRedisError(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) || errors.Is(err, goredis.ErrClosed) {
		return false
	}
	for _, transient := range []string{"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY"} {
		if strings.HasPrefix(re.Error(), transient) {
			return false
		}
	}
	return true
}

// persistence is what one Redis server says of how it keeps data.
type persistence struct {
	Addr string
	// AOF is appendonly ("yes", "no"), Fsync appendfsync ("always",
	// "everysec", "no") and Save the RDB snapshot schedule ("" = none);
	// each "?" when the server would not say.
	AOF, Fsync, Save string
}

// readPersistence asks one Redis server with CONFIG GET, and with INFO
// persistence when CONFIG is refused (managed Redis often disables it).
func readPersistence(ctx context.Context, c *goredis.Client) persistence {
	p := persistence{Addr: c.Options().Addr, AOF: "?", Fsync: "?", Save: "?"}
	if m, err := c.ConfigGet(ctx, "append*").Result(); err == nil {
		p.AOF, p.Fsync = orUnknown(m, "appendonly"), orUnknown(m, "appendfsync")
		if m, err := c.ConfigGet(ctx, "save").Result(); err == nil {
			p.Save = orUnknown(m, "save")
		}
		return p
	}
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return p
	}
	for line := range strings.Lines(info) {
		switch strings.TrimSpace(line) {
		case "aof_enabled:1":
			p.AOF = "yes"
		case "aof_enabled:0":
			p.AOF = "no"
		}
	}
	return p
}

func orUnknown(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return "?"
}

// verdict says at which level to log p, and what it means for hubbub's
// promise that an acknowledged event is never lost.
func (p persistence) verdict() (slog.Level, string) {
	const fix = "; run Redis with appendonly yes and appendfsync always"
	switch {
	case p.AOF == "yes" && p.Fsync == "always":
		return slog.LevelInfo, "Redis persistence: append-only file, fsync always"
	case p.AOF == "yes" && p.Fsync == "everysec":
		return slog.LevelWarn, "Redis fsyncs its append-only file once a second (appendfsync everysec): a Redis crash may lose the last second of acknowledged events" + fix
	case p.AOF == "yes" && p.Fsync == "no":
		return slog.LevelWarn, "Redis leaves fsync of its append-only file to the OS (appendfsync no): a machine crash may lose acknowledged events" + fix
	case p.AOF == "yes":
		return slog.LevelInfo, "Redis persistence: append-only file (fsync policy unknown: CONFIG GET refused)"
	case p.AOF == "no" && p.Save == "":
		return slog.LevelWarn, "Redis has no persistence (appendonly no, no save snapshots): a Redis restart loses every topic's history, webhook subscription and task; resuming subscribers get resets" + fix
	case p.AOF == "no" && p.Save != "?":
		return slog.LevelWarn, "Redis keeps only snapshots (appendonly no, save " + strconv.Quote(p.Save) + "): a Redis crash loses what was acknowledged since the last one" + fix
	case p.AOF == "no":
		return slog.LevelWarn, "Redis's append-only file is off (snapshots unknown: CONFIG GET refused): a Redis crash may lose acknowledged events" + fix
	}
	return slog.LevelWarn, "could not tell whether Redis persists data (CONFIG GET and INFO persistence refused)" + fix
}

// persistenceNotes reads the persistence of every server holding data:
// the one server, or every master of a cluster.
func persistenceNotes(ctx context.Context, rdb goredis.UniversalClient) []note {
	var ps []persistence
	switch c := rdb.(type) {
	case *goredis.Client:
		ps = append(ps, readPersistence(ctx, c))
	case *goredis.ClusterClient:
		ch := make(chan persistence, 64)
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			select {
			case ch <- readPersistence(ctx, m):
			default: // more than 64 masters: the first ones speak for all
			}
			return nil
		})
		close(ch)
		for p := range ch {
			ps = append(ps, p)
		}
		if err != nil && len(ps) == 0 {
			return []note{{slog.LevelWarn, "could not read the Redis Cluster's persistence settings", []any{"err", err}}}
		}
	}
	var out []note
	for _, p := range ps {
		level, msg := p.verdict()
		out = append(out, note{level, msg, []any{"redis", p.Addr, "appendonly", p.AOF, "appendfsync", p.Fsync, "save", p.Save}})
	}
	return out
}

// prepareRedis waits for the Redis of cfg.Store and reads its persistence
// settings, for the start-up log.
func prepareRedis(ctx context.Context, cfg config.Config, log *slog.Logger) ([]note, error) {
	rdb, err := redisconn.New(cfg.Store, 2)
	if err != nil {
		return nil, fmt.Errorf("--store %s: %w", redactURL(cfg.Store), err)
	}
	defer rdb.Close()
	if err := waitForRedis(ctx, rdb, redactURL(cfg.Store), log); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return persistenceNotes(pctx, rdb), nil
}

// risks are the WARN lines of the start-up log: settings that open the hub
// wider than its defaults, as served on main (the main listener's
// address).
func risks(cfg config.Config, main net.Addr) []note {
	var out []note
	warn := func(msg string, attrs ...any) { out = append(out, note{slog.LevelWarn, msg, attrs}) }
	public := !isLoopbackAddr(main)
	jwt := cfg.JWTSecret != "" || cfg.JWTPublicKey != "" || cfg.JWKSURL != ""
	if cfg.AllowPrivateCallbacks {
		warn("--allow-private-callbacks is on: webhook callbacks, thin-ping fetches and upstream hubs may reach loopback and private addresses (this machine and its network)")
	}
	if public && len(cfg.PublishKeys) == 0 && cfg.AdminKey == "" && !jwt {
		warn("listening on a non-loopback address with no keys: anyone who reaches it reads every topic (see --private) and may register webhooks; publishing and the admin API stay with local clients until you set --publish-key, --admin-key or --jwt-secret",
			"addr", main.String())
	}
	if public && cfg.MetricsKey == "" && cfg.AdminListen == "" {
		warn("/metrics is open to anyone who reaches this non-loopback address (traffic counts, node id, version): set --metrics-key, or move it with --admin-listen",
			"addr", main.String())
	}
	for _, o := range cfg.CORSOrigins {
		if o == "*" && len(cfg.PublishKeys) == 0 && !jwt {
			warn("--cors-origin '*' with no publish key: any web page can read the hub's answers in its visitors' browsers, and publish from a browser on this machine")
		}
	}
	for _, p := range cfg.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil && pfx.Bits() == 0 {
			warn("--trusted-proxy "+p+" trusts every address: any client can forge its address (and pass as local) with X-Forwarded-For", "trusted_proxy", p)
		}
	}
	return out
}

// isLoopbackAddr reports whether a listener's address is a loopback one
// (an unspecified address such as 0.0.0.0 or [::] is not).
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// browseURL is a URL a person on this machine can open for a listener:
// an unspecified host (0.0.0.0, [::]) becomes localhost.
func browseURL(scheme string, a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return scheme + "://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// logStartup says, once the listeners are open, where the hub is, where
// its data lives, who may do what, and each risky setting.
func (s *Server) logStartup(ls listeners) {
	dashboard := browseURL(s.scheme(), ls.main.Addr())
	if ls.admin != nil {
		dashboard = browseURL(s.scheme(), ls.admin.Addr())
	}
	attrs := []any{"addr", ls.main.Addr().String(), "url", browseURL(s.scheme(), ls.main.Addr()),
		"dashboard", dashboard, "version", s.build.Version}
	if rev := s.build.ShortRevision(); rev != "" {
		attrs = append(attrs, "revision", rev)
	}
	s.log.Info("hubbub listening", attrs...)
	if ls.admin != nil {
		s.log.Info("admin listening: the dashboard, /api/... and /metrics are served here only",
			"addr", ls.admin.Addr().String(), "url", browseURL(s.scheme(), ls.admin.Addr()))
	}
	if s.gripLn != nil {
		s.log.Info("GRIP proxy listening: requests are proxied to the origin, whose GRIP instructions hold connections",
			"grip_addr", s.gripLn.Addr().String(), "origin", s.cfg.GripOrigin, "routes", s.cfg.GripRoutes)
	}
	if s.cfg.Store == "" {
		dir, err := filepath.Abs(s.cfg.Data)
		if err != nil {
			dir = s.cfg.Data
		}
		s.log.Info("store: embedded (Pebble), fsync before every acknowledgement", "data", dir)
	} else {
		s.log.Info("store: Redis, shared by every node with this URL and prefix", "url", redactURL(s.cfg.Store), "redis_prefix", s.cfg.RedisPrefix)
	}
	s.logAccess()
	notes := append(append([]note(nil), s.startNotes...), risks(s.cfg, ls.main.Addr())...)
	for _, n := range notes {
		s.log.Log(context.Background(), n.level, n.msg, n.attrs...)
	}
}
