package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/internal/redistest"
)

func TestPersistenceVerdict(t *testing.T) {
	for _, c := range []struct {
		p       persistence
		level   slog.Level
		mention string
	}{
		{persistence{AOF: "yes", Fsync: "always", Save: ""}, slog.LevelInfo, "fsync always"},
		{persistence{AOF: "yes", Fsync: "everysec", Save: "3600 1"}, slog.LevelWarn, "last second"},
		{persistence{AOF: "yes", Fsync: "no", Save: ""}, slog.LevelWarn, "to the OS"},
		{persistence{AOF: "yes", Fsync: "?", Save: "?"}, slog.LevelInfo, "CONFIG GET refused"},
		{persistence{AOF: "no", Fsync: "everysec", Save: ""}, slog.LevelWarn, "no persistence"},
		{persistence{AOF: "no", Fsync: "everysec", Save: "3600 1 300 100"}, slog.LevelWarn, `save "3600 1 300 100"`},
		{persistence{AOF: "no", Fsync: "?", Save: "?"}, slog.LevelWarn, "snapshots unknown"},
		{persistence{AOF: "?", Fsync: "?", Save: "?"}, slog.LevelWarn, "could not tell"},
	} {
		level, msg := c.p.verdict()
		if level != c.level || !strings.Contains(msg, c.mention) {
			t.Errorf("%+v: %v %q, want %v mentioning %q", c.p, level, msg, c.level, c.mention)
		}
		if level == slog.LevelWarn && !strings.Contains(msg, "appendonly yes and appendfsync always") {
			t.Errorf("%+v: the warning %q does not say what to do", c.p, msg)
		}
	}
}

// Real Redis servers with three configurations, one of them with CONFIG
// disabled as managed services do: the start-up check reads what each
// does (INFO persistence when CONFIG is refused).
func TestPersistenceOfRealRedis(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		args  []string
		level slog.Level
		want  persistence
	}{
		{"aof always", []string{"--appendonly", "yes", "--appendfsync", "always", "--save", ""}, slog.LevelInfo,
			persistence{AOF: "yes", Fsync: "always", Save: ""}},
		{"nothing", []string{"--appendonly", "no", "--save", ""}, slog.LevelWarn,
			persistence{AOF: "no", Fsync: "everysec", Save: ""}},
		{"config disabled", []string{"--appendonly", "yes", "--rename-command", "CONFIG", ""}, slog.LevelInfo,
			persistence{AOF: "yes", Fsync: "?", Save: "?"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := redistest.Server(t, 0, c.args...)
			rdb, err := redisconn.New("redis://"+addr+"/0", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := readPersistence(ctx, rdb.(*goredis.Client))
			c.want.Addr = addr
			if p != c.want {
				t.Errorf("read %+v, want %+v", p, c.want)
			}
			notes := persistenceNotes(ctx, rdb)
			if len(notes) != 1 || notes[0].level != c.level {
				t.Errorf("notes %+v, want one at %v", notes, c.level)
			}
		})
	}
}

// logWatch is a slog handler that remembers messages and signals the
// first one containing want.
type logWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.buf.WriteString(r.Message + "\n")
	l.mu.Unlock()
	if strings.Contains(r.Message, l.want) {
		l.once.Do(func() { close(l.seen) })
	}
	return nil
}

