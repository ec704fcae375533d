package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDurability: kill -9 in the middle of a publish load loses no
// acknowledged event.
func TestCrashDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, dir)
	const (
		publishers = 8
		topics     = 4
		maxTotal   = 20_000
	)
	type ack struct {
		topic string
		seq   uint64
		data  string
	}
	var (
		mu     sync.Mutex
		acks   []ack
		total  atomic.Int64
		failed atomic.Int64 // publishes in flight at the kill
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	enough := make(chan struct{})
	var enoughOnce sync.Once
	tr := &http.Transport{MaxIdleConnsPerHost: publishers}
	defer tr.CloseIdleConnections()
	pc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if total.Load() >= maxTotal {
					return
				}
				topic := fmt.Sprintf("crash/%d", (p+n)%topics)
				data := fmt.Sprintf(`{"p":%d,"n":%d}`, p, n)
				body := fmt.Sprintf(`{"topic":%q,"data":%s}`, topic, data)
				resp, err := pc.Post(h.URL+"/publish", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					return // the server is gone
				}
				var pr pubResponse
				err = json.NewDecoder(resp.Body).Decode(&pr)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || len(pr.Events) != 1 {
					failed.Add(1)
					return // cut off mid-answer: not acknowledged
				}
				mu.Lock()
				acks = append(acks, ack{pr.Events[0].Topic, pr.Events[0].Seq, data})
				mu.Unlock()
				if total.Add(1) >= 5000 {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		}()
	}
	// Kill in the middle of the load: after 5,000 acknowledgements or 1 s,
	// whichever comes first, with the publishers still going.
	select {
	case <-enough:
	case <-time.After(time.Second):
	}
	if total.Load() == 0 {
		close(stop)
		wg.Wait()
		t.Fatalf("no publish was acknowledged under load")
	}
	h.Kill()
	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		t.Fatalf("publishers did not stop within 15s of the kill")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d publishes acknowledged before kill -9; %d publishers saw their publish fail at the kill", len(acks), failed.Load())
	if failed.Load() == 0 {
		t.Errorf("no publish was in flight at the kill: the kill did not land in the middle of the load")
	}

	h2 := startHub(t, dir)
	byTopic := map[string]map[uint64]string{}
	for _, a := range acks {
		if byTopic[a.topic] == nil {
			byTopic[a.topic] = map[uint64]string{}
		}
		if prev, dup := byTopic[a.topic][a.seq]; dup {
			t.Errorf("%s seq %d acknowledged twice (%s and %s)", a.topic, a.seq, prev, a.data)
		}
		byTopic[a.topic][a.seq] = a.data
	}
	for i := range topics {
		topic := fmt.Sprintf("crash/%d", i)
		all := h2.retrieveAll(t, topic)
		checkGapFree(t, topic, all)
		stored := make(map[uint64]string, len(all))
		for _, e := range all {
			var b bytes.Buffer
			_ = json.Compact(&b, e.Data)
			stored[e.Seq] = b.String()
		}
		missing := 0
		for seq, data := range byTopic[topic] {
			got, ok := stored[seq]
			if !ok {
				missing++
				if missing <= 5 {
					t.Errorf("%s seq %d was acknowledged but is gone after kill -9 (held: %d events)", topic, seq, len(all))
				}
				continue
			}
			if got != data {
				t.Errorf("%s seq %d: data %s after restart, acknowledged %s", topic, seq, got, data)
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d acknowledged events lost", topic, missing)
		}
		r := h2.publish(t, fmt.Sprintf(`{"topic":%q,"data":"after restart"}`, topic))
		if r[0].Seq != uint64(len(all))+1 {
			t.Errorf("%s: first publish after restart has seq %d, want %d", topic, r[0].Seq, len(all)+1)
		}
	}
}

