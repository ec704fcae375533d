package grip_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/broker"
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
