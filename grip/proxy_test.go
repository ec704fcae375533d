package grip_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/grip"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// testProxy is a GRIP proxy over a real hub (embedded store) in front of
// an httptest origin, and a server for POST /publish/.
type testProxy struct {
	hub    *hub.Hub
	proxy  *grip.Proxy
	srv    *httptest.Server // the GRIP listener
	pubSrv *httptest.Server // POST /publish/
}

func newTestProxy(t *testing.T, origin http.Handler, mod func(*grip.Config)) testProxy {
	t.Helper()
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{OnCommit: b.Publish})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(st, b, hub.Options{})
	org := httptest.NewServer(origin)
	pol, err := access.New(context.Background(), access.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := grip.Config{Origin: org.URL, SigKey: testKey, Hub: h, Access: pol}
	if mod != nil {
		mod(&cfg)
	}
	p, err := grip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	pub := httptest.NewServer(http.HandlerFunc(p.Publish))
	t.Cleanup(func() { srv.Close(); pub.Close(); org.Close(); _ = st.Close() })
	return testProxy{hub: h, proxy: p, srv: srv, pubSrv: pub}
}

// publish posts a GRIP publish body and fails the test unless it is
// accepted.
func (tp testProxy) publish(t *testing.T, body string) {
	t.Helper()
	resp, err := http.Post(tp.pubSrv.URL+"/publish/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
}

// waitHeld waits until the proxy holds n connections.
func (tp testProxy) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tp.proxy.Held() != n {
		if time.Now().After(deadline) {
			t.Fatalf("held %d connections, want %d", tp.proxy.Held(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronising on time
	}
}

func TestPlainPassThrough(t *testing.T) {
	var sawSig, sawForged, sawXFF, sawHost string
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawSig = r.Header.Get("Grip-Sig")
		sawForged = r.Header.Get("Grip-Hold")
		sawXFF = r.Header.Get("X-Forwarded-For")
		sawHost = r.Host
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Grip-Secret", "never shown")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "body of "+r.URL.RequestURI())
	}), nil)
	req, _ := http.NewRequest("GET", tp.srv.URL+"/a/b?c=d", nil)
	req.Header.Set("Grip-Hold", "stream")
	req.Host = "example.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(b) != "body of /a/b?c=d" || resp.Header.Get("X-Origin") != "yes" || resp.Header.Get("Grip-Secret") != "" {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if err := grip.VerifySig(sawSig, testKey, time.Now()); err != nil {
		t.Errorf("origin saw Grip-Sig %q: %v", sawSig, err)
	}
	if sawForged != "" || sawXFF != "127.0.0.1" || sawHost != "example.test" {
		t.Errorf("origin saw Grip-Hold %q, X-Forwarded-For %q, Host %q", sawForged, sawXFF, sawHost)
	}
}

func TestResponseHold(t *testing.T) {
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "lp")
		w.Header().Set("Grip-Timeout", "20")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "timeout\n")
	}), nil)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(tp.srv.URL + "/poll")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- resp.Status + " " + resp.Header.Get("X-A") + " " + string(b)
	}()
	tp.waitHeld(t, 1)
	tp.publish(t, `{"items":[{"channel":"lp","id":"1","formats":{"http-response":{"code":201,"headers":{"X-A":"b"},"body":"hello\n"}}}]}`)
	select {
	case s := <-got:
		if s != "201 Created b hello\n" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
}

func TestStreamHold(t *testing.T) {
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "st")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "start\n")
	}), nil)
	resp, err := http.Get(tp.srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "start\n" {
		t.Fatalf("first line %q", line)
	}
	tp.waitHeld(t, 1)
	tp.publish(t, `{"items":[{"channel":"st","formats":{"http-stream":{"content":"one\n"}}}]}`)
	if line, _ := br.ReadString('\n'); line != "one\n" {
		t.Fatalf("line %q", line)
	}
	tp.publish(t, `{"items":[{"channel":"st","formats":{"http-stream":{"action":"close"}}}]}`)
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q %v", rest, err)
	}
}

// origin answers every request with the headers given and body.
func origin(hdr map[string]string, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		io.WriteString(w, body)
	})
}

// get starts a GET through the proxy and returns a channel of its whole
// answer as "STATUS BODY".
func (tp testProxy) get(t *testing.T, path string) <-chan string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(tp.srv.URL + path)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- strconv.Itoa(resp.StatusCode) + " " + string(b)
	}()
	return got
}

func wait(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
	}
	return ""
}

func TestKeepAlive(t *testing.T) {
	tp := newTestProxy(t, origin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "ka",
		"Grip-Keep-Alive": `ka\n; format=cstring; timeout=1`}, "start\n"), nil)
	resp, err := http.Get(tp.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"start\n", "ka\n", "ka\n"} {
		if line, err := br.ReadString('\n'); line != want {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
}

func TestMaxHeld(t *testing.T) {
	tp := newTestProxy(t, origin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "m"}, "start\n"),
		func(c *grip.Config) { c.MaxHeld = 1 })
	resp, err := http.Get(tp.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp.waitHeld(t, 1)
	if s := wait(t, tp.get(t, "/")); !strings.HasPrefix(s, "503 too many held connections (at most 1)") {
		t.Fatalf("got %q", s)
	}
}

