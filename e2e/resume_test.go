package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/internal/redistest"
)

// Issue 12, item 1: a pattern subscriber that resumes with its cursor gets
// everything published while it was away to every matching topic (one it
// knew, one created meanwhile, an older one quiet during its connection),
// exactly once and in order per topic, over every live transport, on the
// embedded store, across a kill -9, and on Redis across two nodes.

// resumeCase is that scenario in one namespace (its topics are NS/...,
// the pattern NS/**).
type resumeCase struct {
	ns, transport string
	cursor        string
	// slack: the store's watermark may lag (Redis Cluster allows for
	// clock skew), so events of NS/old from just before the first
	// subscription may come too (never a gap, never twice).
	slack   bool
	last    map[string]uint64 // per topic, the last seq received (or not wanted)
	oldSeen bool              // an event of NS/old came
}

// take checks one item against what came before: the next seq of its
// topic, no reset.
func (rc *resumeCase) take(t *testing.T, it patItem) {
	t.Helper()
	switch {
	case it.reset != nil:
		t.Fatalf("%s: unexpected %v", rc.transport, it)
	case !strings.HasPrefix(it.topic, rc.ns+"/"):
		t.Fatalf("%s: %v does not match %s/**", rc.transport, it, rc.ns)
	case rc.slack && it.topic == rc.ns+"/old" && !rc.oldSeen && it.seq <= 3:
		// from before the subscription (see slack)
	case it.seq != rc.last[it.topic]+1:
		t.Fatalf("%s: %v after seq %d of that topic (a gap or a repeat)", rc.transport, it, rc.last[it.topic])
	}
	rc.last[it.topic] = it.seq
	rc.oldSeen = rc.oldSeen || it.topic == rc.ns+"/old"
}

// takeUntil takes items until each topic of want has reached its seq, and
// fails on anything else.
func (rc *resumeCase) takeUntil(t *testing.T, c *patConn, want map[string]uint64) {
	t.Helper()
	for {
		done := true
		for topic, seq := range want {
			if rc.last[topic] < seq {
				done = false
			}
		}
		if done {
			break
		}
		it, err := c.tryNext(20 * time.Second)
		if err != nil {
			t.Fatalf("%s: have %v, want %v: %v", rc.transport, rc.last, want, err)
		}
		rc.take(t, it)
	}
	for topic, seq := range rc.last {
		if w, ok := want[topic]; (!ok && topic != rc.ns+"/old") || (ok && seq != w) {
			t.Fatalf("%s: have %v, want %v", rc.transport, rc.last, want)
		}
	}
}

// before subscribes fresh at node, checks the live events and leaves,
// keeping the cursor. Events published to an old topic before the
// subscription began are not wanted.
func (rc *resumeCase) before(t *testing.T, node *hubProc) {
	t.Helper()
	node.publishN(t, rc.ns+"/old", 3)
	rc.last = map[string]uint64{rc.ns + "/old": 3} // not wanted
	c := dialPattern(t, rc.transport, node.URL, rc.ns+"/**", "")
	node.publishN(t, rc.ns+"/a", 2)
	node.publishN(t, "not-"+rc.ns+"/x", 1)
	rc.takeUntil(t, c, map[string]uint64{rc.ns + "/a": 2})
	for _, it := range c.rest() {
		rc.take(t, it)
	}
	rc.cursor = c.cursor()
	if !strings.HasPrefix(rc.cursor, "m.") {
		t.Fatalf("%s: cursor %q, want an m. token", rc.transport, rc.cursor)
	}
}

// away publishes, at node, while the subscriber is away.
func (rc *resumeCase) away(t *testing.T, node *hubProc) {
	t.Helper()
	node.publishN(t, rc.ns+"/a", 1)     // seq 3 of a topic it knew
	node.publishN(t, rc.ns+"/new", 2)   // a topic created meanwhile
	node.publishN(t, rc.ns+"/old", 1)   // seq 4 of a topic quiet while it was there
	node.publishN(t, rc.ns+"/d/e/f", 1) // deep
	node.publishN(t, "not-"+rc.ns+"/x", 1)
}

