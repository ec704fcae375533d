package web_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/hubbub/hubbub/internal/redistest"
)

// TestBrowser runs the browser tests in web/e2e-browser (node --test with
// playwright-core driving Debian's headless Chromium) against the real
// hubbub binary. The Go side builds and starts the binary (and a second hub
// with --admin-key, passed to the tests as HUBBUB_KEYED_URL and
// HUBBUB_ADMIN_KEY) and serves a small control endpoint the node tests call
// to stop and start the first hub (same port, same data) and to drop or hold
// connections through a TCP proxy.
//
// Without chromium, node or the npm packages the test skips, loudly, unless
// HUBBUB_REQUIRE_BROWSER=1, when it fails. Install them with:
//
//	apt-get install -y chromium && (cd web/e2e-browser && npm ci)   # and node >= 20
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	chromium := os.Getenv("HUBBUB_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install -y chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install -y nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join("e2e-browser", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "web/e2e-browser/node_modules (cd web/e2e-browser && npm ci)")
	}
	if len(missing) > 0 {
		msg := "BROWSER TESTS NOT RUN: missing " + strings.Join(missing, ", ")
		if os.Getenv("HUBBUB_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_BROWSER=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		t.Skip(msg)
	}

	// A second hub with an admin key, for the dashboard's key form.
	const adminKey = "browser-test-admin-key"
	bin, h, keyed := startHubPair(t, adminKey)

	// The README's example page, served from another origin (a second
	// loopback port), and a hub that allows that origin.
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pageOrigin := "http://" + pageLn.Addr().String()
	cors := &hub{bin: bin, data: t.TempDir(), args: []string{"--cors-origin", pageOrigin, "--frame-ancestors", pageOrigin}}
	if err := cors.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cors.stop)
	servePages(t, pageLn, map[string]string{
		"/allowed.html": readmeExample(t, "http://"+cors.addr),
		"/refused.html": readmeExample(t, "http://"+h.addr),
		// The wall in frames: allowed by --frame-ancestors on the second
		// hub; refused on the first (none), and for any dashboard.
		"/frame-allowed.html":   framePage("http://" + cors.addr + "/wall?topic=framed/" + strconv.FormatInt(time.Now().UnixNano(), 36)),
		"/frame-refused.html":   framePage("http://" + h.addr + "/wall?topic=framed/refused"),
		"/frame-dashboard.html": framePage("http://" + cors.addr + "/"),
	})

	// A hub that verifies tokens, whose chat/ topics are private (and
	// publishing needs a credential; local clients are no admins there),
	// for the pages' access_token=.
	const jwtSecret = "browser-test-jwt-secret-of-at-least-32-bytes"
	locked := &hub{bin: bin, data: t.TempDir(), args: []string{"--jwt-secret", jwtSecret, "--private", "chat/**", "--admin-key", "browser-test-locked-admin-key"}}
	if err := locked.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(locked.stop)

	// Two nodes on one Redis, for the dashboard of a deployment.
	redisEnv := startRedisPair(t, bin)

	px := newProxy(t, h.addr)
	ctl := newControl(t, h, px)
	slow := newSlowProxy(t, h.addr)

	tests, err := filepath.Glob(filepath.Join("e2e-browser", "tests", "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no browser tests in e2e-browser/tests (%v)", err)
	}
	// HUBBUB_BROWSER_ONLY=globe runs only the files whose name holds it.
	if only := os.Getenv("HUBBUB_BROWSER_ONLY"); only != "" {
		var some []string
		for _, f := range tests {
			if strings.Contains(filepath.Base(f), only) {
				some = append(some, f)
			}
		}
		tests = some
	}
	for i := range tests {
		tests[i] = strings.TrimPrefix(filepath.ToSlash(tests[i]), "e2e-browser/")
	}
	artifacts, _ := filepath.Abs(filepath.Join("e2e-browser", "artifacts"))
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := append(cleanEnv(),
		"HUBBUB_URL=http://"+h.addr,
		"HUBBUB_PROXY_URL=http://"+px.addr,
		"HUBBUB_CONTROL_URL=http://"+ctl,
		"HUBBUB_ARTIFACTS="+artifacts,
		"HUBBUB_CHROMIUM="+chromium,
		"HUBBUB_KEYED_URL=http://"+keyed.addr,
		"HUBBUB_ADMIN_KEY="+adminKey,
		"HUBBUB_CORS_URL=http://"+cors.addr,
		"HUBBUB_PAGE_ORIGIN="+pageOrigin,
		"HUBBUB_LOCKED_URL=http://"+locked.addr,
		"HUBBUB_LOCKED_JWT_SECRET="+jwtSecret,
		"HUBBUB_SLOW_URL=http://"+slow.addr,
		"HUBBUB_SLOW_CONTROL_URL=http://"+slow.ctl,
	)
	env = append(env, redisEnv...)
	// One node process per file, one after the other: the wall test stops
	// and starts the hub, which no other test may see.
	for _, file := range tests {
		args := []string{"--test", "--test-reporter=spec", file}
		cmd := exec.CommandContext(ctx, node, args...)
		cmd.Dir = "e2e-browser"
		cmd.Env = env
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("node %s:\n%s", strings.Join(args, " "), out)
		}
		if ctx.Err() != nil {
			t.Fatalf("browser tests did not finish within 5 minutes")
		}
		if err != nil {
			t.Errorf("browser tests in %s failed: %v (hub log:\n%s\nhub with admin key, log:\n%s)", file, err,
				tail(h.log.String(), 4000), tail(keyed.log.String(), 2000))
		}
	}
	t.Logf("screenshots in %s", artifacts)
}

