package websub_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/websub"
)

func TestDeliverJSONAndRaw(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	cb := s.url("/cb?x=1&hub.mode=keep")
	if err := e.subscribe("chat/room", cb, url.Values{"foo": {"bar"}, "hub.foo": {"hub.bar"}}); err != nil {
		t.Fatal(err)
	}
	v := <-s.verifs
	if v.query.Get("x") != "1" || v.query["hub.mode"][0] != "keep" || v.query["hub.mode"][1] != "subscribe" ||
		v.query.Get("hub.topic") != "chat/room" || v.query.Get("hub.lease_seconds") != strconv.Itoa(int(websub.DefaultLease/time.Second)) {
		t.Fatalf("verification query %v", v.query)
	}
	e.publish(event.Draft{Topics: []string{"chat/room"}, Data: []byte(`{"a":1}`)})
	d := s.next()
	if string(d.body) != `{"a":1}` || d.header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON delivery: %q %q", d.body, d.header.Get("Content-Type"))
	}
	if d.query.Get("x") != "1" {
		t.Fatalf("callback query lost: %v", d.query)
	}
	// The hub as discovery names it; a topic named by its bare name is
	// named by its URL.
	wantLink := "<" + e.srv.URL + `/hub>; rel="hub", <` + e.srv.URL + `/topics/chat/room>; rel="self"`
	if got := d.header.Get("Link"); got != wantLink {
		t.Fatalf("Link %q, want %q", got, wantLink)
	}
	if d.header.Get(websub.SignatureHeader) != "" {
		t.Fatal("signed without a secret")
	}
	for _, ct := range []string{"text/plain; charset=iso-8859-1", "application/x-thing; v=2"} {
		e.publish(event.Draft{Topics: []string{"chat/room"}, ContentType: ct, Data: []byte("héllo \x00 raw")})
		d = s.next()
		if string(d.body) != "héllo \x00 raw" || d.header.Get("Content-Type") != ct {
			t.Fatalf("raw delivery: %q %q", d.body, d.header.Get("Content-Type"))
		}
	}
}

func TestSignatures(t *testing.T) {
	for _, tc := range []struct{ hubAlg, subAlg, want string }{
		{"", "", "sha256"},
		{"sha1", "", "sha1"},
		{"", "sha1", "sha1"},
		{"", "sha384", "sha384"},
		{"sha1", "sha512", "sha512"},
	} {
		t.Run(tc.hubAlg+"/"+tc.subAlg, func(t *testing.T) {
			e := newEnv(t, t.TempDir(), func(o *websub.Options) { o.SignatureAlgorithm = tc.hubAlg }).start()
			s := newSubscriber(t)
			extra := url.Values{"hub.secret": {"s3cret"}}
			if tc.subAlg != "" {
				extra.Set("hub.signature_algorithm", tc.subAlg)
			}
			if err := e.subscribe("t", s.url("/"), extra); err != nil {
				t.Fatal(err)
			}
			e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`[1,2]`)})
			d := s.next()
			sig := d.header.Get(websub.SignatureHeader)
			if sig != websub.Sign(tc.want, "s3cret", d.body) || !websub.VerifySignature(sig, "s3cret", d.body) {
				t.Fatalf("signature %q for %q", sig, d.body)
			}
		})
	}
}