func (l *logWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A hub started before its Redis waits, says so, and goes on once Redis
// is up; a signal (ctx) ends the wait.
func TestWaitForRedis(t *testing.T) {
	t.Parallel()
	port := redistest.FreePort(t)
	where := "127.0.0.1:" + strconv.Itoa(port)
	rdb, err := redisconn.New("redis://"+where+"/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	lw := &logWatch{want: "waiting for Redis at " + where + "; retrying in 1s", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- waitForRedis(context.Background(), rdb, where, slog.New(lw)) }()
	select {
	case <-lw.seen:
	case err := <-done:
		t.Fatalf("waitForRedis returned %v with no Redis on %s", err, where)
	case <-time.After(30 * time.Second):
		t.Fatalf("no \"waiting for Redis\" line within 30s; log:\n%s", lw)
	}
	redistest.Server(t, port)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waitForRedis: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("waitForRedis did not return within 60s of Redis starting; log:\n%s", lw)
	}

	// Nothing on the port: the wait ends with the context.
	rdb2, err := redisconn.New("redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t))+"/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb2.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	lw2 := &logWatch{want: "waiting for Redis", seen: make(chan struct{})}
	go func() { done <- waitForRedis(ctx, rdb2, "nowhere", slog.New(lw2)) }()
	<-lw2.seen
	stop := errors.New("signal")
	cancel(stop)
	select {
	case err := <-done:
		if !errors.Is(err, stop) || !strings.Contains(err.Error(), "stopped while waiting for Redis at nowhere") {
			t.Fatalf("after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitForRedis did not return within 30s of its context ending")
	}
}

// A wrong password is not worth waiting for.
func TestWaitForRedisGivesUpOnWrongPassword(t *testing.T) {
	t.Parallel()
	addr := redistest.Server(t, 0, "--requirepass", "right")
	rdb, err := redisconn.New("redis://:wrong@"+addr+"/0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = waitForRedis(ctx, rdb, addr, slog.New(slog.DiscardHandler))
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "refused us") {
		t.Fatalf("waitForRedis with a wrong password = %v (ctx %v), want a refusal at once", err, ctx.Err())
	}
}

func TestRisks(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	lan := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}
	with := func(f func(*config.Config)) config.Config {
		c := config.Default()
		f(&c)
		return c
	}
	none := func(*config.Config) {}
	for _, c := range []struct {
		name string
		cfg  config.Config
		addr net.Addr
		want []string // a part of each warning, in order
	}{
		{"defaults on loopback", with(none), loop, nil},
		{"defaults on 0.0.0.0", with(none), any4, []string{"with no keys", "/metrics is open"}},
		{"keys on a LAN address", with(func(c *config.Config) { c.PublishKeys = []string{"k"}; c.AdminKey = "a" }), lan,
			[]string{"/metrics is open"}},
		{"admin key only", with(func(c *config.Config) { c.AdminKey = "a"; c.MetricsKey = "m" }), lan, nil},
		{"metrics on the admin listener", with(func(c *config.Config) { c.JWTSecret = "s"; c.AdminListen = "127.0.0.1:9" }), any4, nil},
		{"private callbacks", with(func(c *config.Config) { c.AllowPrivateCallbacks = true }), loop, []string{"--allow-private-callbacks"}},
		{"cors any, no keys", with(func(c *config.Config) { c.CORSOrigins = []string{"*"} }), loop, []string{"--cors-origin '*'"}},
		{"cors any, keys", with(func(c *config.Config) { c.CORSOrigins = []string{"*"}; c.PublishKeys = []string{"k"} }), loop, nil},
		{"trust everyone", with(func(c *config.Config) { c.TrustedProxies = []string{"0.0.0.0/0", "10.0.0.0/8"} }), loop,
			[]string{"trusts every address"}},
	} {
		got := risks(c.cfg, c.addr)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d warnings %+v, want %d", c.name, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if got[i].level != slog.LevelWarn || !strings.Contains(got[i].msg, w) {
				t.Errorf("%s: warning %d is %q, want one about %q", c.name, i, got[i].msg, w)
			}
		}
	}
}

func TestBrowseURL(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "http://127.0.0.1:80/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://localhost:8080/"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "http://localhost:8080/"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 8080}, "http://[::1]:8080/"},
	} {
		if got := browseURL("http", c.addr); got != c.want {
			t.Errorf("browseURL(%v) = %s, want %s", c.addr, got, c.want)
		}
	}
}
