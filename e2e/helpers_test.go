package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

	"github.com/hubbub/hubbub/client"
)

// hubBinary is the hubbub binary TestMain built.
var hubBinary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "hubbub-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	hubBinary = filepath.Join(dir, "hubbub")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", hubBinary, "./cmd/hubbub")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = ".." // the module root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n", strings.Join(args, " "), err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s (race=%v) in %v\n", hubBinary, raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// lockedBuf is an io.Writer safe for concurrent use that remembers
// everything written to it.
type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listenWriter is the hub's stderr: it keeps every byte and reports the
// address of the "hubbub listening" log line once.
type listenWriter struct {
	lockedBuf
	mu      sync.Mutex
	partial []byte
	addr    chan string
	sent    bool
}

var listenRE = regexp.MustCompile(`msg="hubbub listening".*?\baddr=(\S+)`)

func (w *listenWriter) Write(p []byte) (int, error) {
	_, _ = w.lockedBuf.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		if m := listenRE.FindSubmatch(line); m != nil {
			w.sent = true
			w.partial = nil
			w.addr <- strings.Trim(string(m[1]), `"`)
			break
		}
	}
	return len(p), nil
}

// hubProc is one running hubbub server.
type hubProc struct {
	t       testing.TB
	URL     string // http://127.0.0.1:PORT
	DataDir string
	cmd     *exec.Cmd
	stderr  *listenWriter
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// hubEnv is the environment for subprocesses: the test's, without any
// HUBBUB_* setting that would change what the flags say, and with the race
// detector's one-second sleep at exit turned off.
func hubEnv() []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "HUBBUB_"):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GORACE="+gorace)
}

// startHub starts `hubbub serve` on a free loopback port with its store in
// dataDir (a fresh temporary directory when ""), and waits up to 10 s for
// it to log that it is listening. The process is killed at the end of the
// test.
func startHub(t testing.TB, dataDir string, extraArgs ...string) *hubProc {
	t.Helper()
	return startHubEnv(t, dataDir, nil, extraArgs...)
}

// startHubEnv is startHub with HUBBUB_* settings (or any variable) in env,
// added to hubEnv's environment.
func startHubEnv(t testing.TB, dataDir string, env []string, extraArgs ...string) *hubProc {
	t.Helper()
	return startHubBinary(t, hubBinary, dataDir, env, extraArgs...)
}

// startHubBinary is startHubEnv with another hubbub binary than hubBinary.
func startHubBinary(t testing.TB, bin, dataDir string, env []string, extraArgs ...string) *hubProc {
	t.Helper()
	h := launchHubBinary(t, bin, dataDir, env, extraArgs...)
	h.waitListening(t, 10*time.Second)
	return h
}

// launchHub starts `hubbub serve` as startHub does, without waiting for it
// to listen (see waitListening).
func launchHub(t testing.TB, dataDir string, extraArgs ...string) *hubProc {
	t.Helper()
	return launchHubBinary(t, hubBinary, dataDir, nil, extraArgs...)
}

// launchHubBinary is launchHub with another binary and extra environment.
func launchHubBinary(t testing.TB, bin, dataDir string, env []string, extraArgs ...string) *hubProc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir}, extraArgs...)
	h := &hubProc{
		t: t, DataDir: dataDir,
		cmd:    exec.Command(bin, args...),
		stderr: &listenWriter{addr: make(chan string, 1)},
		done:   make(chan struct{}),
	}
	h.cmd.Env = append(hubEnv(), env...)
	h.cmd.Stdout = &h.stderr.lockedBuf
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start hubbub: %v", err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.Kill()
		if strings.Contains(h.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in hubbub")
		}
		if t.Failed() {
			t.Logf("hubbub %v stderr:\n%s", args, clipString(h.stderr.String(), 8000))
		}
	})
	return h
}