func TestVerificationFailureKeepsState(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	cb := s.url("/cb")
	if err := e.subscribe("t", cb, url.Values{"hub.secret": {"old"}}); err != nil {
		t.Fatal(err)
	}
	for name, verify := range map[string]func(string) (int, string){
		"wrong echo": func(c string) (int, string) { return 200, c + "x" },
		"404":        func(c string) (int, string) { return 404, c },
		"500":        func(c string) (int, string) { return 500, c },
	} {
		s.set(verify, nil)
		if err := e.subscribe("t", cb, url.Values{"hub.secret": {"new"}}); err == nil {
			t.Fatalf("%s: verification succeeded", name)
		}
		if err := e.request(websub.ModeUnsubscribe, "t", cb, nil); err == nil {
			t.Fatalf("%s: unsubscribe verification succeeded", name)
		}
	}
	s.set(nil, nil)
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	d := s.next()
	if !websub.VerifySignature(d.header.Get(websub.SignatureHeader), "old", d.body) {
		t.Fatal("the old subscription's secret is not in use")
	}
	// A successful re-subscription replaces it: one delivery, new secret.
	if err := e.subscribe("t", cb, url.Values{"hub.secret": {"new"}}); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`2`)})
	d = s.next()
	if string(d.body) != "2" || !websub.VerifySignature(d.header.Get(websub.SignatureHeader), "new", d.body) {
		t.Fatalf("after re-subscribe: %q %q", d.body, d.header.Get(websub.SignatureHeader))
	}
	s.none()
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s, control := newSubscriber(t), newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.subscribe("t", control.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.request(websub.ModeUnsubscribe, "t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	<-s.verifs
	if v := <-s.verifs; v.query.Get("hub.mode") != "unsubscribe" || v.query.Get("hub.lease_seconds") == "" {
		t.Fatalf("unsubscribe verification %v", v.query)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	control.next()
	s.none()
}

func TestSyncVerify(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	v := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {s.url("/")},
		"hub.verify": {"sync", "async"}, "hub.verify_token": {"tok"}}
	if code, body := e.post(v); code != http.StatusNoContent {
		t.Fatalf("sync verify: %d %s", code, body)
	}
	if q := (<-s.verifs).query; q.Get("hub.verify_token") != "tok" {
		t.Fatalf("verify_token not echoed: %v", q)
	}
	s.set(func(c string) (int, string) { return 200, "nope" }, nil)
	if code, _ := e.post(v); code < 400 || code > 499 {
		t.Fatalf("failed sync verify answered %d", code)
	}
	v.Set("hub.verify", "async")
	if code, _ := e.post(v); code != http.StatusAccepted {
		t.Fatalf("async verify answered %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	base := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {"http://example.com/cb"}}
	for name, mod := range map[string]func(url.Values){
		"no mode":       func(v url.Values) { v.Del("hub.mode") },
		"bad mode":      func(v url.Values) { v.Set("hub.mode", "nope") },
		"relative cb":   func(v url.Values) { v.Set("hub.callback", "/cb") },
		"ftp cb":        func(v url.Values) { v.Set("hub.callback", "ftp://x/cb") },
		"no topic":      func(v url.Values) { v.Del("hub.topic") },
		"long secret":   func(v url.Values) { v.Set("hub.secret", string(make([]byte, 200))) },
		"bad lease":     func(v url.Values) { v.Set("hub.lease_seconds", "soon") },
		"bad algorithm": func(v url.Values) { v.Set("hub.signature_algorithm", "md5") },
		"bad batch":     func(v url.Values) { v.Set("hub.batch", "0") },
		"bytes alone":   func(v url.Values) { v.Set("hub.batch_bytes", "1000") },
		"wait alone":    func(v url.Values) { v.Set("hub.batch_wait_ms", "100") },
		"bad bytes":     func(v url.Values) { v.Set("hub.batch", "5"); v.Set("hub.batch_bytes", "0") },
		"huge bytes":    func(v url.Values) { v.Set("hub.batch", "5"); v.Set("hub.batch_bytes", "999999999") },
		"bad wait":      func(v url.Values) { v.Set("hub.batch", "5"); v.Set("hub.batch_wait_ms", "-1") },
		"long wait":     func(v url.Values) { v.Set("hub.batch", "5"); v.Set("hub.batch_wait_ms", "60001") },
		"bad filter":    func(v url.Values) { v.Set("hub.filter", `{"nope":1}`) },
		"publish none":  func(v url.Values) { v.Set("hub.mode", "publish"); v.Del("hub.topic") },
	} {
		v := url.Values{}
		for k, vs := range base {
			v[k] = append([]string(nil), vs...)
		}
		mod(v)
		if code, body := e.post(v); code != http.StatusBadRequest || body == "" {
			t.Errorf("%s: %d %q", name, code, body)
		}
	}
	resp, err := http.Get(e.srv.URL + "/hub")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET answered %d", resp.StatusCode)
	}
	// Publish answers: 204 for hub.url (PuSH 0.3), 202 for hub.topic.
	if code, _ := e.post(url.Values{"hub.mode": {"publish"}, "hub.url": {"http://example.com/a,http://example.com/b"}}); code != http.StatusNoContent {
		t.Fatalf("publish hub.url answered %d", code)
	}
	if code, _ := e.post(url.Values{"hub.mode": {"publish"}, "hub.topic": {"http://example.com/a"}}); code != http.StatusAccepted {
		t.Fatalf("publish hub.topic answered %d", code)
	}
}

func TestDenied(t *testing.T) {
	e := newEnv(t, t.TempDir(), func(o *websub.Options) {
		o.Allow = func(topic, cb string) error {
			if topic == "secret" {
				return errorString("not for you")
			}
			return nil
		}
	}).start()
	s := newSubscriber(t)
	code, _ := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"secret"}, "hub.callback": {s.url("/cb?a=b")}})
	if code != http.StatusAccepted {
		t.Fatalf("denied request answered %d", code)
	}
	v := <-s.verifs
	if v.query.Get("hub.mode") != "denied" || v.query.Get("hub.reason") != "not for you" || v.query.Get("a") != "b" {
		t.Fatalf("denial %v", v.query)
	}
	if _, ok, _ := e.records.Get(t.Context(), websub.SubscriptionID("secret", s.url("/cb?a=b"))); ok {
		t.Fatal("denied subscription stored")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), url.Values{"hub.lease_seconds": {"60"}}); err != nil {
		t.Fatal(err)
	}
	if v := <-s.verifs; v.query.Get("hub.lease_seconds") != "60" {
		t.Fatalf("lease %v", v.query)
	}
	e.clock.Advance(61 * time.Second)
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	e.obs.wait(t, "removed", func(o obsEvent) bool { return o.mode == "expired" })
	s.none()
}

