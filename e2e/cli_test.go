package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cliResult is what one run of the hubbub binary as a CLI printed.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the hubbub binary with args against h, with env (KEY=VALUE)
// added to the hub's clean environment, and waits up to a minute.
func cli(t *testing.T, h *hubProc, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hubBinary, args...)
	cmd.Env = append(append(hubEnv(), "HUBBUB_URL="+h.URL), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hubbub %v: %v", args, err)
	}
	return r
}

// ok runs cli and fails the test unless it exits 0.
func cliOK(t *testing.T, h *hubProc, env []string, args ...string) string {
	t.Helper()
	r := cli(t, h, env, args...)
	if r.code != 0 {
		t.Fatalf("hubbub %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// TestCLIAdmin drives `hubbub admin` (and publish, upstream) as a user
// would, against a hub with an admin key: every command's text and JSON,
// and a failing webhook retried at once with `subscriptions resume`, then
// delivered again with `subscriptions replay`.
func TestCLIAdmin(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--admin-key", "s3cret", "--publish-key", "pk", "--allow-private-callbacks")
	keys := []string{"HUBBUB_ADMIN_KEY=s3cret", "HUBBUB_PUBLISH_KEYS=pk,other"}

	// publish reads the server's own variable; prints where it stored.
	for i := range 5 {
		out := cliOK(t, h, keys, "publish", "-t", "cli/a", "-k", "doc", `{"n":`+string(rune('1'+i))+`}`)
		if !strings.HasPrefix(out, "cli/a #"+string(rune('1'+i))+" id ") {
			t.Fatalf("publish printed %q", out)
		}
	}
	var pub struct {
		Events []struct{ Seq uint64 } `json:"events"`
	}
	if out := cliOK(t, h, keys, "publish", "--json", "-t", "cli/b", "x"); json.Unmarshal([]byte(out), &pub) != nil || len(pub.Events) != 1 || pub.Events[0].Seq != 1 {
		t.Fatalf("publish --json printed %q", out)
	}

	// Without the admin key: 401, with a hint, exit 1.
	if r := cli(t, h, nil, "admin", "topics", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "HUBBUB_ADMIN_KEY") {
		t.Fatalf("admin without the key: %+v", r)
	}
	if out := cliOK(t, h, keys, "admin", "topics", "list"); !strings.Contains(out, "TOPIC") || !strings.Contains(out, "cli/a") || !strings.Contains(out, "cli/b") {
		t.Fatalf("topics list:\n%s", out)
	}
	var list struct {
		Topics []struct {
			Topic   string `json:"topic"`
			History uint64 `json:"history"`
		} `json:"topics"`
	}
	if out := cliOK(t, h, keys, "admin", "topics", "list", "--json"); json.Unmarshal([]byte(out), &list) != nil || len(list.Topics) != 2 {
		t.Fatalf("topics list --json:\n%s", out)
	}
	if out := cliOK(t, h, keys, "admin", "topics", "stats", "cli/a", "cli/never"); !strings.Contains(out, "history:") ||
		!strings.Contains(out, "5 events") || !strings.Contains(out, "never published to") {
		t.Fatalf("topics stats:\n%s", out)
	}
	if out := cliOK(t, h, keys, "admin", "topics", "trim", "cli/a", "--keep", "2"); !strings.Contains(out, "removed 3 events") || !strings.Contains(out, "2 events (#4..#5)") {
		t.Fatalf("topics trim:\n%s", out)
	}
	var trim struct {
		Removed uint64 `json:"removed"`
		History uint64 `json:"history"`
	}
	if out := cliOK(t, h, keys, "admin", "topics", "trim", "--json", "--keep", "2", "cli/a"); json.Unmarshal([]byte(out), &trim) != nil || trim.Removed != 0 || trim.History != 2 {
		t.Fatalf("topics trim --json:\n%s", out)
	}
	if r := cli(t, h, keys, "admin", "topics", "trim", "cli/never", "--keep", "1"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("trim of an unknown topic: %+v", r)
	}
	// The trimmed events are gone for readers too, with a reset.
	if out := cliOK(t, h, keys, "tail", "-t", "cli/a", "--after", "0", "--max", "2"); !strings.Contains(out, "-- reset cli/a: events were trimmed") ||
		!strings.Contains(out, "cli/a #4 key=doc  {\"n\":4}") || !strings.Contains(out, "cli/a #5 key=doc  {\"n\":5}") {
		t.Fatalf("tail after the trim:\n%s", out)
	}

	// A webhook whose callback fails, asking for an hour's wait.
	var healthy atomic.Bool
	posts := make(chan string, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		if !healthy.Load() {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		posts <- string(b)
	}))
	defer cb.Close()
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"cli/hook"}, "hub.callback": {cb.URL}, "hub.verify": {"sync"}}
	if a := h.do(t, "POST", "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); a.Status != http.StatusNoContent {
		t.Fatalf("subscribe: %s", a)
	}
	var subs struct {
		Subscriptions []struct {
			ID       string `json:"id"`
			Callback string `json:"callback"`
		} `json:"subscriptions"`
	}
	if out := cliOK(t, h, keys, "admin", "subscriptions", "list", "--json"); json.Unmarshal([]byte(out), &subs) != nil || len(subs.Subscriptions) != 1 {
		t.Fatalf("subscriptions list --json:\n%s", out)
	}
	id := subs.Subscriptions[0].ID
	cliOK(t, h, keys, "publish", "-t", "cli/hook", `"ping"`)
	var show struct {
		Failures    int       `json:"failures"`
		NextAttempt time.Time `json:"next_attempt"`
		Lag         uint64    `json:"lag"`
	}
	for deadline := time.Now().Add(20 * time.Second); show.Failures == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no failed delivery within 20s")
		}
		out := cliOK(t, h, keys, "admin", "subscriptions", "show", id, "--json")
		if err := json.Unmarshal([]byte(out), &show); err != nil {
			t.Fatalf("show --json: %v\n%s", err, out)
		}
	}
	if show.Lag != 1 || time.Until(show.NextAttempt) < 30*time.Minute {
		t.Fatalf("after a 503 with Retry-After 3600: %+v", show)
	}
	if out := cliOK(t, h, keys, "admin", "subscriptions", "list"); !strings.Contains(out, id) || !strings.Contains(out, cb.URL) || !strings.Contains(out, "503") {
		t.Fatalf("subscriptions list:\n%s", out)
	}
	if out := cliOK(t, h, keys, "admin", "subscriptions", "show", id); !strings.Contains(out, "callback:") || !strings.Contains(out, "next attempt:") || !strings.Contains(out, "1 in a row") {
		t.Fatalf("subscriptions show:\n%s", out)
	}
	healthy.Store(true)
	if out := cliOK(t, h, keys, "admin", "subscriptions", "resume", id); !strings.Contains(out, "queued now") {
		t.Fatalf("subscriptions resume:\n%s", out)
	}
	select {
	case b := <-posts:
		if b != `"ping"` {
			t.Fatalf("delivered %q", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s of resume (the callback had asked for an hour)")
	}
	// Replay: the delivered event goes out again.
	if out := cliOK(t, h, keys, "admin", "subscriptions", "replay", id, "--backfill", "1"); !strings.Contains(out, "queued from") {
		t.Fatalf("subscriptions replay:\n%s", out)
	}
	select {
	case b := <-posts:
		if b != `"ping"` {
			t.Fatalf("replayed %q", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s of replay")
	}
	if r := cli(t, h, keys, "admin", "subscriptions", "replay", id); r.code != 2 || !strings.Contains(r.stderr, "--after CURSOR or --backfill N") {
		t.Fatalf("replay without a place: %+v", r)
	}
	if out := cliOK(t, h, keys, "admin", "subscriptions", "delete", id); out != "removed subscription "+id+"\n" {
		t.Fatalf("subscriptions delete: %q", out)
	}
	if r := cli(t, h, keys, "admin", "subscriptions", "show", id); r.code != 1 || !strings.Contains(r.stderr, "404 Not Found: no such subscription") {
		t.Fatalf("show after delete: %+v", r)
	}
	if out := cliOK(t, h, keys, "admin", "subscriptions", "list"); out != "no webhook subscriptions\n" {
		t.Fatalf("subscriptions list after delete: %q", out)
	}

	if out := cliOK(t, h, keys, "admin", "nodes"); !strings.Contains(out, "NODE") || !strings.Contains(out, "(answering)") {
		t.Fatalf("nodes:\n%s", out)
	}
	if out := cliOK(t, h, keys, "admin", "stats"); !strings.Contains(out, "published:") || !strings.Contains(out, "cli/a") {
		t.Fatalf("stats:\n%s", out)
	}
	if out := cliOK(t, h, keys, "upstream", "list"); out != "no upstreams\n" {
		t.Fatalf("upstream list: %q", out)
	}
	if r := cli(t, h, keys, "upstream", "remove", "nope", "--json"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("upstream remove of an unknown id: %+v", r)
	}
}

// TestCLITailResume: `tail --json` on a pattern prints, on every line, the
// cursor to resume after that event, and `--after` with it goes on exactly
// from there: nothing repeated, nothing missed.
func TestCLITailResume(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hubBinary, "tail", "-t", "cli/t/*", "--json", "--max", "2")
	cmd.Env = append(hubEnv(), "HUBBUB_URL="+h.URL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitMetric(t, `hubbub_connections{transport="sse"}`, 10*time.Second, func(v float64) bool { return v >= 1 })
	h.publish(t, `[{"topic":"cli/t/a","data":"a1"},{"topic":"cli/t/b","data":"b1"}]`)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tail: %v\n%s", err, errb.String())
	}
	type line struct {
		Topic  string `json:"topic"`
		Seq    uint64 `json:"seq"`
		Data   string `json:"data"`
		Cursor string `json:"cursor"`
	}
	parse := func(s string) []line {
		var ls []line
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			var v line
			if err := json.Unmarshal([]byte(l), &v); err != nil || !strings.HasPrefix(v.Cursor, "m.") {
				t.Fatalf("tail --json line %q: %v (want an m.… cursor)", l, err)
			}
			ls = append(ls, v)
		}
		return ls
	}
	first := parse(out.String())
	if len(first) != 2 || first[0].Data != "a1" || first[1].Data != "b1" {
		t.Fatalf("first tail printed %+v", first)
	}
	if !strings.Contains(errb.String(), "resume with --after "+first[1].Cursor) {
		t.Fatalf("tail's parting words: %q, want the last line's cursor %s", errb.String(), first[1].Cursor)
	}
	// Published while no one tails; resumed from the last line printed.
	h.publish(t, `[{"topic":"cli/t/b","data":"b2"},{"topic":"cli/t/a","data":"a2"},{"topic":"cli/t/c","data":"c1"}]`)
	r := cli(t, h, nil, "tail", "-t", "cli/t/*", "--json", "--max", "2", "--after", first[1].Cursor)
	if r.code != 0 {
		t.Fatalf("tail --after: %+v", r)
	}
	second := parse(r.stdout)
	// Catching up, each topic's history comes in its own order; across
	// topics any order is right.
	if len(second) != 2 || second[0].Data+second[1].Data != "a2b2" && second[0].Data+second[1].Data != "b2a2" {
		t.Fatalf("resumed tail printed %+v, want a2 and b2", second)
	}
	// And from the middle of that output: only what came after it.
	r = cli(t, h, nil, "tail", "-t", "cli/t/*", "--json", "--max", "1", "--after", second[0].Cursor)
	if got := parse(r.stdout); r.code != 0 || len(got) != 1 || got[0].Data != second[1].Data {
		t.Fatalf("tail --after the first resumed line: %+v, want %s (%s)", got, second[1].Data, r.stderr)
	}
}

// TestBenchWebhooks runs `hubbub bench --webhooks` against the real
// binary: every subscription gets every event, none twice, the report
// carries the flood comparison, and the bench's subscriptions are gone
// afterwards.
func TestBenchWebhooks(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--admin-key", "s3cret", "--allow-private-callbacks", "--websub-subscribe-rate", "0")
	out := cliOK(t, h, nil, "bench", "--webhooks", "12", "--hosts", "2", "--events", "25", "--publishers", "4",
		"--flood", "200ms", "--json", "--timeout", "50s")
	var rep struct {
		Deliveries, Duplicates, Posts int
		FloodPostsPerSecond           float64 `json:"flood_posts_per_second"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if rep.Deliveries != 12*25 || rep.Duplicates != 0 || rep.Posts < rep.Deliveries || rep.FloodPostsPerSecond <= 0 {
		t.Fatalf("bench report: %+v\n%s", rep, out)
	}
	out = cliOK(t, h, nil, "bench", "--webhooks", "1", "--batch", "10", "--events", "40", "--flood", "0", "--json", "--timeout", "50s")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Deliveries != 40 || rep.Posts >= 40 {
		t.Fatalf("batched bench: %v %+v\n%s", err, rep, out)
	}
	if out := cliOK(t, h, []string{"HUBBUB_ADMIN_KEY=s3cret"}, "admin", "subscriptions", "list"); out != "no webhook subscriptions\n" {
		t.Fatalf("the bench left subscriptions behind:\n%s", out)
	}
}

// TestBenchSubscribers runs `hubbub bench` with SSE and WebSocket
// subscribers, full and compact: every delivery arrives, and the compact
// shape reads fewer bytes per delivery.
func TestBenchSubscribers(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	perDelivery := map[string]float64{}
	for _, args := range [][]string{{"--transport", "sse"}, {"--transport", "sse", "--compact"}, {"--transport", "ws"}, {"--transport", "ws", "--compact"}} {
		out := cliOK(t, h, nil, append([]string{"bench", "--subscribers", "3", "--events", "20", "--publishers", "2", "--json", "--timeout", "50s"}, args...)...)
		var rep struct {
			Deliveries       int     `json:"deliveries"`
			BytesPerDelivery float64 `json:"bytes_per_delivery"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Deliveries != 60 || rep.BytesPerDelivery <= 0 {
			t.Fatalf("bench %v: %v %+v\n%s", args, err, rep, out)
		}
		perDelivery[strings.Join(args, " ")] = rep.BytesPerDelivery
	}
	// Subscribers spread over worker processes, some by WebSocket.
	out := cliOK(t, h, nil, "bench", "--subscribers", "5", "--procs", "2", "--transport", "ws", "--events", "10", "--json", "--timeout", "50s")
	var rep struct {
		Deliveries int `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Deliveries != 50 {
		t.Fatalf("bench --procs 2: %v %+v\n%s", err, rep, out)
	}
	t.Logf("bytes read per delivery: %v", perDelivery)
	if perDelivery["--transport sse --compact"] >= perDelivery["--transport sse"] || perDelivery["--transport ws --compact"] >= perDelivery["--transport ws"] {
		t.Errorf("compact is not smaller: %v", perDelivery)
	}
}