// waitListening waits up to d for the hub to log that it is listening,
// and sets h.URL.
func (h *hubProc) waitListening(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case addr := <-h.stderr.addr:
		h.URL = "http://" + addr
	case <-h.done:
		t.Fatalf("hubbub %v exited before listening (%v); stderr:\n%s", h.cmd.Args[1:], h.waitErr, h.stderr.String())
	case <-timer.C:
		t.Fatalf("hubbub %v did not log \"hubbub listening\" within %v; stderr:\n%s", h.cmd.Args[1:], d, h.stderr.String())
	}
}

// waitLog waits up to d for the hub's stderr to contain s.
func (h *hubProc) waitLog(t testing.TB, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(h.Stderr(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("hubbub did not log %q within %v; stderr:\n%s", s, d, clipString(h.Stderr(), 8000))
		}
		select {
		case <-h.done:
			if !strings.Contains(h.Stderr(), s) {
				t.Fatalf("hubbub exited (%v) without logging %q; stderr:\n%s", h.waitErr, s, clipString(h.Stderr(), 8000))
			}
		case <-time.After(20 * time.Millisecond): // polling the log, with a deadline
		}
	}
}

func clipString(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

// Stderr is everything the process wrote so far.
func (h *hubProc) Stderr() string { return h.stderr.String() }

// Kill sends SIGKILL and waits for the process to be gone.
func (h *hubProc) Kill() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Errorf("hubbub did not die within 10s of SIGKILL")
	}
}

// Stop sends SIGTERM and waits up to 10 s for the process to exit. It
// returns the exit code (-1 when the process did not exit in time; it is
// then killed).
func (h *hubProc) Stop() int {
	h.t.Helper()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.Kill()
		return -1
	}
	if h.waitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(h.waitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// httpc is for requests that answer at once; streams use their own
// contexts with deadlines.
var httpc = &http.Client{Timeout: 30 * time.Second}

// streamc has no overall timeout: streams end by their contexts.
var streamc = &http.Client{}

// wireEvent is an event as the server shows it in JSON.
type wireEvent struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Seq         uint64          `json:"seq"`
	Type        string          `json:"type"`
	Time        string          `json:"time"`
	Key         string          `json:"key"`
	Tags        []string        `json:"tags"`
	ContentType string          `json:"content_type"`
	Data        json.RawMessage `json:"data"`
	DataBase64  []byte          `json:"data_base64"`
}

type pubResult struct {
	Topic string `json:"topic"`
	ID    string `json:"id"`
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
	Time  string `json:"time"`
}

type pubResponse struct {
	Events []pubResult `json:"events"`
}

type resetJSON struct {
	Topic  string `json:"topic"`
	Reason string `json:"reason"`
	Cursor string `json:"cursor"`
}

type eventsResponse struct {
	Events []wireEvent `json:"events"`
	Cursor string      `json:"cursor"`
	Reset  *resetJSON  `json:"reset"`
}

// answer is a whole HTTP answer.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s: %s", a.Status, a.Header.Get("Content-Type"), clipString(string(a.Body), 500))
}