func TestGoneEnds(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	s.set(nil, func(int, delivery) (int, http.Header) { return http.StatusGone, nil })
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	e.obs.wait(t, "removed", func(o obsEvent) bool { return o.mode == "gone" })
	if n := e.records.Count("t"); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}

func TestRetryThenDeliverInOrder(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	s.set(nil, func(n int, _ delivery) (int, http.Header) {
		if n <= 2 {
			return 500, nil
		}
		return 200, nil
	})
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
	}
	for i := range 3 {
		if d := s.next(); string(d.body) != strconv.Itoa(i) {
			t.Fatalf("delivery %d: %q", i, d.body)
		}
	}
	s.none()
	sub, _, _ := e.records.Get(t.Context(), websub.SubscriptionID("t", s.url("/")))
	if sub.Failures != 0 || sub.State != websub.StateActive || sub.Cursor.Seq != 3 {
		t.Fatalf("subscription after recovery: %+v", sub)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	var first time.Time
	s.set(nil, func(n int, _ delivery) (int, http.Header) {
		if n == 1 {
			first = time.Now()
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	s.next()
	// RetryBase is 20ms: only Retry-After explains a wait of a second.
	if waited := time.Since(first); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After", waited)
	}
}

func TestBatching(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), url.Values{"hub.batch": {"3"}}); err != nil {
		t.Fatal(err)
	}
	drafts := make([]event.Draft, 5)
	for i := range drafts {
		drafts[i] = event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))}
	}
	if _, err := e.hub.Publish(t.Context(), drafts); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, want := range []int{3, 2} {
		d := s.next()
		var batch []event.Wire
		if err := json.Unmarshal(d.body, &batch); err != nil || len(batch) != want {
			t.Fatalf("batch %q: %v", d.body, err)
		}
		for _, w := range batch {
			seqs = append(seqs, w.Seq)
		}
	}
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("order %v", seqs)
		}
	}
}

// batchOf decodes a JSON batch delivery.
func batchOf(t *testing.T, d delivery) []event.Wire {
	t.Helper()
	var batch []event.Wire
	if err := json.Unmarshal(d.body, &batch); err != nil || len(batch) == 0 {
		t.Fatalf("batch %q: %v", d.body, err)
	}
	return batch
}