// after resumes at node and checks that exactly the missed events come,
// then a live one published at live, then (as a marker) the next live one
// and nothing else before it.
func (rc *resumeCase) after(t *testing.T, node, live *hubProc) {
	t.Helper()
	c := dialPattern(t, rc.transport, node.URL, rc.ns+"/**", rc.cursor)
	live.publishN(t, rc.ns+"/new", 1) // seq 3, live
	rc.takeUntil(t, c, map[string]uint64{rc.ns + "/a": 3, rc.ns + "/new": 3, rc.ns + "/old": 4, rc.ns + "/d/e/f": 1})
	live.publishN(t, rc.ns+"/a", 1)
	if it := c.next(t, 20*time.Second); it.reset != nil || it.topic != rc.ns+"/a" || it.seq != 4 {
		t.Fatalf("%s: after the resume, %v came before the marker %s/a#4", rc.transport, it, rc.ns)
	}
	c.close()
}

func TestPatternResume(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	for _, tr := range transportsUnderTest {
		t.Run(tr, func(t *testing.T) {
			rc := &resumeCase{ns: "pr-" + tr, transport: tr}
			rc.before(t, h)
			rc.away(t, h)
			rc.after(t, h, h)
		})
	}
}

// TestPatternResumeKill9: the hub is killed with SIGKILL between the
// disconnect and the resume; the index of activity is as durable as the
// events.
func TestPatternResumeKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, dir)
	var cases []*resumeCase
	for _, tr := range transportsUnderTest {
		rc := &resumeCase{ns: "pk-" + tr, transport: tr}
		rc.before(t, h)
		rc.away(t, h)
		cases = append(cases, rc)
	}
	h.Kill()
	h = startHub(t, dir)
	for _, rc := range cases {
		rc.after(t, h, h)
	}
}

// TestPatternResumeTwoNodes: on Redis, a subscriber leaves node A, which
// is then killed with SIGKILL, and resumes on node B, with events
// published on both meanwhile.
func TestPatternResumeTwoNodes(t *testing.T) {
	t.Parallel()
	_, prefix := requireRedis(t)
	st := "redis://" + sharedRedis() + "/0"
	a := startHub(t, "", "--store", st, "--redis-prefix", prefix, "--node-id", "pr-a")
	b := startHub(t, "", "--store", st, "--redis-prefix", prefix, "--node-id", "pr-b")
	waitNodes(t, a, 2)
	waitNodes(t, b, 2)
	var cases []*resumeCase
	for _, tr := range transportsUnderTest {
		rc := &resumeCase{ns: "p2-" + tr, transport: tr}
		rc.before(t, a)
		a.publishN(t, rc.ns+"/a", 1) // seq 3, on A
		b.publishN(t, rc.ns+"/new", 2)
		a.publishN(t, rc.ns+"/old", 1)
		b.publishN(t, rc.ns+"/d/e/f", 1)
		cases = append(cases, rc)
	}
	a.Kill()
	for _, rc := range cases {
		rc.after(t, b, b)
	}
}