// do sends a request and reads the whole answer; it fails the test on a
// transport error.
func (h *hubProc) do(t testing.TB, method, path string, hdr http.Header, body []byte) answer {
	t.Helper()
	a, err := h.try(method, path, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func (h *hubProc) try(method, path string, hdr http.Header, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.URL+path, rd)
	if err != nil {
		return answer{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func ctHeader(ct string) http.Header { return http.Header{"Content-Type": {ct}} }

// publish posts a JSON body and returns the results; anything but 200 fails
// the test.
func (h *hubProc) publish(t testing.TB, body string) []pubResult {
	t.Helper()
	a := h.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(body))
	if a.Status != http.StatusOK {
		t.Fatalf("publish %s: %s", clipString(body, 200), a)
	}
	var pr pubResponse
	if err := json.Unmarshal(a.Body, &pr); err != nil {
		t.Fatalf("publish answer %q: %v", a.Body, err)
	}
	return pr.Events
}

// publishN publishes n events {"n":i} (i from 1) to topic, one request
// each, and returns the results.
func (h *hubProc) publishN(t testing.TB, topic string, n int) []pubResult {
	t.Helper()
	var out []pubResult
	for i := 1; i <= n; i++ {
		res := h.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, i))
		if len(res) != 1 {
			t.Fatalf("publish to %s: %d results, want 1", topic, len(res))
		}
		out = append(out, res...)
	}
	return out
}

// getEvents does GET /events?QUERY and decodes a JSON answer, failing the
// test on anything but 200.
func (h *hubProc) getEvents(t testing.TB, query string) (eventsResponse, answer) {
	t.Helper()
	a := h.do(t, http.MethodGet, "/events?"+query, nil, nil)
	if a.Status != http.StatusOK {
		t.Fatalf("GET /events?%s: %s", query, a)
	}
	var er eventsResponse
	if err := json.Unmarshal(a.Body, &er); err != nil {
		t.Fatalf("GET /events?%s: %v in %s", query, err, a)
	}
	return er, a
}

// retrieveAll pages through a topic's whole history with after= and
// count=1000.
func (h *hubProc) retrieveAll(t testing.TB, topic string) []wireEvent {
	t.Helper()
	var all []wireEvent
	cursor := "0"
	for range 10_000 {
		er, _ := h.getEvents(t, "topic="+url.QueryEscape(topic)+"&count=1000&after="+url.QueryEscape(cursor))
		all = append(all, er.Events...)
		if len(er.Events) == 0 {
			return all
		}
		if er.Cursor == cursor {
			t.Fatalf("retrieve %s after=%s: %d events but the cursor did not move", topic, cursor, len(er.Events))
		}
		cursor = er.Cursor
	}
	t.Fatalf("retrieve %s: more than 10,000 pages", topic)
	return nil
}

// metric returns the value of one series (e.g.
// `hubbub_connections{transport="poll"}`) from /metrics; absent is 0.
func (h *hubProc) metric(t testing.TB, series string) float64 {
	t.Helper()
	a := h.do(t, http.MethodGet, "/metrics", nil, nil)
	if a.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", a)
	}
	return metricValue(string(a.Body), series)
}

func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			return v
		}
	}
	return 0
}

// waitMetric polls /metrics until cond holds for the series' value, or
// fails the test after d.
func (h *hubProc) waitMetric(t testing.TB, series string, d time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	delay := 5 * time.Millisecond
	var v float64
	for time.Now().Before(deadline) {
		v = h.metric(t, series)
		if cond(v) {
			return v
		}
		time.Sleep(delay) // polling interval, not synchronisation
		delay = min(delay*2, 100*time.Millisecond)
	}
	t.Fatalf("metric %s is still %v after %v", series, v, d)
	return v
}

// sseItem is one thing read from an SSE stream.
type sseItem struct {
	ev  client.SSEEvent
	err error
}

// sseStream is an open SSE connection read by a goroutine.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	raw    *lockedBuf // every byte read, when recording
	ch     chan sseItem
	stop   chan struct{}
	ended  bool
	r      *client.SSEReader
}

// openSSE subscribes to GET /events?QUERY with Accept: text/event-stream
// and, when lastID is not "", Last-Event-ID. It fails the test unless the
// answer is 200. record keeps the raw bytes (see raw).
func (h *hubProc) openSSE(t testing.TB, query, lastID string, record bool) *sseStream {
	t.Helper()
	s, a := h.trySSE(t, query, lastID, record)
	if s == nil {
		t.Fatalf("SSE /events?%s (Last-Event-ID %q): %s", query, lastID, a)
	}
	return s
}

