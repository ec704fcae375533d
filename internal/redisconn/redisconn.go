// Package redisconn opens the Redis clients of hubbub's Redis backends
// (store/redis, tasks/redis, websub/redisrecords, upstream/redisupstreams)
// from one kind of URL, with the settings they all need: commands are
// never retried by the client (a retried script could append or enqueue
// twice), a bounded dial timeout, and go-redis's maintenance notifications
// off (hubbub handles reconnects itself).
//
// URLs:
//
//	redis://[user:pass@]host:port/db   one Redis server (rediss:// for TLS)
//	redis+cluster://[user:pass@]host:port?addr=host2:port&addr=host3:port
//	                                    a Redis Cluster, from one or more seed
//	                                    nodes (rediss+cluster:// for TLS); the
//	                                    query options are go-redis's
//	                                    ParseClusterURL's
//
// In a cluster, a command is re-sent to the node a MOVED or ASK reply
// names (it did not run), which is not a retry.
package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultDialTimeout bounds connecting when the URL sets no dial_timeout.
const DefaultDialTimeout = 2 * time.Second

// IsCluster reports whether url names a Redis Cluster.
func IsCluster(url string) bool {
	return strings.HasPrefix(url, "redis+cluster://") || strings.HasPrefix(url, "rediss+cluster://")
}

// New returns a client of the Redis or Redis Cluster url names (see the
// package doc); poolSize > 0 sets the connections kept per server. It does
// not connect: the first command does. The caller must Close it.
func New(url string, poolSize int) (goredis.UniversalClient, error) {
	if IsCluster(url) {
		co, err := goredis.ParseClusterURL(strings.Replace(url, "+cluster://", "://", 1))
		if err != nil {
			return nil, fmt.Errorf("redis cluster URL: %w", err)
		}
		if co.DialTimeout == 0 {
			co.DialTimeout = DefaultDialTimeout
		}
		co.MaxRetries = -1
		if poolSize > 0 {
			co.PoolSize = poolSize
		}
		co.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return goredis.NewClusterClient(co), nil
	}
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if ro.DialTimeout == 0 {
		ro.DialTimeout = DefaultDialTimeout
	}
	ro.MaxRetries = -1
	if poolSize > 0 {
		ro.PoolSize = poolSize
	}
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return goredis.NewClient(ro), nil
}

// UseLogger sends go-redis's own log lines (connection pool dial failures
// and the like), which it would otherwise print to stderr outside slog and
// so break JSON logs, to logger at warn level. go-redis keeps one logger
// per process: the last call wins.
func UseLogger(logger *slog.Logger) { goredis.SetLogger(slogPrinter{logger}) }

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if !strings.HasPrefix(msg, "redis: ") {
		msg = "redis: " + msg
	}
	p.l.WarnContext(ctx, msg)
}