func TestBatchBytes(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	one, capped := newSubscriber(t), newSubscriber(t)
	// A cap below one event: each event goes alone, never dropped.
	if err := e.subscribe("t", one.url("/"), url.Values{"hub.batch": {"10"}, "hub.batch_bytes": {"1"}}); err != nil {
		t.Fatal(err)
	}
	const limit = 700 // two of the events below, not three
	if err := e.subscribe("t", capped.url("/"), url.Values{"hub.batch": {"10"}, "hub.batch_bytes": {strconv.Itoa(limit)}}); err != nil {
		t.Fatal(err)
	}
	drafts := make([]event.Draft, 5)
	for i := range drafts {
		drafts[i] = event.Draft{Topics: []string{"t"}, Data: []byte(`"` + strings.Repeat(strconv.Itoa(i), 200) + `"`)}
	}
	if _, err := e.hub.Publish(t.Context(), drafts); err != nil {
		t.Fatal(err)
	}
	for i := range drafts {
		if b := batchOf(t, one.next()); len(b) != 1 || b[0].Seq != uint64(i+1) {
			t.Fatalf("post %d: %+v", i, b)
		}
	}
	var seqs []uint64
	sizes := []int{}
	for len(seqs) < len(drafts) {
		d := capped.next()
		b := batchOf(t, d)
		if len(d.body) > limit {
			t.Fatalf("a %d-byte batch over hub.batch_bytes=%d", len(d.body), limit)
		}
		sizes = append(sizes, len(b))
		for _, w := range b {
			seqs = append(seqs, w.Seq)
		}
	}
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("order %v", seqs)
		}
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("batch sizes %v, want [2 2 1]", sizes)
	}
}

func TestBatchWait(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	long, short := newSubscriber(t), newSubscriber(t)
	// A wait no test lasts: only a full batch explains a POST.
	if err := e.subscribe("t", long.url("/"), url.Values{"hub.batch": {"3"}, "hub.batch_wait_ms": {"60000"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.subscribe("u", short.url("/"), url.Values{"hub.batch": {"3"}, "hub.batch_wait_ms": {"50"}}); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`2`)})
	long.none() // two of three: waiting for the third
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`3`)})
	if b := batchOf(t, long.next()); len(b) != 3 || b[0].Seq != 1 || b[2].Seq != 3 {
		t.Fatalf("full batch %+v", b)
	}
	// A partial batch goes once its first event has waited.
	e.publish(event.Draft{Topics: []string{"u"}, Data: []byte(`1`)})
	if b := batchOf(t, short.next()); len(b) != 1 || b[0].Seq != 1 {
		t.Fatalf("waited batch %+v", b)
	}
}

func TestSlowEndpointDoesNotHoldOthers(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	slow, fast := newSubscriber(t), newSubscriber(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow.set(nil, func(int, delivery) (int, http.Header) { <-release; return 200, nil })
	if err := e.subscribe("t", slow.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.subscribe("t", fast.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
		if d := fast.next(); string(d.body) != strconv.Itoa(i) {
			t.Fatalf("fast got %q", d.body)
		}
	}
}

func TestFilter(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), url.Values{"hub.filter": {`{"tags":{"any":["red"]}}`}}); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`"blue"`), Tags: []string{"blue"}})
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`"red"`), Tags: []string{"red"}})
	if d := s.next(); string(d.body) != `"red"` {
		t.Fatalf("filtered delivery %q", d.body)
	}
	s.none()
}

func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	s := newSubscriber(t)
	s.set(nil, func(int, delivery) (int, http.Header) { return 500, nil })
	e := newEnv(t, dir, nil).start()
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
	}
	e.obs.wait(t, "delivered", func(o obsEvent) bool { return o.status == 500 })
	e.close()

	s.set(nil, nil)
	e2 := newEnv(t, dir, nil).start()
	for i := range 3 {
		if d := s.next(); string(d.body) != strconv.Itoa(i) {
			t.Fatalf("after restart, delivery %d: %q", i, d.body)
		}
	}
	s.none()
	_ = e2
}

func TestReconcileAfterLostNotification(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	// With the enqueuer stopped, the commit notification goes nowhere.
	_ = e.ws.Close()
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`1`)})
	if n := e.ws.Reconcile(t.Context()); n != 1 {
		t.Fatalf("reconcile enqueued %d", n)
	}
	if d := s.next(); string(d.body) != "1" {
		t.Fatalf("delivery %q", d.body)
	}
}

