// Package redistest gives tests the shared Redis: they run against the real
// server (127.0.0.1:6379, or HUBBUB_TEST_REDIS), skip loudly when it is
// unreachable, and fail instead when HUBBUB_REQUIRE_REDIS=1 (CI sets it).
// Each test works under a fresh key prefix whose keys are deleted when it
// ends; nothing ever flushes a database.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Addr is the host:port of the Redis the tests use.
func Addr() string {
	if a := os.Getenv("HUBBUB_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// URL is Addr as a redis:// URL of database 0.
func URL() string { return "redis://" + Addr() + "/0" }

// Client returns a client of the shared Redis, closed when the test ends.
// When Redis is unreachable it skips the test with a loud message naming
// what is not run, or fails it with HUBBUB_REQUIRE_REDIS=1.
func Client(tb testing.TB, what string) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{
		Addr:                     Addr(),
		DialTimeout:              2 * time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		msg := fmt.Sprintf("!!! Redis at %s is unreachable (%v): %s tests NOT RUN !!!", Addr(), err, what)
		if os.Getenv("HUBBUB_REQUIRE_REDIS") == "1" {
			tb.Fatal(msg + " (HUBBUB_REQUIRE_REDIS=1)")
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a fresh key prefix whose keys are deleted (through c) when
// the test ends.
func Prefix(tb testing.TB, c *goredis.Client) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := "hubbubtest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() { DeletePrefix(tb, c, p) })
	return p
}

// DeletePrefix deletes every key under prefix p (SCAN and DEL, in chunks).
func DeletePrefix(tb testing.TB, c *goredis.Client, p string) {
	tb.Helper()
	ctx := context.Background()
	it := c.Scan(ctx, 0, p+":*", 1000).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		tb.Errorf("scan %s: %v", p, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			tb.Errorf("delete %s: %v", p, err)
			return
		}
		keys = keys[n:]
	}
}

// PerDir gives each directory of a conformance suite its own key prefix,
// the same one every time the suite reopens that directory: newPrefix
// makes the prefix of a directory not seen before. Safe for concurrent use.
func PerDir(newPrefix func() string) func(dir string) string {
	var mu sync.Mutex
	prefixes := map[string]string{}
	return func(dir string) string {
		mu.Lock()
		defer mu.Unlock()
		p, ok := prefixes[dir]
		if !ok {
			p = newPrefix()
			prefixes[dir] = p
		}
		return p
	}
}