// TestSlowSubscriber: a subscriber that does not read is cut off without
// slowing a reading one, and resumes from history without gaps.
func TestSlowSubscriber(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--subscriber-buffer", "8")
	const (
		topic   = "slow/a"
		maxPubs = 4000
	)
	addr := strings.TrimPrefix(h.URL, "http://")

	// The slow one: a raw connection that sends its request and never
	// reads (until it has been cut off).
	conn, err := dialSlow(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /events?topic=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", topic, addr); err != nil {
		t.Fatal(err)
	}
	h.waitMetric(t, `hubbub_connections{transport="sse"}`, 10*time.Second, func(v float64) bool { return v == 1 })

	// The fast one reads everything, reconnecting with its last id if it is
	// cut off too (an EventSource would).
	fast := newCollector(h, topic)
	h.waitMetric(t, `hubbub_connections{transport="sse"}`, 10*time.Second, func(v float64) bool { return v == 2 })

	payload := strings.Repeat("x", 4096)
	cutoffs := func() float64 {
		text := string(h.do(t, http.MethodGet, "/metrics", nil, nil).Body)
		return metricValue(text, `hubbub_slow_disconnects_total{transport="sse"}`) + metricValue(text, "hubbub_broker_cutoffs_total")
	}
	published := 0
	body := fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, payload)
	deadline := time.Now().Add(40 * time.Second)
	for published < 2000 || (published < maxPubs && cutoffs() == 0) {
		if time.Now().After(deadline) {
			break
		}
		for range 100 {
			h.publish(t, body)
			published++
		}
	}
	var cut float64
	cutDeadline := time.Now().Add(10 * time.Second)
	for cut = cutoffs(); cut == 0 && time.Now().Before(cutDeadline); cut = cutoffs() {
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if cut == 0 {
		t.Errorf("after %d events of 4 KiB, the non-reading subscriber was not cut off (hubbub_slow_disconnects_total + hubbub_broker_cutoffs_total = 0)", published)
	}
	got := fast.waitFor(t, uint64(published), 30*time.Second)
	if !equalSeqs(got, seqRange(1, uint64(published))) {
		t.Errorf("the reading subscriber got %d events, want seqs 1..%d exactly once in order (first gap near %d)", len(got), published, firstGap(got))
	}
	t.Logf("published %d; reading subscriber reconnected %d times; cut-offs %v", published, fast.reconnects(), cut)
	fast.close()

	// The slow one now reads what it was sent before being cut, then
	// resumes from its last id.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	lastID, seen := readRawSSE(t, conn, topic)
	t.Logf("the slow subscriber had been sent %d whole events when it was cut off", len(seen))
	if len(seen) > 0 && !equalSeqs(seen, seqRange(1, uint64(len(seen)))) {
		t.Errorf("the slow subscriber's stream before the cut is not a gap-free prefix: first gap near %d", firstGap(seen))
	}
	if len(seen) >= published {
		t.Errorf("the slow subscriber got all %d events: it was never cut off", len(seen))
	}
	from := uint64(len(seen)) + 1
	s := h.openSSE(t, "topic="+topic, lastID, false)
	for want := from; want <= uint64(published); want++ {
		ev := s.next(t, 10*time.Second)
		w := decodeData(t, ev)
		if ev.Event == "reset" || w.Seq != want {
			t.Fatalf("resuming after the cut-off from %q: got %s %s seq %d, want seq %d", lastID, ev.Event, w.Topic, w.Seq, want)
		}
	}
}

func firstGap(s []uint64) int {
	for i, v := range s {
		if v != uint64(i+1) {
			return i
		}
	}
	return len(s)
}