func TestRetentionDropCounted(t *testing.T) {
	e := newEnvRetention(t, t.TempDir(), store.Retention{MaxEvents: 2}, nil).start()
	s := newSubscriber(t)
	down := make(chan struct{})
	s.set(nil, func(int, delivery) (int, http.Header) {
		select {
		case <-down:
			return 200, nil
		default:
			return 500, nil
		}
	})
	if err := e.subscribe("t", s.url("/"), nil); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`0`)})
	e.obs.wait(t, "delivered", func(o obsEvent) bool { return o.status == 500 })
	for i := 1; i < 5; i++ {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
	}
	close(down)
	// A retry may run between the publishes, so the three events trimmed
	// away can be reported in more than one observation: add them up.
	dropped := 0
	for dropped < 3 {
		dropped += e.obs.wait(t, "dropped", nil).n
	}
	if dropped != 3 {
		t.Fatalf("dropped %d, want 3", dropped)
	}
	for _, want := range []string{"3", "4"} {
		if d := s.next(); string(d.body) != want {
			t.Fatalf("delivery %q, want %q", d.body, want)
		}
	}
	sub, _, _ := e.records.Get(t.Context(), websub.SubscriptionID("t", s.url("/")))
	if sub.Dropped != 3 {
		t.Fatalf("Dropped = %d", sub.Dropped)
	}
}

// seqsOf collects the seqs of JSON batch deliveries until it has n.
func seqsOf(t *testing.T, s *subscriber, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(seqs) < n {
		for _, w := range batchOf(t, s.next()) {
			seqs = append(seqs, w.Seq)
		}
	}
	return seqs
}

func TestBackfillAndAfter(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	for i := range 5 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
	}
	head, err := e.store.Head(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	last3, after2, all, live := newSubscriber(t), newSubscriber(t), newSubscriber(t), newSubscriber(t)
	batch := url.Values{"hub.batch": {"10"}}
	with := func(k, v string) url.Values {
		out := url.Values{k: {v}}
		for k, vs := range batch {
			out[k] = vs
		}
		return out
	}
	for _, c := range []struct {
		s     *subscriber
		extra url.Values
	}{
		{last3, with("hub.backfill", "3")},
		{after2, with("hub.after", head.Epoch+":2")},
		{all, with("hub.backfill", "1000")},
		{live, batch},
	} {
		if err := e.subscribe("t", c.s.url("/"), c.extra); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqsOf(t, last3, 3); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("hub.backfill=3: %v", got)
	}
	if got := seqsOf(t, after2, 3); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("hub.after=EPOCH:2: %v", got)
	}
	if got := seqsOf(t, all, 5); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("hub.backfill past history: %v", got)
	}
	// Then live events, after the history, for each of them.
	e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(`6`)})
	for name, s := range map[string]*subscriber{"backfill": last3, "after": after2, "all": all, "live": live} {
		if got := seqsOf(t, s, 1); !slices.Equal(got, []uint64{6}) {
			t.Errorf("%s: live %v", name, got)
		}
	}
	if code, body := e.post(url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"t"}, "hub.callback": {live.url("/x")},
		"hub.backfill": {"2"}, "hub.after": {"1"}}); code != http.StatusBadRequest || !strings.Contains(body, "send one") {
		t.Errorf("backfill and after together: %d %q", code, body)
	}
}

func TestReplay(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	if err := e.subscribe("t", s.url("/"), url.Values{"hub.batch": {"10"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.publish(event.Draft{Topics: []string{"t"}, Data: []byte(strconv.Itoa(i))})
	}
	if got := seqsOf(t, s, 4); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("first delivery %v", got)
	}
	id := websub.SubscriptionID("t", s.url("/"))
	sub, err := e.ws.Replay(t.Context(), id, 0, "2")
	if err != nil || sub.Cursor.Seq != 2 {
		t.Fatalf("replay: %+v %v", sub.Cursor, err)
	}
	if got := seqsOf(t, s, 2); !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("after replay from 2: %v", got)
	}
	if _, err := e.ws.Replay(t.Context(), id, 1, ""); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(t, s, 1); !slices.Equal(got, []uint64{4}) {
		t.Errorf("after replay of the last 1: %v", got)
	}
	if _, err := e.ws.Replay(t.Context(), "nope", 1, ""); !errors.Is(err, websub.ErrNotFound) {
		t.Errorf("replay of no subscription: %v", err)
	}
}
