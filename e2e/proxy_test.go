package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// nginxProc is a real nginx in front of one hub, started by the test.
type nginxProc struct {
	URL string // http://127.0.0.1:PORT, the proxy
	Dir string // its prefix: nginx.conf, error.log, access.log
}

// ErrorLog and AccessLog return nginx's logs so far.
func (n *nginxProc) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}
func (n *nginxProc) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "access.log"))
	return string(b)
}

// readmeNginxConf is the nginx site configuration the README shows under
// "Behind a reverse proxy": the fenced block after the marker line.
func readmeNginxConf(t testing.TB) string {
	return readmeBlock(t, "<!-- tested: e2e/proxy_test.go nginx -->")
}

// readmeBlock returns the first fenced code block after marker in README.md.
func readmeBlock(t testing.TB, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	m := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```").FindStringSubmatch(after)
	if m == nil {
		t.Fatalf("README.md has no code block after %q", marker)
	}
	return m[1]
}

// replaceOnce replaces old by new in s, failing unless old occurs exactly
// once (so the README cannot drift from what the test runs).
func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("README config: %q occurs %d times, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// requireTool returns the path of a program the test needs, or skips the
// test loudly (fails it when requireEnv is "1").
func requireTool(t testing.TB, name, requireEnv, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} { // not every PATH has sbin
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	msg := fmt.Sprintf("%s TESTS NOT RUN: %s is not installed (%s)", strings.ToUpper(name), name, install)
	if os.Getenv(requireEnv) == "1" {
		t.Fatal(msg + " and " + requireEnv + "=1")
	}
	fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
	t.Skip(msg)
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx in the foreground as a child process, with the
// README's site configuration pointed at hub and listening on a free
// loopback port, its logs and temporary files in a fresh directory. It is
// stopped at the end of the test. Without nginx the test skips, loudly,
// unless HUBBUB_REQUIRE_NGINX=1.
func startNginx(t testing.TB, hub *hubProc) *nginxProc {
	t.Helper()
	return startNginxSite(t, func(listen string) string {
		site := readmeNginxConf(t)
		site = replaceOnce(t, site, "listen 80;", "listen "+listen+";")
		return replaceOnce(t, site, "http://127.0.0.1:8080", hub.URL)
	})
}

// startNginxSite runs nginx with the site configuration (the content of
// http { }) that site returns for the loopback address it should listen
// on, as startNginx describes.
func startNginxSite(t testing.TB, site func(listen string) string) *nginxProc {
	t.Helper()
	bin := requireTool(t, "nginx", "HUBBUB_REQUIRE_NGINX", "apt-get install -y nginx")
	dir := t.TempDir()
	port := freePort(t)
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, "tmp", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
%[2]s}
`, dir, site(fmt.Sprintf("127.0.0.1:%d", port)))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	global := "daemon off; pid " + filepath.Join(dir, "nginx.pid") + ";"
	if os.Geteuid() == 0 {
		global += " user root;" // workers must reach the temporary directory
	}
	cmd := exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", "nginx.conf", "-g", global)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n := &nginxProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s\nerror.log:\n%s\naccess.log:\n%s", out.String(), clipString(n.ErrorLog(), 4000), clipString(n.AccessLog(), 4000))
		}
	})
	// Wait until it proxies: /healthz through it answers 200.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := httpc.Get(n.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s\n%s", out.String(), n.ErrorLog())
		case <-time.After(50 * time.Millisecond): // poll interval; the deadline bounds the loop
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not proxy /healthz within 10s (%v): %s\n%s", err, out.String(), n.ErrorLog())
		}
	}
}

// startProxiedHub starts a hub with hubArgs and nginx in front of it, as
// the README's "Behind a reverse proxy" section configures them. It
// returns the hub and a view of it through the proxy (same process, URL
// of nginx), on which every hubProc helper works.
func startProxiedHub(t testing.TB, hubArgs ...string) (hub, proxied *hubProc, ng *nginxProc) {
	t.Helper()
	hub = startHub(t, "", hubArgs...)
	ng = startNginx(t, hub)
	p := *hub
	p.URL = ng.URL
	return hub, &p, ng
}

