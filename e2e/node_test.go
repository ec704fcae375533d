package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real Node.js clients (e2e/node: ws, eventsource,
// @microsoft/fetch-event-source) against the real binary. Without node or
// e2e/node/node_modules these tests skip, loudly, unless
// HUBBUB_REQUIRE_BROWSER=1 (set by CI, which runs npm ci there), when they
// fail. Install with: (cd e2e/node && npm ci).

// needNode returns the path of node, and skips (or fails, with
// HUBBUB_REQUIRE_BROWSER=1, as in CI), naming what is missing, when node
// or one of pkgs is not installed in e2e/DIR/node_modules; what names the
// tests in that message.
func needNode(t *testing.T, what, dir string, pkgs ...string) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install -y nodejs npm)")
	}
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, "e2e/"+dir+"/node_modules/"+pkg+" (cd e2e/"+dir+" && npm ci)")
			break
		}
	}
	if len(missing) > 0 {
		msg := what + " NOT RUN: missing " + strings.Join(missing, ", ")
		if os.Getenv("HUBBUB_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_BROWSER=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		t.Skip(msg)
	}
	return node
}

// nodeScript starts `node e2e/node/SCRIPT` with env, and returns its
// stdout as lines (the channel closes when it exits) and a wait function
// that returns its stderr and exit error.
func nodeScript(t *testing.T, script string, env ...string) (<-chan string, func() (string, error)) {
	t.Helper()
	node := needNode(t, "NODE CLIENT TESTS", "node", "ws", "eventsource", "@microsoft/fetch-event-source")
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(hubEnv(), env...)
	var stderr lockedBuf
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return lines, func() (string, error) { err := cmd.Wait(); return stderr.String(), err }
}

// nextLine returns the script's next stdout line, failing the test when
// it ends or d passes first.
func nextLine(t *testing.T, lines <-chan string, d time.Duration, wait func() (string, error)) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			stderr, err := wait()
			t.Fatalf("the node script ended (%v) without the line expected; stderr:\n%s", err, stderr)
		}
		return l
	case <-time.After(d):
		t.Fatalf("no line from the node script within %v", d)
	}
	return ""
}

// Comments (the opening one, heartbeats) are lone lines: the real
// @microsoft/fetch-event-source dispatches no empty message for them, and
// the eventsource package and fetch-event-source both get every event
// (issue 12 item 9).
func TestNodeSSEComments(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--heartbeat", "1s")
	lines, wait := nodeScript(t, "sse-comments.mjs", "HUBBUB_URL="+h.URL, "TOPIC=node/comments")
	line := nextLine(t, lines, 90*time.Second, wait)
	var got struct {
		Heartbeats    int      `json:"heartbeats"`
		Comments      []string `json:"comments"`
		FetchMessages []int    `json:"fetchMessages"`
		FetchEmpty    int      `json:"fetchEmpty"`
		ESMessages    []int    `json:"esMessages"`
		Error         string   `json:"error"`
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("script said %q: %v", line, err)
	}
	if stderr, err := wait(); err != nil || got.Error != "" {
		t.Fatalf("script failed (%v, %s): %s; stderr:\n%s", err, got.Error, line, stderr)
	}
	if got.Heartbeats < 2 || len(got.Comments) < 3 || got.Comments[0] != ": hubbub stream open" {
		t.Errorf("raw stream comments %q, want the opening one and two heartbeats at least", got.Comments)
	}
	if got.FetchEmpty != 0 {
		t.Errorf("@microsoft/fetch-event-source dispatched %d empty messages over %d comments", got.FetchEmpty, len(got.Comments))
	}
	if fmt.Sprint(got.FetchMessages) != "[1 2 3]" || fmt.Sprint(got.ESMessages) != "[1 2 3]" {
		t.Errorf("events: fetch-event-source %v, eventsource %v, want [1 2 3] each", got.FetchMessages, got.ESMessages)
	}
}

// A graceful stop, seen by real clients (issue 12 item 5): the ws package
// gets close code 1001 with a reason, and the eventsource package
// reconnects by itself to the restarted hub, with Last-Event-ID, getting
// the event published meanwhile and nothing twice.
func TestNodeShutdown(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	h := startHub(t, data, "--sse-retry", "200ms")
	lines, wait := nodeScript(t, "shutdown.mjs", "HUBBUB_URL="+h.URL, "TOPIC=node/shutdown")
	if l := nextLine(t, lines, 60*time.Second, wait); l != `{"ready":true}` {
		t.Fatalf("script said %q before being ready", l)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	h2 := startHub(t, data, "--listen", u.Host, "--sse-retry", "200ms")
	h2.publish(t, `{"topic":"node/shutdown","data":"after"}`)
	line := nextLine(t, lines, 60*time.Second, wait)
	var got struct {
		WSEvents []string `json:"wsEvents"`
		WSClose  *struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"wsClose"`
		ESMessages []string `json:"esMessages"`
		ESIDs      []string `json:"esIDs"`
		ESOpens    int      `json:"esOpens"`
		Error      string   `json:"error"`
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("script said %q: %v", line, err)
	}
	if stderr, err := wait(); err != nil || got.Error != "" {
		t.Fatalf("script failed (%v, %s): %s; stderr:\n%s", err, got.Error, line, stderr)
	}
	if got.WSClose == nil || got.WSClose.Code != 1001 || got.WSClose.Reason == "" {
		t.Errorf("ws close %+v, want code 1001 with a reason", got.WSClose)
	}
	if fmt.Sprint(got.ESMessages) != "[before after]" || got.ESOpens != 2 {
		t.Errorf("eventsource: messages %q over %d opens, want [before after] over 2", got.ESMessages, got.ESOpens)
	}
	if len(got.ESIDs) == 2 && !strings.HasSuffix(got.ESIDs[1], ":2") {
		t.Errorf("eventsource ids %q: the second event is not seq 2 of the same log", got.ESIDs)
	}
}