// TestPatternResumeUnderLoad: on Redis with two nodes, publishers on both
// write to topics that keep appearing, while one subscriber per transport
// leaves and comes back on the other node every few events. Each must get
// every event of every topic exactly once, in order, without a reset.
func TestPatternResumeUnderLoad(t *testing.T) {
	t.Parallel()
	_, prefix := requireRedis(t)
	st := "redis://" + sharedRedis() + "/0"
	nodes := []*hubProc{
		startHub(t, "", "--store", st, "--redis-prefix", prefix, "--node-id", "pl-a"),
		startHub(t, "", "--store", st, "--redis-prefix", prefix, "--node-id", "pl-b"),
	}
	waitNodes(t, nodes[0], 2)
	waitNodes(t, nodes[1], 2)
	const ns, perNode = "pl", 150
	type subscriber struct {
		name  string
		mu    sync.Mutex
		last  map[string]uint64
		errs  []string
		moves int
	}
	var subs []*subscriber
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, tr := range transportsUnderTest {
		s := &subscriber{name: tr, last: map[string]uint64{}}
		subs = append(subs, s)
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			node, cursor := i%2, ""
			first := true
			for ctx.Err() == nil {
				c := dialPattern(t, tr, nodes[node].URL, ns+"/**", cursor)
				if first {
					first = false
					close(ready)
				}
				take := func(it patItem) {
					s.mu.Lock()
					defer s.mu.Unlock()
					switch {
					case len(s.errs) > 10:
					case it.reset != nil:
						s.errs = append(s.errs, fmt.Sprintf("unexpected %v", it))
					case it.seq != s.last[it.topic]+1:
						s.errs = append(s.errs, fmt.Sprintf("%s: seq %d after %d", it.topic, it.seq, s.last[it.topic]))
					default:
						s.last[it.topic] = it.seq
					}
				}
				for n := 0; n < 25 && ctx.Err() == nil; {
					it, err := c.tryNext(200 * time.Millisecond)
					if err != nil {
						continue
					}
					take(it)
					n++
				}
				for _, it := range c.rest() {
					take(it)
				}
				cursor = c.cursor()
				node = 1 - node
				s.mu.Lock()
				s.moves++
				s.mu.Unlock()
			}
		}()
		<-ready
	}
	var pubs sync.WaitGroup
	var failed atomic.Value
	for i, h := range nodes {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for n := range perNode {
				// A new topic every 10 events, the older ones going on.
				topic := fmt.Sprintf("%s/%d/t%d", ns, n/10, n%3)
				body := fmt.Sprintf(`{"topic":%q,"data":{"node":%d,"n":%d}}`, topic, i, n)
				a, err := h.try(http.MethodPost, "/publish", ctHeader("application/json"), []byte(body))
				if err != nil || a.Status != http.StatusOK {
					failed.Store(fmt.Sprintf("publish on node %d: %v %v", i, err, a))
					return
				}
			}
		}()
	}
	pubs.Wait()
	if f := failed.Load(); f != nil {
		t.Fatal(f)
	}
	// What the log holds is what every subscriber must have.
	want := map[string]uint64{}
	for n := range perNode {
		topic := fmt.Sprintf("%s/%d/t%d", ns, n/10, n%3)
		if _, ok := want[topic]; !ok {
			er, _ := nodes[0].getEvents(t, "topic="+url.QueryEscape(topic)+"&count=1")
			want[topic] = er.Events[0].Seq
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range subs {
		for {
			s.mu.Lock()
			done := len(s.errs) > 0 || equalMaps(s.last, want)
			s.mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the subscribers' progress, with a deadline
		}
	}
	cancel()
	wg.Wait()
	for _, s := range subs {
		for _, e := range s.errs {
			t.Errorf("%s: %s", s.name, e)
		}
		if !equalMaps(s.last, want) {
			t.Errorf("%s: ends at %v, want %v", s.name, s.last, want)
		}
		if s.moves < 2 {
			t.Errorf("%s moved between nodes %d times, want several", s.name, s.moves)
		}
		t.Logf("%s: %d reconnections", s.name, s.moves)
	}
}

// TestPatternResumeRedisCluster: the same on a Redis Cluster, where the
// activity index lives in another slot than most topics.
func TestPatternResumeRedisCluster(t *testing.T) {
	t.Parallel()
	st := redistest.Cluster(t)
	a := startHub(t, "", "--store", st, "--node-id", "prc-a")
	b := startHub(t, "", "--store", st, "--node-id", "prc-b")
	waitNodes(t, a, 2)
	waitNodes(t, b, 2)
	for _, tr := range transportsUnderTest {
		rc := &resumeCase{ns: "pc-" + tr, transport: tr, slack: true}
		rc.before(t, a)
		rc.away(t, b)
		rc.after(t, b, a)
	}
}

func equalMaps(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDocumentCatchUpExactTime (issue 12, item 2): a client holding a
// document at exactly the time the hub gave it gets no update; one holding
// an older version does.
func TestDocumentCatchUpExactTime(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	res := h.publish(t, `{"topic":"dc/board","type":"create","key":"card","data":{"v":1}}`)
	held := res[0].Time
	tm, err := time.Parse(time.RFC3339Nano, held)
	if err != nil {
		t.Fatal(err)
	}
	older := tm.Add(-time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send := func(v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	type msg struct {
		Op, Sub, Type, Key string
		Seq                uint64
	}
	read := func() msg {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}
	send(map[string]any{"op": "subscribe", "sub": "exact", "topic": "dc/board", "documents": map[string]string{"card": held}})
	if m := read(); m.Op != "subscribed" {
		t.Fatalf("got %+v, want subscribed", m)
	}
	// The next thing on "exact" must be this live event, not an update.
	h.publish(t, `{"topic":"dc/board","type":"create","key":"other","data":{"v":1}}`)
	if m := read(); m.Op != "event" || m.Key != "other" {
		t.Fatalf("holding card at exactly %s: got %+v first, want the live create of other (no update)", held, m)
	}
	send(map[string]any{"op": "subscribe", "sub": "older", "topic": "dc/board", "documents": map[string]string{"card": older}})
	if m := read(); m.Op != "subscribed" {
		t.Fatalf("got %+v, want subscribed", m)
	}
	if m := read(); m.Op != "event" || m.Sub != "older" || m.Key != "card" || m.Type != "update" || m.Seq != 1 {
		t.Fatalf("holding card at %s (older): got %+v, want an update of card", older, m)
	}
}

// TestPatternBridgeInterrupted: on Redis, node B's Pub/Sub connection is
// killed again and again while node A publishes to topics that keep
// appearing. B cannot re-read topics it never saw, so it asks its pattern
// subscribers to resume, and their cursors bring what they missed: each
// ends with every event exactly once.
func TestPatternBridgeInterrupted(t *testing.T) {
	t.Parallel()
	r := startOwnRedis(t, "")
	st := "redis://127.0.0.1:" + r.port + "/0"
	a := startHub(t, "", "--store", st, "--node-id", "pi-a")
	b := startHub(t, "", "--store", st, "--node-id", "pi-b")
	waitNodes(t, a, 2)
	waitNodes(t, b, 2)
	admin := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + r.port, MaxRetries: -1})
	defer admin.Close()
	const total = 300
	type subscriber struct {
		mu   sync.Mutex
		last map[string]uint64
		errs []string
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	subs := map[string]*subscriber{}
	for _, tr := range transportsUnderTest {
		s := &subscriber{last: map[string]uint64{}}
		subs[tr] = s
		c := dialPattern(t, tr, b.URL, "pi/**", "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				it, err := c.tryNext(200 * time.Millisecond)
				if errors.Is(err, errTimeout) {
					continue
				}
				if err != nil { // cut off: resume where it stood
					cursor := c.cursor()
					c = dialPattern(t, tr, b.URL, "pi/**", cursor)
					continue
				}
				s.mu.Lock()
				switch {
				case len(s.errs) > 10:
				case it.reset != nil:
					s.errs = append(s.errs, fmt.Sprintf("unexpected %v", it))
				case it.seq != s.last[it.topic]+1:
					s.errs = append(s.errs, fmt.Sprintf("%s: seq %d after %d", it.topic, it.seq, s.last[it.topic]))
				default:
					s.last[it.topic] = it.seq
				}
				s.mu.Unlock()
			}
			c.close()
		}()
	}
	want := map[string]uint64{}
	for n := range total {
		topic := fmt.Sprintf("pi/%d/t", n/3) // a new topic every third event
		a.publishN(t, topic, 1)
		want[topic]++
		if n%25 == 0 {
			if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range subs {
		for {
			s.mu.Lock()
			done := len(s.errs) > 0 || equalMaps(s.last, want)
			s.mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the subscribers' progress, with a deadline
		}
	}
	cancel()
	wg.Wait()
	for tr, s := range subs {
		for _, e := range s.errs {
			t.Errorf("%s: %s", tr, e)
		}
		if !equalMaps(s.last, want) {
			missing := 0
			for topic, n := range want {
				missing += int(n - s.last[topic])
			}
			t.Errorf("%s: %d events missing", tr, missing)
		}
	}
	t.Logf("fan-out resyncs on B: %v", b.metric(t, "hubbub_fanout_resyncs_total"))
}