// startRedisPair starts two hubs (node ids browser-a and browser-b) on the
// shared Redis under a fresh key prefix, and returns the environment that
// tells the node tests their URLs; without Redis it returns
// HUBBUB_REDIS_SKIP with the reason (those tests then skip, loudly), or
// fails with HUBBUB_REQUIRE_REDIS=1.
func startRedisPair(t *testing.T, bin string) []string {
	c := goredis.NewClient(&goredis.Options{Addr: redistest.Addr(), DialTimeout: 2 * time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("Redis at %s is unreachable (%v): the two-node dashboard test is NOT RUN", redistest.Addr(), err)
		if os.Getenv("HUBBUB_REQUIRE_REDIS") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_REDIS=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		return []string{"HUBBUB_REDIS_SKIP=" + msg}
	}
	prefix := redistest.Prefix(t, c)
	var env []string
	for _, id := range []string{"a", "b"} {
		n := &hub{bin: bin, data: t.TempDir(), args: []string{"--store", redistest.URL(), "--redis-prefix", prefix, "--node-id", "browser-" + id}}
		if err := n.start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.stop)
		env = append(env, "HUBBUB_REDIS_"+strings.ToUpper(id)+"_URL=http://"+n.addr)
	}
	return env
}

// readmeExample returns the README's JavaScript client example with its
// hub URL replaced by hubURL.
func readmeExample(t *testing.T, hubURL string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- tested: web/browser_test.go example -->")
	m := regexp.MustCompile("(?s)```html\n(.*?)```").FindStringSubmatch(after)
	if !ok || m == nil {
		t.Fatal("README.md has no example page after <!-- tested: web/browser_test.go example -->")
	}
	if n := strings.Count(m[1], "https://hub.example.com"); n != 2 {
		t.Fatalf("the README example names https://hub.example.com %d times, want 2 (script and base URL)", n)
	}
	return strings.ReplaceAll(m[1], "https://hub.example.com", hubURL)
}

// framePage is an HTML page showing src in a large iframe.
func framePage(src string) string {
	return `<!doctype html><title>frame</title><iframe src="` + html.EscapeString(src) + `" width="1000" height="700"></iframe>`
}

// servePages serves fixed HTML pages on ln until the test ends.
func servePages(t *testing.T, ln net.Listener, pages map[string]string) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := pages[r.URL.Path]
			if r.URL.Path == "/favicon.ico" {
				w.WriteHeader(http.StatusNoContent) // no console error for the browser's own request
				return
			}
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, p)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// cleanEnv is the environment without HUBBUB_* settings, which would
// change what the hub's flags say.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUBBUB_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// syncBuf is a concurrency-safe buffer.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startHubPair builds hubbub and starts two hubs, stopped when the test
// ends: h with the defaults and keyed with --admin-key adminKey.
func startHubPair(t *testing.T, adminKey string) (bin string, h, keyed *hub) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "hubbub")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hubbub")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h = &hub{bin: bin, data: t.TempDir()}
	if err := h.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	keyed = &hub{bin: bin, data: t.TempDir(), args: []string{"--admin-key", adminKey}}
	if err := keyed.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keyed.stop)
	return bin, h, keyed
}

// hub runs the hubbub binary; it can be stopped and started again on the
// same address and data directory.
type hub struct {
	bin  string
	data string
	args []string // more flags for `hubbub serve`
	log  syncBuf

	mu   sync.Mutex
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

var listenRE = regexp.MustCompile(`msg="hubbub listening".*?\baddr=(\S+)`)

// start runs `hubbub serve` and waits up to 10 s for it to listen.
func (h *hub) start(listen string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		return errors.New("already running")
	}
	args := append([]string{"serve", "--listen", listen, "--data", h.data, "--heartbeat", "2s"}, h.args...)
	cmd := exec.Command(h.bin, args...)
	cmd.Env = cleanEnv()
	pr, pw := io.Pipe()
	cmd.Stdout = &h.log
	cmd.Stderr = io.MultiWriter(&h.log, pw)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start hubbub: %w", err)
	}
	done := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- strings.Trim(m[1], `"`)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	select {
	case a := <-addr:
		h.addr, h.cmd, h.done = a, cmd, done
		return nil
	case <-done:
		return fmt.Errorf("hubbub exited before listening:\n%s", tail(h.log.String(), 2000))
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("hubbub did not listen within 10s:\n%s", tail(h.log.String(), 2000))
	}
}

// stop sends SIGTERM, and SIGKILL when the hub has not exited after 10 s.
func (h *hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.cmd = nil
}

// proxy forwards TCP connections to the hub, so the tests can cut them
// (drop) and refuse new ones for a while (hold) without stopping the hub.
type proxy struct {
	addr    string
	target  string
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	holding bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.drop(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.holding {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) serve(c net.Conn) {
	defer c.Close()
	if !p.track(c, true) {
		return
	}
	defer p.track(c, false)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// drop closes every proxied connection; with hold, new ones are refused
// (accepted and closed at once) until drop(false).
func (p *proxy) drop(hold bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = hold
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
	}
	return n
}

// release lets new connections through again.
func (p *proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = false
}

// newControl serves the node tests' control endpoint: POST /stop, /start,
// /drop (?hold=1 to refuse new connections) and /release.
func newControl(t *testing.T, h *hub, p *proxy) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		h.stop()
		fmt.Fprintln(w, "stopped")
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		if err := h.start(h.addr); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "started on", h.addr)
	})
	mux.HandleFunc("POST /drop", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "dropped", p.drop(r.URL.Query().Get("hold") == "1"))
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		p.release()
		fmt.Fprintln(w, "released")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