// publishItems publishes http-response and http-stream items with ids
// i1..in to channel.
func (tp testProxy) publishItems(t *testing.T, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		tp.publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"i%d","formats":{"http-response":{"body":"r%d"},"http-stream":{"content":"s%d\n"}}}]}`,
			channel, i, i, i))
	}
}

// Reliable by default: a prev-id older than the channel's latest item is
// filled from the log.
func TestPrevIDFromLog(t *testing.T) {
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := "rel"
		if p := r.URL.Query().Get("prev"); p != "" {
			ch += "; prev-id=" + p
		}
		w.Header().Set("Grip-Hold", r.URL.Query().Get("hold"))
		w.Header().Set("Grip-Channel", ch)
		io.WriteString(w, "origin\n")
	}), nil)
	tp.publishItems(t, "rel", 1, 3)
	if s := wait(t, tp.get(t, "/?hold=response&prev=i1")); s != "200 r2" {
		t.Fatalf("long-poll after i1: %q", s)
	}
	// The latest item: held until the next.
	got := tp.get(t, "/?hold=response&prev=i3")
	tp.waitHeld(t, 1)
	tp.publishItems(t, "rel", 4, 4)
	if s := wait(t, got); s != "200 r4" {
		t.Fatalf("long-poll after i3: %q", s)
	}
	// A stream after i2 gets i3, i4 and then live items.
	resp, err := http.Get(tp.srv.URL + "/?hold=stream&prev=i2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i, want := range []string{"origin\n", "s3\n", "s4\n", "s5\n"} {
		if i == 3 {
			tp.publishItems(t, "rel", 5, 5)
		}
		if line, err := br.ReadString('\n'); line != want {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
	// prev-id may be a hubbub event id.
	if s := wait(t, tp.get(t, "/?hold=response&prev="+tp.position(t, "rel", 4))); s != "200 r5" {
		t.Fatalf("long-poll after the event id of i4: %q", s)
	}
}

// position is the event id of the n-th event of topic.
func (tp testProxy) position(t *testing.T, topic string, n int) string {
	t.Helper()
	res, err := tp.hub.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{topic}, After: true, Count: n})
	if err != nil || len(res.Events) != n {
		t.Fatalf("retrieve: %v %d", err, len(res.Events))
	}
	return res.Events[n-1].Position().String()
}

// An ordinary hubbub event reaches held connections with its data as the
// body.
func TestOrdinaryEvent(t *testing.T) {
	tp := newTestProxy(t, origin(map[string]string{"Grip-Hold": "response", "Grip-Channel": "plain"}, "timeout"), nil)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(tp.srv.URL + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- resp.Header.Get("Content-Type") + " " + string(b)
	}()
	tp.waitHeld(t, 1)
	if _, err := tp.hub.Publish(context.Background(), []event.Draft{{Topics: []string{"plain"}, Data: []byte(`{"n":1}`)}}); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, got); s != `application/json {"n":1}` {
		t.Fatalf("got %q", s)
	}
}

// A Grip-Link with a timeout on a held stream: the next part is fetched
// when it passes and appended; without a hold it ends the stream.
func TestStreamNextLink(t *testing.T) {
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			io.WriteString(w, "part 2\n")
			return
		}
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "nl")
		w.Header().Set("Grip-Link", "</next>; rel=next; timeout=1")
		io.WriteString(w, "part 1\n")
	}), nil)
	if s := wait(t, tp.get(t, "/")); s != "200 part 1\npart 2\n" {
		t.Fatalf("got %q", s)
	}
}

func TestOriginErrors(t *testing.T) {
	release := make(chan struct{})
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad":
			w.Header().Set("Grip-Hold", "forever")
			w.Header().Set("Grip-Channel", "x")
		case "/big":
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Channel", "x")
			io.WriteString(w, strings.Repeat("x", 200))
		case "/slow":
			<-release
		}
	}), func(c *grip.Config) { c.MaxOriginBody = 100; c.OriginTimeout = 200 * time.Millisecond })
	defer close(release)
	for path, want := range map[string]string{
		"/bad":  "502 the origin's GRIP instructions are invalid\n",
		"/big":  "502 the origin's answer is too large to hold\n",
		"/slow": "504 the origin did not answer in time\n",
	} {
		if s := wait(t, tp.get(t, path)); s != want {
			t.Errorf("%s: got %q, want %q", path, s, want)
		}
	}
	if tp.proxy.Held() != 0 {
		t.Errorf("%d held after errors", tp.proxy.Held())
	}
}

func TestRoutes(t *testing.T) {
	api := httptest.NewServer(origin(nil, "api"))
	defer api.Close()
	apiV2 := httptest.NewServer(origin(nil, "api v2"))
	defer apiV2.Close()
	tp := newTestProxy(t, origin(nil, "default"), func(c *grip.Config) {
		c.Routes = []string{"/api/=" + api.URL, "/api/v2/=" + apiV2.URL}
	})
	for path, want := range map[string]string{"/": "200 default", "/api/x": "200 api", "/api/v2/x": "200 api v2", "/apix": "200 default"} {
		if s := wait(t, tp.get(t, path)); s != want {
			t.Errorf("%s: got %q, want %q", path, s, want)
		}
	}
	if _, err := grip.New(grip.Config{Hub: tp.hub, Routes: []string{"api=http://x"}}); err == nil {
		t.Error("a route without a leading / was accepted")
	}
	noDefault := newTestProxy(t, origin(nil, ""), func(c *grip.Config) { c.Origin = ""; c.Routes = []string{"/a/=" + api.URL} })
	if s := wait(t, noDefault.get(t, "/b")); s != "502 no origin serves this path\n" {
		t.Errorf("no route: %q", s)
	}
}

func TestPublishAccess(t *testing.T) {
	pol, err := access.New(context.Background(), access.Options{PublishKeys: []string{"pub-key"}})
	if err != nil {
		t.Fatal(err)
	}
	limited := false
	tp := newTestProxy(t, origin(nil, ""), func(c *grip.Config) {
		c.Access = pol
		c.MaxPublishBody = 1000
		c.AllowPublish = func(*http.Request, access.Identity) (time.Duration, bool) { return 2 * time.Second, !limited }
	})
	body := `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`
	post := func(method, auth, body string) string {
		req, _ := http.NewRequest(method, tp.pubSrv.URL+"/publish/", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(b))
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pub-key"))
	for _, tc := range []struct{ name, method, auth, body, want string }{
		{"no credentials", "POST", "", body, "401"},
		{"wrong key", "POST", "Bearer nope", body, "401"},
		{"bearer key", "POST", "Bearer pub-key", body, "200 Published"},
		{"basic with the key as password", "POST", basic, body, "200 Published"},
		{"GET", "GET", "Bearer pub-key", "", "405"},
		{"bad JSON", "POST", "Bearer pub-key", "{", "400"},
		{"too large", "POST", "Bearer pub-key", strings.Repeat(" ", 1001), "413"},
	} {
		if got := post(tc.method, tc.auth, tc.body); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	limited = true
	if got := post("POST", "Bearer pub-key", body); !strings.HasPrefix(got, "429 publish rate limit: try again in 2s") {
		t.Errorf("rate limited: %q", got)
	}
	// The items are in the channel's log.
	res, err := tp.hub.Retrieve(context.Background(), hub.RetrieveRequest{Topics: []string{"c"}, Count: 10})
	if err != nil || len(res.Events) != 2 || res.Events[0].ContentType != grip.ItemContentType {
		t.Fatalf("log: %v %+v", err, res.Events)
	}
}

// A close in the log before the hold began does not end a stream that
// resumes from before it (it would close every reconnection at once);
// a close published while it is held does.
func TestReplayedClose(t *testing.T) {
	tp := newTestProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "rc; prev-id="+r.URL.Query().Get("prev"))
		io.WriteString(w, "origin\n")
	}), nil)
	tp.publishItems(t, "rc", 1, 2)
	tp.publish(t, `{"items":[{"channel":"rc","formats":{"http-stream":{"action":"close"}}}]}`)
	resp, err := http.Get(tp.srv.URL + "/?prev=i1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i, want := range []string{"origin\n", "s2\n", "s3\n"} {
		if i == 2 {
			tp.publishItems(t, "rc", 3, 3)
		}
		if line, err := br.ReadString('\n'); line != want {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
	tp.publish(t, `{"items":[{"channel":"rc","formats":{"http-stream":{"action":"close"}}}]}`)
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after a live close: %q %v", rest, err)
	}
}

// An origin may give its instructions as an application/grip-instruct
// body; its "response" is what the client gets.
func TestInstructBody(t *testing.T) {
	tp := newTestProxy(t, origin(map[string]string{"Content-Type": "application/grip-instruct"},
		`{"hold":{"mode":"response","channels":[{"name":"ib"}],"timeout":30},"response":{"code":202,"headers":{"Content-Type":"text/plain","X-I":"y"},"body":"timeout\n"}}`), nil)
	got := tp.get(t, "/")
	tp.waitHeld(t, 1)
	tp.publish(t, `{"items":[{"channel":"ib","formats":{"http-response":{"body":"news\n"}}}]}`)
	if s := wait(t, got); s != "200 news\n" {
		t.Fatalf("got %q", s)
	}
	bad := newTestProxy(t, origin(map[string]string{"Content-Type": "application/grip-instruct"}, `{"hold":{"mode":"x"}}`), nil)
	if s := wait(t, bad.get(t, "/")); s != "502 the origin's GRIP instructions are invalid\n" {
		t.Fatalf("bad instruct: %q", s)
	}
}