// TestCLI: publish, tail, version and serve --help.
func TestCLI(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	run := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, hubBinary, args...)
		cmd.Env = hubEnv()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return out.String(), errb.String(), code
	}

	out, errOut, code := run("publish", "--json", "-t", "cli/a", "--server", h.URL, `{"a":1}`)
	if code != 0 {
		t.Fatalf("hubbub publish: exit %d: %s%s", code, out, errOut)
	}
	var pr pubResponse
	if err := json.Unmarshal([]byte(out), &pr); err != nil || len(pr.Events) != 1 || pr.Events[0].Seq != 1 || pr.Events[0].Topic != "cli/a" {
		t.Errorf("hubbub publish printed %q (%v), want a result with seq 1", out, err)
	}
	if ev := h.retrieveAll(t, "cli/a"); len(ev) != 1 || string(ev[0].Data) != `{"a":1}` {
		t.Errorf("cli/a after hubbub publish: %+v", ev)
	}

	// tail: started first, then two publishes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tail := exec.CommandContext(ctx, hubBinary, "tail", "--json", "-t", "cli/tail", "--server", h.URL, "--max", "2")
	tail.Env = hubEnv()
	var tailOut, tailErr lockedBuf
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	tailDone := make(chan error, 1)
	go func() { tailDone <- tail.Wait() }()
	h.waitMetric(t, `hubbub_connections{transport="sse"}`, 10*time.Second, func(v float64) bool { return v >= 1 })
	h.publish(t, `{"topic":"cli/tail","data":{"n":1}}`)
	h.publish(t, `{"topic":"cli/tail","type":"note","data":{"n":2}}`)
	select {
	case err := <-tailDone:
		if err != nil {
			t.Errorf("hubbub tail --max 2: %v; stderr %s", err, tailErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("hubbub tail --max 2 did not exit within 20s of two publishes; stdout %q stderr %q", tailOut.String(), tailErr.String())
	}
	lines := strings.Split(strings.TrimSpace(tailOut.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("hubbub tail printed %d lines, want 2: %q", len(lines), tailOut.String())
	}
	for i, line := range lines {
		var w wireEvent
		if err := json.Unmarshal([]byte(line), &w); err != nil || w.Topic != "cli/tail" || w.Seq != uint64(i+1) {
			t.Errorf("hubbub tail line %d: %q (%v), want event JSON of cli/tail seq %d", i, line, err, i+1)
		}
	}

	if out, errOut, code := run("version"); code != 0 || !strings.Contains(out+errOut, "hubbub") {
		t.Errorf("hubbub version: exit %d, output %q %q", code, out, errOut)
	}
	out, errOut, code = run("serve", "--help")
	if code != 0 || !strings.Contains(out+errOut, "HUBBUB_LISTEN") {
		t.Errorf("hubbub serve --help: exit %d, output mentions HUBBUB_LISTEN: %v\n%s%s", code, strings.Contains(out+errOut, "HUBBUB_LISTEN"), out, errOut)
	}
	for _, c := range [][]string{{"publish", "--help"}, {"tail", "--help"}} {
		if _, _, code := run(c...); code != 0 {
			t.Errorf("hubbub %s: exit %d, want 0", strings.Join(c, " "), code)
		}
	}
	if _, _, code := run("bogus"); code == 0 {
		t.Errorf("hubbub bogus: exit 0, want non-zero")
	}
}

// TestGracefulShutdown: SIGTERM with an open SSE stream exits 0 within
// 10 s and ends the stream.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	s := h.openSSE(t, "topic=graceful/a", "", false)
	h.publish(t, `{"topic":"graceful/a","data":1}`)
	s.expectSeqs(t, "graceful/a", 1)
	start := time.Now()
	code := h.Stop()
	el := time.Since(start)
	if code != 0 {
		t.Errorf("SIGTERM with an open SSE stream: exit code %d after %v, want 0 within 10s", code, el)
	}
	if _, err := s.tryNext(5 * time.Second); err == nil || strings.Contains(err.Error(), errTimeout.Error()) {
		t.Errorf("the SSE stream did not end at shutdown: %v", err)
	}
	t.Logf("shutdown took %v", el)
	// The data directory opens again.
	h2 := startHub(t, h.DataDir)
	if r := h2.publish(t, `{"topic":"graceful/a","data":2}`); r[0].Seq != 2 {
		t.Errorf("after a graceful restart: seq %d, want 2", r[0].Seq)
	}
}
