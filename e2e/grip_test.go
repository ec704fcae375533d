package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The GRIP proxy, black-box: the example origin in e2e/grip (Express with
// the real @fanoutio/serve-grip, publishing with @fanoutio/grip's
// Publisher) runs behind the real hubbub binary's GRIP listener, and the
// same scenarios run behind Debian's pushpin, whose client-visible bytes
// (status, the headers that matter, body) must be the same. Without node
// or e2e/grip/node_modules these tests skip loudly unless
// HUBBUB_REQUIRE_BROWSER=1; without pushpin the comparison skips loudly
// unless HUBBUB_REQUIRE_PUSHPIN=1 (CI sets both).

const gripSigKey = "0123456789abcdef0123456789abcdef-e2e"

// originProc is one run of e2e/grip/origin.js.
type originProc struct {
	URL  string
	Port int
	out  *lockedBuf
	stop func() // kills it and waits for it to exit
}

// needGripOrigin skips (or fails, with HUBBUB_REQUIRE_BROWSER=1) when
// node or the origin's npm packages are missing.
func needGripOrigin(t *testing.T) string {
	t.Helper()
	return needNode(t, "GRIP ORIGIN TESTS", "grip", "express", "@fanoutio/serve-grip", "@fanoutio/grip")
}

// startOrigin runs the example origin on port with the control URI and
// publish key given, and waits for it to listen.
func startOrigin(t *testing.T, node string, port int, controlURI, publishKey string) *originProc {
	t.Helper()
	return startNodeOrigin(t, node, "grip", "origin.js", port, "origin listening",
		"GRIP_CONTROL_URI="+controlURI, "GRIP_SIG_KEY="+gripSigKey, "GRIP_PUBLISH_KEY="+publishKey)
}

// startNodeOrigin runs node SCRIPT in dir with PORT=port and env, and
// waits for it to print ready (or, when ready is "", to accept
// connections).
func startNodeOrigin(t *testing.T, node, dir, script string, port int, ready string, env ...string) *originProc {
	t.Helper()
	cmd := exec.Command(node, script)
	cmd.Dir = dir
	cmd.Env = append(append(hubEnv(), fmt.Sprintf("PORT=%d", port)), env...)
	o := &originProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, out: &lockedBuf{}}
	cmd.Stdout, cmd.Stderr = o.out, o.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start origin: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	o.stop = func() { _ = cmd.Process.Kill(); <-done }
	t.Cleanup(func() {
		o.stop()
		if t.Failed() {
			t.Logf("origin output:\n%s", clipString(o.out.String(), 4000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !o.ready(ready) {
		select {
		case <-done:
			t.Fatalf("the origin exited: %s", o.out.String())
		case <-time.After(20 * time.Millisecond): // polling its output, with a deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("the origin did not listen within 15s: %s", o.out.String())
		}
	}
	return o
}

// ready reports whether the origin printed ready, or with ready "",
// whether it accepts connections.
func (o *originProc) ready(ready string) bool {
	if ready != "" {
		return strings.Contains(o.out.String(), ready)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", o.Port), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// gripSide is a GRIP proxy in front of an origin: hubbub's or Pushpin's.
type gripSide struct {
	name   string
	URL    string // the proxy, where clients go
	origin *originProc
	hub    *hubProc // nil for Pushpin
}

var gripAddrRE = regexp.MustCompile(`msg="GRIP proxy listening.*?\bgrip_addr=(\S+)`)

// startGripHub starts hubbub with a GRIP listener in front of a fresh
// origin that publishes back to it.
func startGripHub(t *testing.T, node, publishKey string, extraArgs ...string) gripSide {
	t.Helper()
	originPort := freePort(t)
	args := append([]string{"--grip-listen", "127.0.0.1:0", "--grip-origin", fmt.Sprintf("http://127.0.0.1:%d", originPort),
		"--grip-sig-key", gripSigKey}, extraArgs...)
	if publishKey != "" {
		args = append(args, "--publish-key", publishKey)
	}
	h := startHub(t, "", args...)
	h.waitLog(t, "GRIP proxy listening", 10*time.Second)
	m := gripAddrRE.FindStringSubmatch(h.Stderr())
	if m == nil {
		t.Fatalf("no grip_addr in the log:\n%s", h.Stderr())
	}
	o := startOrigin(t, node, originPort, h.URL, publishKey)
	return gripSide{name: "hubbub", URL: "http://" + strings.Trim(m[1], `"`), origin: o, hub: h}
}

// startPushpin starts Debian's pushpin (with its own zurl and condure) in
// front of a fresh origin that publishes to it, all state in a temporary
// directory. It skips loudly without pushpin unless
// HUBBUB_REQUIRE_PUSHPIN=1.
func startPushpin(t *testing.T, node string) gripSide {
	t.Helper()
	bin, err := exec.LookPath("pushpin")
	if err != nil {
		msg := "PUSHPIN COMPARISON NOT RUN: pushpin is not installed (apt-get install -y pushpin)"
		if os.Getenv("HUBBUB_REQUIRE_PUSHPIN") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_PUSHPIN=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "pp") // short: ipc socket paths have a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	httpPort, pubPort, originPort := freePort(t), freePort(t), freePort(t)
	run := filepath.Join(dir, "run")
	for _, d := range []string{run, filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`[global]
include={libdir}/internal.conf
rundir=%[1]s
ipc_prefix=pp-
port_offset=0
[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=%[2]d
logdir=%[3]s
log_level=2
client_buffer_size=8192
client_maxconn=1000
condure_bin=condure
zurl_bin=zurl
[proxy]
routesfile=routes
zurl_out_specs=ipc://%[1]s/pp-zurl-in
zurl_out_stream_specs=ipc://%[1]s/pp-zurl-in-stream
zurl_in_specs=ipc://%[1]s/pp-zurl-out
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
sig_iss=pushpin
sig_key=%[4]s
updates_check=off
[handler]
push_in_spec=ipc://%[1]s/pp-push-in
push_in_sub_specs=ipc://%[1]s/pp-push-sub
push_in_http_addr=127.0.0.1
push_in_http_port=%[5]d
stats_spec=ipc://%[1]s/pp-stats
command_spec=ipc://%[1]s/pp-command
message_rate=2500
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
`, run, httpPort, filepath.Join(dir, "log"), gripSigKey, pubPort)
	if err := os.WriteFile(filepath.Join(dir, "pushpin.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// over_http: WebSockets go to the origin as WebSocket-over-HTTP (gripws_test.go).
	if err := os.WriteFile(filepath.Join(dir, "routes"), fmt.Appendf(nil, "* 127.0.0.1:%d,over_http\n", originPort), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "pushpin.conf"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its services are its children: stop them together
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pushpin: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("pushpin output:\n%s", clipString(out.String(), 4000))
			logs, _ := filepath.Glob(filepath.Join(dir, "log", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), clipString(string(b), 3000))
			}
		}
	})
	o := startOrigin(t, node, originPort, fmt.Sprintf("http://127.0.0.1:%d", pubPort), "")
	side := gripSide{name: "pushpin", URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), origin: o}
	// Ready when a request reaches the origin through it (its services
	// start one by one: slow on a loaded machine).
	deadline := time.Now().Add(60 * time.Second)
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := probe.Get(side.URL + "/hello")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 203 {
				return side
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushpin did not proxy to the origin within 60s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond) // polling readiness, with a deadline
	}
}

// send publishes through the origin's Publisher (POST /send/CHANNEL).
func (g gripSide) send(t *testing.T, channel, body string) {
	t.Helper()
	resp, err := httpc.Post(g.origin.URL+"/send/"+channel, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: publish %s through the origin: %d %s", g.name, body, resp.StatusCode, b)
	}
}

// seen is what a client saw of one answer: the status and the headers
// that matter, and the body.
type seen struct {
	Status                            int
	ContentType, CacheControl, Length string
	Extra                             string // X-Example
	Body                              string
}

func seenOf(resp *http.Response, body string) seen {
	return seen{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
		CacheControl: resp.Header.Get("Cache-Control"), Length: resp.Header.Get("Content-Length"),
		Extra: resp.Header.Get("X-Example"), Body: body}
}

// get fetches a whole answer through the proxy.
func (g gripSide) get(t *testing.T, path string) seen {
	t.Helper()
	resp, err := streamc.Get(g.URL + path)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", g.name, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", g.name, path, err)
	}
	return seenOf(resp, string(b))
}

// longPollPublished holds GET /lp/CHANNEL and publishes an http-response
// through the origin, again every 200 ms (the same item) until the client
// has its answer: a proxy need not say when the hold has begun.
func (g gripSide) longPollPublished(t *testing.T, channel, text string) seen {
	t.Helper()
	got := make(chan seen, 1)
	go func() {
		resp, err := streamc.Get(g.URL + "/lp/" + channel + "?timeout=30")
		if err != nil {
			got <- seen{Body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- seenOf(resp, string(b))
	}()
	deadline := time.After(20 * time.Second)
	for {
		g.send(t, channel, fmt.Sprintf(`{"kind":"response","text":%q}`, text))
		select {
		case s := <-got:
			return s
		case <-deadline:
			t.Fatalf("%s: the long-poll got no answer within 20s", g.name)
		case <-time.After(200 * time.Millisecond): // publish again
		}
	}
}

// sseScenario opens GET /sse/CHANNEL, publishes "warm" events until one
// arrives (the hold has begun), then "one", "two" and a close, and
// returns the stream with the warm-up events left out.
func (g gripSide) sseScenario(t *testing.T, channel string) seen {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/sse/"+channel, nil)
	resp, err := streamc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	defer resp.Body.Close()
	events := make(chan string, 64)
	go func() {
		defer close(events)
		br := bufio.NewReader(resp.Body)
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			ev.WriteString(line)
			if line == "\n" {
				events <- ev.String()
				ev.Reset()
			}
			if err != nil {
				if ev.Len() > 0 {
					events <- ev.String()
				}
				return
			}
		}
	}()
	var body strings.Builder
	body.WriteString(<-events) // the origin's opening event
	warm := "event: message\ndata: warm\n\n"
	deadline := time.After(20 * time.Second)
warming:
	for {
		g.send(t, channel, `{"kind":"sse","text":"warm"}`)
		select {
		case ev := <-events:
			if ev != warm {
				t.Fatalf("%s: got %q while warming up", g.name, ev)
			}
			break warming
		case <-deadline:
			t.Fatalf("%s: no warm-up event within 20s", g.name)
		case <-time.After(200 * time.Millisecond):
		}
	}
	g.send(t, channel, `{"kind":"sse","text":"one"}`)
	g.send(t, channel, `{"kind":"sse","text":"two"}`)
	g.send(t, channel, `{"kind":"close"}`)
	for ev := range events {
		if ev != warm {
			body.WriteString(ev)
		}
	}
	return seenOf(resp, body.String())
}

// gripScenarios are the client-visible behaviours compared between the
// proxies, each on its own channel.
var gripScenarios = []struct {
	name string
	run  func(t *testing.T, g gripSide, channel string) seen
}{
	{"plain", func(t *testing.T, g gripSide, _ string) seen { return g.get(t, "/hello") }},
	{"next-link", func(t *testing.T, g gripSide, _ string) seen {
		s := g.get(t, "/chunks")
		s.Length = "" // Pushpin keeps the first part's length header off too; not compared
		return s
	}},
	{"grip-status", func(t *testing.T, g gripSide, _ string) seen { return g.get(t, "/accepted") }},
	{"long-poll timeout", func(t *testing.T, g gripSide, ch string) seen { return g.get(t, "/lp/"+ch+"?timeout=1") }},
	{"long-poll timeout grip-status", func(t *testing.T, g gripSide, ch string) seen {
		return g.get(t, "/lp/"+ch+"?timeout=1&status=202")
	}},
	{"grip-instruct timeout", func(t *testing.T, g gripSide, ch string) seen { return g.get(t, "/instruct/"+ch+"?timeout=1") }},
	{"long-poll published", func(t *testing.T, g gripSide, ch string) seen {
		return g.longPollPublished(t, ch, "hello from the publisher\n")
	}},
	{"sse stream", func(t *testing.T, g gripSide, ch string) seen { return g.sseScenario(t, ch) }},
	{"sse keep-alive", func(t *testing.T, g gripSide, ch string) seen { return g.keepAliveScenario(t, ch) }},
}

// keepAliveScenario opens GET /sse/CHANNEL?ka=1, waits for a keep-alive
// after the opening event, then publishes a close; keep-alives in a row
// count as one (how many fit before the close is timing).
func (g gripSide) keepAliveScenario(t *testing.T, channel string) seen {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/sse/"+channel+"?ka=1", nil)
	resp, err := streamc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var body strings.Builder
	for !strings.HasSuffix(body.String(), "\n\n:\n\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v after %q", g.name, err, body.String())
		}
		body.WriteString(line)
	}
	g.send(t, channel, `{"kind":"close"}`)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	s := body.String() + string(rest)
	for strings.Contains(s, ":\n\n:\n\n") {
		s = strings.ReplaceAll(s, ":\n\n:\n\n", ":\n\n")
	}
	return seenOf(resp, s)
}

// TestGripOrigin runs every scenario through hubbub and checks what the
// client got.
func TestGripOrigin(t *testing.T) {
	node := needGripOrigin(t)
	g := startGripHub(t, node, "pub-key-e2e")
	want := map[string]seen{
		"plain":                         {Status: 203, ContentType: "text/plain; charset=utf-8", Length: "6", Extra: "plain", Body: "hello\n"},
		"next-link":                     {Status: 200, ContentType: "text/plain; charset=utf-8", Body: "part 1\npart 2\n"},
		"grip-status":                   {Status: 202, ContentType: "text/plain; charset=utf-8", Length: "9", Body: "accepted\n"},
		"long-poll timeout":             {Status: 200, ContentType: "text/plain; charset=utf-8", Length: "8", Body: "timeout\n"},
		"long-poll timeout grip-status": {Status: 202, ContentType: "text/plain; charset=utf-8", Length: "8", Body: "timeout\n"},
		"grip-instruct timeout":         {Status: 202, ContentType: "text/plain", Length: "19", Extra: "instruct", Body: "instructed timeout\n"},
		"long-poll published":           {Status: 200, ContentType: "text/plain", Length: "25", Body: "hello from the publisher\n"},
		"sse keep-alive": {Status: 200, ContentType: "text/event-stream; charset=utf-8", CacheControl: "no-cache",
			Body: "event: open\ndata: {}\n\n:\n\n"},
		"sse stream": {Status: 200, ContentType: "text/event-stream; charset=utf-8", CacheControl: "no-cache",
			Body: "event: open\ndata: {}\n\nevent: message\ndata: one\n\nevent: message\ndata: two\n\n"},
	}
	for i, sc := range gripScenarios {
		t.Run(sc.name, func(t *testing.T) {
			if got := sc.run(t, g, fmt.Sprintf("e2e-%d", i)); got != want[sc.name] {
				t.Errorf("got  %+v\nwant %+v", got, want[sc.name])
			}
		})
	}
	// Held connections were counted as the grip transports.
	g.hub.waitMetric(t, `hubbub_events_delivered_total{transport="grip-response"}`, 5*time.Second, func(v float64) bool { return v >= 1 })
	g.hub.waitMetric(t, `hubbub_events_delivered_total{transport="grip-stream"}`, 5*time.Second, func(v float64) bool { return v >= 3 })
}

// TestGripSameAsPushpin runs the scenarios behind hubbub and behind
// Debian's pushpin and compares what the clients saw.
func TestGripSameAsPushpin(t *testing.T) {
	node := needGripOrigin(t)
	pp := startPushpin(t, node)
	hb := startGripHub(t, node, "")
	for i, sc := range gripScenarios {
		t.Run(sc.name, func(t *testing.T) {
			ch := fmt.Sprintf("cmp-%d", i)
			want := sc.run(t, pp, ch)
			got := sc.run(t, hb, ch)
			if got != want {
				t.Errorf("hubbub and pushpin differ:\nhubbub  %+v\npushpin %+v", got, want)
			}
		})
	}
}

// startReadmeGripOrigin writes the README's code block marked marker as an
// ES module origin, starts a hub whose GRIP listener is in front of it, and
// the origin; it returns the hub, the origin and the GRIP listener's
// host:port.
func startReadmeGripOrigin(t *testing.T, marker string) (*hubProc, *originProc, string) {
	t.Helper()
	node := needGripOrigin(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "origin.mjs"), []byte(readmeBlock(t, marker)), 0o644); err != nil {
		t.Fatal(err)
	}
	modules, err := filepath.Abs(filepath.Join("grip", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	originPort := freePort(t)
	h := startHub(t, "", "--grip-listen", "127.0.0.1:0", "--grip-origin", fmt.Sprintf("http://127.0.0.1:%d", originPort), "--grip-sig-key", gripSigKey)
	h.waitLog(t, "GRIP proxy listening", 10*time.Second)
	m := gripAddrRE.FindStringSubmatch(h.Stderr())
	if m == nil {
		t.Fatal("no grip_addr in the log")
	}
	o := startNodeOrigin(t, node, dir, "origin.mjs", originPort, "", "HUB="+h.URL, "GRIP_SIG_KEY="+gripSigKey)
	return h, o, strings.Trim(m[1], `"`)
}

// TestGripReadmeOrigin runs the README's example origin behind hubbub:
// its SSE stream and long-poll get what its /say publishes.
func TestGripReadmeOrigin(t *testing.T) {
	_, o, addr := startReadmeGripOrigin(t, "<!-- tested: e2e/grip_test.go readme origin -->")
	grip := "http://" + addr
	say := func() {
		resp, err := httpc.Post(o.URL+"/say", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/say: %d %s", resp.StatusCode, b)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", grip+"/events", nil)
	resp, err := streamc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE content type %q", ct)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		br := bufio.NewReader(resp.Body)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- l
		}
	}()
	deadline := time.After(20 * time.Second)
	for got := false; !got; {
		say() // again until the hold has begun
		select {
		case l := <-lines:
			got = l == "data: hello\n"
		case <-deadline:
			t.Fatal("the SSE stream got no publish within 20s")
		case <-time.After(200 * time.Millisecond):
		}
	}

	answer := make(chan string, 1)
	go func() {
		resp, err := streamc.Get(grip + "/updates")
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	for {
		say()
		select {
		case a := <-answer:
			if a != "hello\n" {
				t.Fatalf("long-poll answered %q", a)
			}
			return
		case <-deadline:
			t.Fatal("the long-poll got no publish within 20s")
		case <-time.After(200 * time.Millisecond):
		}
	}
}
