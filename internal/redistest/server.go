package redistest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// FreePort returns a loopback TCP port that was free a moment ago (for a
// server a test starts later; another process may take it meanwhile,
// which the test then reports as a failure to start, never as a pass).
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server starts a fresh redis-server on 127.0.0.1:port (a free port when
// port is 0) with the extra arguments args (e.g. "--appendonly", "yes"),
// waits until it answers PING, and stops it when the test ends. Its files
// go to a temporary directory. It returns host:port. Without redis-server
// on PATH it skips loudly, or fails with HUBBUB_REQUIRE_REDIS=1.
func Server(tb testing.TB, port int, args ...string) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "!!! redis-server not on PATH: tests that start their own Redis NOT RUN !!!"
		if os.Getenv("HUBBUB_REQUIRE_REDIS") == "1" {
			tb.Fatal(msg + " (HUBBUB_REQUIRE_REDIS=1)")
		}
		tb.Skip(msg)
	}
	if port == 0 {
		port = FreePort(tb)
	}
	dir := tb.TempDir()
	ps := strconv.Itoa(port)
	all := append([]string{"--port", ps, "--bind", "127.0.0.1", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log")}, args...)
	cmd := exec.Command(bin, all...)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := "127.0.0.1:" + ps
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		err := c.Ping(ctx).Err()
		var answer goredis.Error // NOAUTH and the like: it is up
		if err == nil || errors.As(err, &answer) {
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			tb.Fatalf("redis-server %v exited: %v\n%s", all, waitErr, log)
		case <-ctx.Done():
			tb.Fatalf("redis-server on %s did not answer within 20s", addr)
		case <-time.After(20 * time.Millisecond): // polling a starting server, with a deadline
		}
	}
	return addr
}
