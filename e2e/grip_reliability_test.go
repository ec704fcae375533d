package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gripSSE is one SSE client of the example origin's /sse/CHANNEL through a
// GRIP listener: the events it got, one string per event.
type gripSSE struct {
	events chan string
	cancel context.CancelFunc
}

// openGripSSE opens url and reads it in the background until the test
// ends.
func openGripSSE(t *testing.T, url string) *gripSSE {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return openGripSSEReq(t, req)
}

// next returns the next event's data line, failing after 15 s.
func (s *gripSSE) next(t *testing.T) string {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		for l := range strings.SplitSeq(ev, "\n") {
			if d, ok := strings.CutPrefix(l, "data: "); ok {
				return d
			}
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no event within 15s")
	}
	return ""
}

// publishSSEItem publishes an SSE event with id as the item id straight
// to a hub's POST /publish/ (the origin need not be up).
func publishSSEItem(t *testing.T, h *hubProc, channel, id string) {
	t.Helper()
	body := fmt.Sprintf(`{"items":[{"channel":%q,"id":%q,"formats":{"http-stream":{"content":"id: %s\nevent: message\ndata: %s\n\n"}}}]}`,
		channel, id, id, id)
	if a := h.do(t, "POST", "/publish/", ctHeader("application/json"), []byte(body)); a.Status != 200 || string(a.Body) != "Published\n" {
		t.Fatalf("publish %s: %s", id, a)
	}
}

// Held connections do not need the origin: while it is down, publishes
// reach them; once it is back, a client that names the last id it got
// resumes from the log.
func TestGripOriginDown(t *testing.T) {
	node := needGripOrigin(t)
	g := startGripHub(t, node, "")
	sse := openGripSSE(t, g.URL+"/sse/down")
	if d := sse.next(t); d != "{}" {
		t.Fatalf("opening event %q", d)
	}
	g.hub.waitMetric(t, `hubbub_connections{transport="grip-stream"}`, 10*time.Second, func(v float64) bool { return v == 1 })

	g.origin.stop()
	for _, id := range []string{"d1", "d2", "d3"} {
		publishSSEItem(t, g.hub, "down", id)
	}
	for _, want := range []string{"d1", "d2", "d3"} {
		if d := sse.next(t); d != want {
			t.Fatalf("got %q, want %q", d, want)
		}
	}
	// A new request cannot be served meanwhile.
	if resp, err := httpc.Get(g.URL + "/sse/down"); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("origin down: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	g.origin = startOrigin(t, node, g.origin.Port, g.hub.URL, "")
	g.send(t, "down", `{"kind":"sse","text":"d4","id":"d4"}`)
	if d := sse.next(t); d != "d4" {
		t.Fatalf("got %q, want d4", d)
	}
	again := openGripSSE(t, g.URL+"/sse/down?prev=d2")
	for _, want := range []string{"{}", "d3", "d4"} {
		if d := again.next(t); d != want {
			t.Fatalf("resumed after d2: got %q, want %q", d, want)
		}
	}
}

// Two nodes on Redis: a stream held by a node that is killed (-9)
// resumes on the other with the last id it got (EventSource's
// Last-Event-ID), with nothing lost or repeated.
func TestGripTwoNodesKill(t *testing.T) {
	node := needGripOrigin(t)
	_, prefix := requireRedis(t)
	store := "redis://" + sharedRedis() + "/0"
	a := startGripHub(t, node, "", "--store", store, "--redis-prefix", prefix, "--node-id", "grip-a")
	originURL := fmt.Sprintf("http://127.0.0.1:%d", a.origin.Port)
	b := startHub(t, "", "--store", store, "--redis-prefix", prefix, "--node-id", "grip-b",
		"--grip-listen", "127.0.0.1:0", "--grip-origin", originURL, "--grip-sig-key", gripSigKey)
	b.waitLog(t, "GRIP proxy listening", 10*time.Second)
	m := gripAddrRE.FindStringSubmatch(b.Stderr())
	if m == nil {
		t.Fatal("no grip_addr")
	}
	bURL := "http://" + strings.Trim(m[1], `"`)

	sse := openGripSSE(t, bURL+"/sse/two")
	if d := sse.next(t); d != "{}" {
		t.Fatalf("opening event %q", d)
	}
	b.waitMetric(t, `hubbub_connections{transport="grip-stream"}`, 10*time.Second, func(v float64) bool { return v == 1 })
	var got []string
	for i := 1; i <= 3; i++ { // published through the origin to node a, held on node b
		a.send(t, "two", fmt.Sprintf(`{"kind":"sse","text":"k%d","id":"k%d"}`, i, i))
		got = append(got, sse.next(t))
	}
	b.Kill()
	for i := 4; i <= 6; i++ {
		a.send(t, "two", fmt.Sprintf(`{"kind":"sse","text":"k%d","id":"k%d"}`, i, i))
	}
	req, _ := http.NewRequest("GET", a.URL+"/sse/two", nil)
	req.Header.Set("Last-Event-ID", got[len(got)-1])
	resumed := openGripSSEReq(t, req)
	if d := resumed.next(t); d != "{}" {
		t.Fatalf("opening event %q", d)
	}
	for range 3 {
		got = append(got, resumed.next(t))
	}
	a.send(t, "two", `{"kind":"sse","text":"k7","id":"k7"}`)
	got = append(got, resumed.next(t))
	if s := strings.Join(got, " "); s != "k1 k2 k3 k4 k5 k6 k7" {
		t.Fatalf("the client got %s", s)
	}
}

// openGripSSEReq is openGripSSE with a prepared request.
func openGripSSEReq(t *testing.T, req *http.Request) *gripSSE {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	resp, err := streamc.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("GET %s: %v %v", req.URL, err, resp)
	}
	s := &gripSSE{events: make(chan string, 256), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		br := bufio.NewReader(resp.Body)
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line != "\n" {
				ev.WriteString(line)
				continue
			}
			s.events <- ev.String()
			ev.Reset()
		}
	}()
	t.Cleanup(cancel)
	return s
}

// A graceful stop answers a held long-poll with the origin's answer and
// ends held streams.
func TestGripShutdown(t *testing.T) {
	node := needGripOrigin(t)
	g := startGripHub(t, node, "")
	sse := openGripSSE(t, g.URL+"/sse/stop")
	sse.next(t)
	answer := make(chan string, 1)
	go func() {
		resp, err := streamc.Get(g.URL + "/lp/stop?timeout=60")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		answer <- fmt.Sprint(resp.StatusCode, " ", b.String())
	}()
	g.hub.waitMetric(t, `hubbub_connections{transport="grip-response"}`, 10*time.Second, func(v float64) bool { return v == 1 })
	if code := g.hub.Stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	select {
	case s := <-answer:
		if s != "200 timeout\n" {
			t.Fatalf("the long-poll got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll was not answered")
	}
	select {
	case _, ok := <-sse.events:
		if ok {
			t.Fatal("an event after shutdown")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}
