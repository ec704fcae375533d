package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WebSocket-over-HTTP through the GRIP listener, black box: the example
// origin (e2e/grip, Express with @fanoutio/serve-grip; its chat is
// routes/wschat.js, publishing with @fanoutio/grip) behind the real hubbub
// binary, two real WebSocket clients chatting. The same origin behind
// Debian's pushpin must give the clients the same messages; that
// comparison skips, loudly, when pushpin is not installed, unless
// HUBBUB_REQUIRE_PUSHPIN=1.

func TestGripWSChat(t *testing.T) {
	node := needGripOrigin(t)
	hb := startGripHub(t, node, "")
	got := gwsChat(t, wsURL(hb.URL), wsURL(hb.URL), func() {
		hb.hub.waitMetric(t, `hubbub_connections{transport="grip-ws"}`, 10*time.Second, func(v float64) bool { return v == 2 })
	})
	if want := gwsWantTranscript(); got != want {
		t.Fatalf("hubbub's chat transcript:\n%s\nwant:\n%s", got, want)
	}
	hb.hub.waitMetric(t, `hubbub_connections{transport="grip-ws"}`, 10*time.Second, func(v float64) bool { return v == 0 })
	if n := hb.hub.metric(t, `hubbub_events_delivered_total{transport="grip-ws"}`); n < 4 {
		t.Fatalf("grip-ws delivered %v events, want the 4 chat lines at least", n)
	}
	t.Run("pushpin", func(t *testing.T) {
		pp := startPushpin(t, node)
		if gotPP := gwsChat(t, wsURL(pp.URL), wsURL(pp.URL), nil); gotPP != got {
			t.Fatalf("behind pushpin the clients saw:\n%s\nbehind hubbub:\n%s", gotPP, got)
		}
	})
}

// TestGripWSTwoNodes chats across two hubbub nodes sharing Redis: alice on
// one node's GRIP listener, bob on the other's, the origin publishing to
// the first. Channel subscriptions are hub subscriptions, so bob's node
// gets the lines through Redis like any subscriber.
func TestGripWSTwoNodes(t *testing.T) {
	node := needGripOrigin(t)
	_, prefix := requireRedis(t)
	store := "redis://" + sharedRedis() + "/0"
	originPort := freePort(t)
	var hubs []*hubProc
	var grips []string
	for i := range 2 {
		h := startHub(t, "", "--store", store, "--redis-prefix", prefix, "--node-id", fmt.Sprintf("grip-%d", i),
			"--grip-listen", "127.0.0.1:0", "--grip-origin", fmt.Sprintf("http://127.0.0.1:%d", originPort), "--grip-sig-key", gripSigKey)
		h.waitLog(t, "GRIP proxy listening", 10*time.Second)
		m := gripAddrRE.FindStringSubmatch(h.Stderr())
		if m == nil {
			t.Fatalf("no grip_addr in the log:\n%s", h.Stderr())
		}
		hubs = append(hubs, h)
		grips = append(grips, "ws://"+strings.Trim(m[1], `"`))
	}
	startOrigin(t, node, originPort, hubs[0].URL, "")
	got := gwsChat(t, grips[0], grips[1], nil)
	if want := gwsWantTranscript(); got != want {
		t.Fatalf("transcript across two nodes:\n%s\nwant:\n%s", got, want)
	}
	if n := hubs[1].metric(t, `hubbub_events_delivered_total{transport="grip-ws"}`); n < 2 {
		t.Fatalf("the second node delivered %v events to GRIP WebSockets, want bob's chat lines", n)
	}
}

// wsURL is the ws:// address of an http:// one.
func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// gwsWantTranscript is what the chat's two clients see, by the protocol
// in routes/wschat.js.
func gwsWantTranscript() string {
	return strings.Join([]string{
		`alice < {"type":"welcome","user":"alice"}`,
		`alice < {"type":"chat","from":"alice","text":"hi bob"}`,
		`alice < {"type":"chat","from":"bob","text":"hi alice"}`,
		`alice closed 1000`,
		`bob < {"type":"welcome","user":"bob"}`,
		`bob < {"type":"chat","from":"alice","text":"hi bob"}`,
		`bob < {"type":"chat","from":"bob","text":"hi alice"}`,
		`bob < {"type":"bye","user":"bob"}`,
		`bob closed 4000`,
	}, "\n")
}

// gwsChat runs the chat scenario, alice connecting to aliceBase
// (ws://HOST:PORT) and bob to bobBase, and returns what each client saw,
// alice's lines then bob's. bothIn, when set, is called once both are
// connected.
func gwsChat(t *testing.T, aliceBase, bobBase string, bothIn func()) string {
	t.Helper()
	alice := newGWSClient(t, aliceBase+"/wschat?name=alice", "alice")
	alice.expect(t, 1) // welcome: alice is subscribed
	bob := newGWSClient(t, bobBase+"/wschat?name=bob", "bob")
	bob.expect(t, 1)
	if bothIn != nil {
		bothIn()
	}
	alice.send(t, "hi bob")
	alice.expect(t, 1)
	bob.expect(t, 1)
	bob.send(t, "hi alice")
	bob.expect(t, 1)
	alice.expect(t, 1)
	bob.send(t, "/bye")
	bob.expect(t, 1)
	bob.expectClose(t)
	_ = alice.c.Close(websocket.StatusNormalClosure, "")
	alice.lines = append(alice.lines, "alice closed 1000")
	return strings.Join(append(alice.lines, bob.lines...), "\n")
}

type gwsClient struct {
	name  string
	c     *websocket.Conn
	lines []string
}

// newGWSClient connects name to url.
func newGWSClient(t *testing.T, url, name string) *gwsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("%s: dial %s: %v (status %d)", name, url, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &gwsClient{name: name, c: c}
}

func (g *gwsClient) send(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("%s: send: %v", g.name, err)
	}
}

// expect reads n messages into the transcript.
func (g *gwsClient) expect(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range n {
		typ, b, err := g.c.Read(ctx)
		if err != nil {
			t.Fatalf("%s: read after %q: %v", g.name, g.lines, err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("%s: a binary message %q", g.name, b)
		}
		g.lines = append(g.lines, g.name+" < "+string(b))
	}
}

// expectClose reads until the server closes and records the code.
func (g *gwsClient) expectClose(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := g.c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: want a close, got %q %v", g.name, b, err)
	}
	g.lines = append(g.lines, fmt.Sprintf("%s closed %d", g.name, ce.Code))
}

// TestGripWSReadmeOrigin runs the README's WebSocket-over-HTTP origin
// behind hubbub: two clients in the chat room, a line from one reaches
// both.
func TestGripWSReadmeOrigin(t *testing.T) {
	_, _, addr := startReadmeGripOrigin(t, "<!-- tested: e2e/gripws_test.go readme websocket origin -->")
	base := "ws://" + addr
	var clients []*gwsClient
	for _, name := range []string{"ann", "ben"} {
		c := newGWSClient(t, base+"/chat", name)
		c.expect(t, 1) // welcome: subscribed
		clients = append(clients, c)
	}
	clients[0].send(t, "hello room")
	for _, c := range clients {
		c.expect(t, 1)
	}
	want := "ann < welcome\nann < hello room\nben < welcome\nben < hello room"
	if got := strings.Join(append(clients[0].lines, clients[1].lines...), "\n"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