// trySSE is openSSE that returns the answer instead of failing when it is
// not 200.
func (h *hubProc) trySSE(t testing.TB, query, lastID string, record bool) (*sseStream, answer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/events?"+query, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := streamc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("SSE /events?%s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	s := &sseStream{t: t, resp: resp, cancel: cancel, ch: make(chan sseItem, 4096), stop: make(chan struct{})}
	var body io.Reader = resp.Body
	if record {
		s.raw = &lockedBuf{}
		body = io.TeeReader(resp.Body, s.raw)
	}
	s.r = client.NewSSEReader(body)
	go func() {
		for {
			ev, err := s.r.Next()
			select {
			case s.ch <- sseItem{ev, err}:
			case <-s.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(s.Close)
	return s, answer{Status: resp.StatusCode, Header: resp.Header}
}

// Close ends the connection.
func (s *sseStream) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, failing the test after d or when the
// stream ends.
func (s *sseStream) next(t testing.TB, d time.Duration) client.SSEEvent {
	t.Helper()
	ev, err := s.tryNext(d)
	if err != nil {
		t.Fatalf("SSE: %v", err)
	}
	return ev
}

var errTimeout = errors.New("timed out")

// tryNext returns the next event or the stream's error (errTimeout after
// d).
func (s *sseStream) tryNext(d time.Duration) (client.SSEEvent, error) {
	if s.ended {
		return client.SSEEvent{}, io.EOF
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case it := <-s.ch:
		if it.err != nil {
			s.ended = true
		}
		return it.ev, it.err
	case <-timer.C:
		return client.SSEEvent{}, fmt.Errorf("no event within %v: %w", d, errTimeout)
	}
}

// decodeData parses an SSE event's data as an event's JSON.
func decodeData(t testing.TB, ev client.SSEEvent) wireEvent {
	t.Helper()
	var w wireEvent
	if err := json.Unmarshal([]byte(ev.Data), &w); err != nil {
		t.Fatalf("SSE data %q is not event JSON: %v", ev.Data, err)
	}
	return w
}

// expectSeqs reads len(want) events from s and checks their topic and seqs
// in order.
func (s *sseStream) expectSeqs(t testing.TB, topic string, want ...uint64) []client.SSEEvent {
	t.Helper()
	var got []client.SSEEvent
	for _, seq := range want {
		ev := s.next(t, 10*time.Second)
		if ev.Event == "reset" {
			t.Fatalf("SSE: unexpected reset %s while waiting for %s seq %d", ev.Data, topic, seq)
		}
		w := decodeData(t, ev)
		if w.Topic != topic || w.Seq != seq {
			t.Fatalf("SSE: got %s seq %d (id %s), want %s seq %d", w.Topic, w.Seq, ev.ID, topic, seq)
		}
		got = append(got, ev)
	}
	return got
}

// lineStream reads an NDJSON answer line by line in a goroutine.
type lineStream struct {
	ch   chan sseItem // ev.Data holds the line
	stop chan struct{}
}

func newLineStream(t testing.TB, r io.Reader) *lineStream {
	ls := &lineStream{ch: make(chan sseItem, 1024), stop: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			select {
			case ls.ch <- sseItem{ev: client.SSEEvent{Data: sc.Text()}}:
			case <-ls.stop:
				return
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		select {
		case ls.ch <- sseItem{err: err}:
		case <-ls.stop:
		}
	}()
	t.Cleanup(func() { close(ls.stop) })
	return ls
}

func (ls *lineStream) next(t testing.TB, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case it := <-ls.ch:
		if it.err != nil {
			t.Fatalf("NDJSON stream ended: %v", it.err)
		}
		return it.ev.Data
	case <-timer.C:
		t.Fatalf("NDJSON: no line within %v", d)
	}
	return ""
}

// checkGapFree checks that events are seqs 1..len(events) of one topic, in
// order.
func checkGapFree(t testing.TB, topic string, events []wireEvent) {
	t.Helper()
	for i, e := range events {
		if e.Topic != topic || e.Seq != uint64(i+1) {
			t.Fatalf("%s: event %d is %s seq %d, want seq %d (seqs must start at 1 with no gaps)", topic, i, e.Topic, e.Seq, i+1)
		}
	}
}

func seqsOf(events []wireEvent) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