// TestNginxStreamsSSEUnbuffered: an event published after an SSE stream
// opened through nginx arrives through it while the stream stays open
// (nginx buffering would hold it back), and so does the opening comment,
// a lone line, before any event.
func TestNginxStreamsSSEUnbuffered(t *testing.T) {
	hub, proxied, _ := startProxiedHub(t)
	s := proxied.openSSE(t, "topic=proxy/sse", "", true)
	if got := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/event-stream") {
		t.Fatalf("Content-Type through nginx %q", got)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.raw.String(), "\n: hubbub stream open\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("the opening comment did not come through nginx within 10s: %q", s.raw.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	for i := 1; i <= 3; i++ {
		hub.publish(t, fmt.Sprintf(`{"topic":"proxy/sse","data":{"n":%d}}`, i))
		ev := s.next(t, 10*time.Second)
		if w := decodeData(t, ev); w.Seq != uint64(i) {
			t.Fatalf("event %d: got seq %d", i, w.Seq)
		}
	}
}

// TestNginxUpgradesWebSocket: /ws upgrades through nginx and receives an
// event published afterwards.
func TestNginxUpgradesWebSocket(t *testing.T) {
	hub, _, ng := startProxiedHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ng.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket through nginx: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"proxy/ws"}`)); err != nil {
		t.Fatal(err)
	}
	read := func(want string) {
		t.Helper()
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), want) {
			t.Fatalf("websocket through nginx: got %s (%v), want %s", msg, err, want)
		}
	}
	read(`"subscribed"`)
	hub.publish(t, `{"topic":"proxy/ws","data":{"via":"nginx"}}`)
	read(`"via":"nginx"`)
}

// TestCaddyfileValidates runs `caddy validate` on the README's Caddyfile.
// It skips, loudly, when caddy is not installed (unless
// HUBBUB_REQUIRE_CADDY=1).
func TestCaddyfileValidates(t *testing.T) {
	bin := requireTool(t, "caddy", "HUBBUB_REQUIRE_CADDY", "apt-get install -y caddy")
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(readmeBlock(t, "<!-- tested: e2e/proxy_test.go caddy -->")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "validate", "--adapter", "caddyfile", "--config", file)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
}

// TestNginxKeepsOwnOriginPublishing: through the README's nginx config a
// page of the hub's own public origin may publish (nginx passes the Host
// with its port, which the origin check compares), and a foreign origin
// gets 403.
func TestNginxKeepsOwnOriginPublishing(t *testing.T) {
	_, proxied, ng := startProxiedHub(t, "--publish-key", "proxy-test-key")
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{ng.URL, http.StatusOK},
		{"https://evil.example", http.StatusForbidden},
	} {
		a := proxied.do(t, http.MethodPost, "/publish", http.Header{
			"Content-Type":  {"application/json"},
			"Origin":        {tt.origin},
			"Authorization": {"Bearer proxy-test-key"},
		}, []byte(`{"topic":"proxy/origin","data":1}`))
		if a.Status != tt.want {
			t.Errorf("Origin %s through nginx: %s, want %d", tt.origin, a, tt.want)
		}
	}
}

// TestCaddyStreamsSSE runs the README's Caddyfile (its site address
// replaced by a free loopback port over plain HTTP, Caddy's admin endpoint
// off) in front of the real binary: an SSE stream through it receives an
// event published after it opened, and so does a WebSocket.
func TestCaddyStreamsSSE(t *testing.T) {
	bin := requireTool(t, "caddy", "HUBBUB_REQUIRE_CADDY", "apt-get install -y caddy")
	hub := startHub(t, "")
	dir := t.TempDir()
	port := freePort(t)
	site := readmeBlock(t, "<!-- tested: e2e/proxy_test.go caddy -->")
	site = replaceOnce(t, site, "hub.example.com {", fmt.Sprintf("http://127.0.0.1:%d {", port))
	site = replaceOnce(t, site, "reverse_proxy 127.0.0.1:8080", "reverse_proxy "+strings.TrimPrefix(hub.URL, "http://"))
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte("{\n\tadmin off\n}\n\n"+site), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--adapter", "caddyfile", "--config", file)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("caddy output:\n%s", clipString(out.String(), 4000))
		}
	})
	proxied := *hub
	proxied.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, err := proxied.try(http.MethodGet, "/healthz", nil, nil); err == nil && a.Status == http.StatusOK {
			break
		}
		select {
		case <-exited:
			t.Fatalf("caddy exited: %s", out.String())
		case <-time.After(50 * time.Millisecond): // poll interval; the deadline bounds the loop
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not proxy /healthz within 10s: %s", out.String())
		}
	}

	s := proxied.openSSE(t, "topic=proxy/caddy", "", false)
	hub.publish(t, `{"topic":"proxy/caddy","data":{"via":"caddy"}}`)
	if w := decodeData(t, s.next(t, 10*time.Second)); w.Seq != 1 {
		t.Fatalf("through caddy: seq %d, want 1", w.Seq)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(proxied.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket through caddy: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"proxy/caddy","after":"0"}`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"subscribed"`, `"via":"caddy"`} {
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), want) {
			t.Fatalf("websocket through caddy: got %s (%v), want %s", msg, err, want)
		}
	}
}

// Behind a same-host proxy every client arrives from loopback; without keys
// such a client must not count as local (audit finding 2, newcomer report
// 1): publishing and the admin API are refused through nginx, while a
// direct loopback client still may.
func TestNginxProxiedClientIsNotLocal(t *testing.T) {
	hub, proxied, _ := startProxiedHub(t)
	body := []byte(`{"topic":"proxy/local","data":1}`)
	if a := proxied.do(t, http.MethodPost, "/publish", ctHeader("application/json"), body); a.Status != http.StatusUnauthorized && a.Status != http.StatusForbidden {
		t.Errorf("publish through nginx without a key: %s, want 401 or 403", a)
	}
	if a := proxied.do(t, http.MethodGet, "/api/stats", nil, nil); a.Status != http.StatusUnauthorized {
		t.Errorf("/api/stats through nginx: %s, want 401", a)
	}
	if a := hub.do(t, http.MethodPost, "/publish", ctHeader("application/json"), body); a.Status != http.StatusOK {
		t.Errorf("publish from loopback directly: %s, want 200", a)
	}
	if got := hub.retrieveAll(t, "proxy/local"); len(got) != 1 {
		t.Errorf("stored %d events, want 1 (only the direct one)", len(got))
	}
}

// With --trusted-proxy the client address is the one nginx forwards (the
// rightmost hop not in a trusted range), and that is what the hub's logs
// show.
func TestNginxTrustedProxyNamesTheClient(t *testing.T) {
	hub, proxied, _ := startProxiedHub(t, "--trusted-proxy", "127.0.0.1/32", "--publish-key", "k", "--log-level", "debug")
	a := proxied.do(t, http.MethodPost, "/publish", http.Header{
		"Content-Type":    {"application/json"},
		"Authorization":   {"Bearer k"},
		"X-Forwarded-For": {"203.0.113.7"},
	}, []byte(`{"topic":"proxy/client","data":1}`))
	if a.Status != http.StatusOK {
		t.Fatalf("publish through nginx: %s", a)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(hub.Stderr(), "client=203.0.113.7") {
		if time.Now().After(deadline) {
			t.Fatalf("the hub's log never named client=203.0.113.7:\n%s", clipString(hub.Stderr(), 4000))
		}
		time.Sleep(20 * time.Millisecond) // polling the log file; the event is the line appearing
	}
}
