package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/transport"
)

// newHTTPHub is newTestHubOpts with /publish and /events routed too.
func newHTTPHub(t *testing.T, ho hub.Options, to transport.Options) testHub {
	t.Helper()
	b := broker.New()
	st, err := embedded.Open(t.TempDir(), store.Config{OnCommit: b.Publish})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(st, b, ho)
	to.Heartbeat = time.Second // no Access: loopback clients are local and may publish
	th := transport.New(h, to)
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", th.WebSocket)
	mux.HandleFunc("/publish", th.Publish)
	mux.HandleFunc("/events", th.Events)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); _ = st.Close() })
	return testHub{hub: h, srv: srv}
}

type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (th testHub) post(t *testing.T, path string, hdr map[string]string, body []byte) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, th.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return th.roundTrip(t, req)
}

func (th testHub) get(t *testing.T, path string, hdr map[string]string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, th.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return th.roundTrip(t, req)
}

func (th testHub) roundTrip(t *testing.T, req *http.Request) httpAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// stored is how many events topic's log holds.
func (th testHub) stored(t *testing.T, topic string) uint64 {
	t.Helper()
	h, err := th.hub.Log().Head(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return h.Last + 1 - h.First
}

const jsonCT = "application/json"

// Findings 10, 11 and 13 of the audit, and newcomer problems 8 and 13:
// bad publish input is a 400 with a plain reason, and nothing is stored.
func TestPublishInputHygiene(t *testing.T) {
	th := newHTTPHub(t, hub.Options{}, transport.Options{})
	cases := []struct {
		name, path, ct string
		hdr            map[string]string
		body           string
		reason         string // a part of the answer
	}{
		{"invalid UTF-8 in data", "/publish", jsonCT, nil, "{\"topic\":\"h/a\",\"data\":\"\xff\xfe bad\"}", "UTF-8"},
		{"invalid UTF-8 in topic", "/publish", jsonCT, nil, "{\"topic\":\"h/a\xff\",\"data\":1}", "UTF-8"},
		{"invalid UTF-8 in a field name", "/publish", jsonCT, nil, "{\"topic\":\"h/a\",\"data\":{\"\xc3\":1}}", "UTF-8"},
		{"lone surrogate in topic", "/publish", jsonCT, nil, `{"topic":"h/a\udc00","data":1}`, "surrogate"},
		{"lone high surrogate in data", "/publish", jsonCT, nil, `{"topic":"h/a","data":"x\ud800"}`, "surrogate"},
		{"high surrogate then a non-surrogate", "/publish", jsonCT, nil, `{"topic":"h/a","data":"\ud800\u0041"}`, "surrogate"},
		{"NUL in topic", "/publish", jsonCT, nil, `{"topic":"h/a\u0000","data":1}`, "control"},
		{"newline in topic", "/publish", jsonCT, nil, `{"topic":"h/a\n","data":1}`, "control"},
		{"NUL in key", "/publish", jsonCT, nil, `{"topic":"h/a","key":"k\u0000","data":1}`, "control"},
		{"LF in key", "/publish", jsonCT, nil, `{"topic":"h/a","key":"k\nx","data":1}`, "control"},
		{"CR in key", "/publish", jsonCT, nil, `{"topic":"h/a","key":"k\rx","data":1}`, "control"},
		{"raw NUL in key", "/publish?topic=h/a&key=k%00", "text/plain", nil, "hello", "control"},
		{"coalesce_ms overflows", "/publish", jsonCT, nil, `{"topic":"h/a","key":"k","coalesce_ms":288230376151712704}`, "coalesce_ms"},
		{"coalesce_ms negative", "/publish", jsonCT, nil, `{"topic":"h/a","key":"k","coalesce_ms":-1}`, "coalesce_ms"},
		{"raw coalesce_ms overflows", "/publish?topic=h/a&coalesce_ms=288230376151712704", "text/plain", nil, "x", "coalesce_ms"},
		{"empty raw body", "/publish?topic=h/a", "text/plain", nil, "", "empty body"},
		{"text body without topic", "/publish", "text/plain", nil, "hello", "?topic=NAME"},
		{"form body without topic", "/publish", "application/x-www-form-urlencoded", nil, "a=b", "Content-Type: application/json"},
		{"Idempotency-Key on several events", "/publish", jsonCT, map[string]string{"Idempotency-Key": "i1"},
			`[{"topic":"h/a","data":1},{"topic":"h/a","data":2}]`, "Idempotency-Key"},
		{"Idempotency-Key differs from the body's", "/publish", jsonCT, map[string]string{"Idempotency-Key": "i1"},
			`{"topic":"h/a","data":1,"idempotency_key":"i2"}`, "differ"},
	}
	for _, c := range cases {
		hdr := map[string]string{"Content-Type": c.ct}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		a := th.post(t, c.path, hdr, []byte(c.body))
		if a.status != http.StatusBadRequest || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q, want a 400 with a plain reason", c.name, a.status, a.body)
			continue
		}
		if !strings.Contains(string(a.body), c.reason) {
			t.Errorf("%s: reason %q does not mention %q", c.name, a.body, c.reason)
		}
	}
	// Go's decoder would have stored the first two under these names.
	for _, topic := range []string{"h/a", "h/a\ufffd"} {
		if n := th.stored(t, topic); n != 0 {
			t.Errorf("bad input stored %d events in %q", n, topic)
		}
	}
	// Valid surrogate pairs and U+FFFD written as such are fine.
	a := th.post(t, "/publish", map[string]string{"Content-Type": jsonCT}, []byte(`{"topic":"h/ok","data":"\ud83d\ude00 \ufffd \\udc00"}`))
	if a.status != http.StatusOK {
		t.Errorf("a valid surrogate pair: %d %s", a.status, a.body)
	}
}

// Newcomer problem 8: the Idempotency-Key header is honoured on a JSON
// publish of one event.
func TestPublishIdempotencyKeyHeader(t *testing.T) {
	th := newHTTPHub(t, hub.Options{}, transport.Options{})
	hdr := map[string]string{"Content-Type": jsonCT, "Idempotency-Key": "json-h2"}
	var ids []string
	for i, body := range []string{
		`{"topic":"idem/a","data":1}`,
		`{"topic":"idem/a","data":1}`,
		`{"topic":"idem/a","data":1,"idempotency_key":"json-h2"}`,
	} {
		a := th.post(t, "/publish", hdr, []byte(body))
		var res transport.PublishResponse
		if a.status != http.StatusOK || json.Unmarshal(a.body, &res) != nil || len(res.Events) != 1 {
			t.Fatalf("publish %d: %d %s", i, a.status, a.body)
		}
		if dup := res.Events[0].Duplicate; dup != (i > 0) {
			t.Errorf("publish %d: duplicate=%v", i, dup)
		}
		ids = append(ids, res.Events[0].ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("ids %v, want one", ids)
	}
	if n := th.stored(t, "idem/a"); n != 1 {
		t.Errorf("stored %d events, want 1", n)
	}
}

// Finding 10 and 11 over WebSocket.
func TestWSPublishInputHygiene(t *testing.T) {
	th := newHTTPHub(t, hub.Options{}, transport.Options{})
	c := th.dial(t)
	for _, msg := range []string{
		"{\"op\":\"publish\",\"topic\":\"w/a\",\"data\":\"\xff\xfe\"}",
		"{\"op\":\"publish\",\"topic\":\"w/a\xff\",\"data\":1}",
		`{"op":"publish","topic":"w/a\udc00","data":1}`,
		`{"op":"publish","topic":"w/a","key":"k\n","data":1}`,
		`{"op":"publish","topic":"w/a","key":"k","data":1,"coalesce_ms":288230376151712704}`,
	} {
		c.send(msg)
		c.expect("error", map[string]any{"code": "bad_request"})
	}
	c.send(`{"op":"ping"}`)
	c.expect("pong", nil)
	for _, topic := range []string{"w/a", "w/a\ufffd"} {
		if n := th.stored(t, topic); n != 0 {
			t.Errorf("bad input stored %d events in %q", n, topic)
		}
	}
}

// publishText stores n text events of size bytes in topic.
func publishText(t *testing.T, h *hub.Hub, topic string, n, size int) {
	t.Helper()
	data := []byte(strings.Repeat("<x&", size/3))
	for range n {
		if _, err := h.Publish(context.Background(), []event.Draft{{Topics: []string{topic}, ContentType: "text/plain", Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
}

// Audit finding 7: retrieve (JSON, Atom, RSS) and long-poll answers hold at
// most --max-response-bytes, and their cursors page on to every event,
// once, in order. A feed cut short is still a valid feed.
func TestAnswersBoundedByBytes(t *testing.T) {
	const maxBytes = 64 << 10
	th := newHTTPHub(t, hub.Options{MaxPageBytes: maxBytes}, transport.Options{MaxResponseBytes: maxBytes})
	publishText(t, th.hub, "big/a", 40, 6<<10)
	publishText(t, th.hub, "big/a", 1, 100<<10) // seq 41, alone over the bound
	publishText(t, th.hub, "big/a", 9, 6<<10)
	for _, mode := range []string{"json", "atom", "rss", "poll"} {
		var seqs []uint64
		cursor := "0"
		for page := 0; len(seqs) < 50; page++ {
			if page > 100 {
				t.Fatalf("%s: paging does not end (%d events)", mode, len(seqs))
			}
			path := "/events?topic=big/a&count=1000&after=" + cursor
			switch mode {
			case "atom", "rss":
				path += "&format=" + mode
			case "poll":
				path += "&wait=poll&timeout=5"
			}
			a := th.get(t, path, nil)
			if a.status != http.StatusOK {
				t.Fatalf("%s: %d %s", mode, a.status, a.body)
			}
			got, next := pageOf(t, mode, a)
			if len(got) == 0 {
				t.Fatalf("%s: an empty page after %d events", mode, len(seqs))
			}
			if len(a.body) > maxBytes && len(got) > 1 {
				t.Fatalf("%s: an answer of %d bytes with %d events, over %d", mode, len(a.body), len(got), maxBytes)
			}
			seqs = append(seqs, got...)
			cursor = next
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s: seqs %v", mode, seqs)
			}
		}
	}
}

// pageOf reads the seqs of an answer and its cursor; feeds must parse.
func pageOf(t *testing.T, mode string, a httpAnswer) ([]uint64, string) {
	t.Helper()
	var seqs []uint64
	if mode == "json" || mode == "poll" {
		var resp struct {
			Events []struct {
				Seq uint64 `json:"seq"`
			} `json:"events"`
			Cursor string `json:"cursor"`
		}
		if err := json.Unmarshal(a.body, &resp); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for _, e := range resp.Events {
			seqs = append(seqs, e.Seq)
		}
		return seqs, resp.Cursor
	}
	// Walk the whole document: it must be well-formed XML. Entry ids end
	// in ":EPOCH:SEQ".
	dec := xml.NewDecoder(bytes.NewReader(a.body))
	var in string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed: %v", mode, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			in = tok.Name.Local
		case xml.EndElement:
			in = ""
		case xml.CharData:
			if in == "id" || in == "guid" {
				s := string(tok)
				n, err := strconv.ParseUint(s[strings.LastIndex(s, ":")+1:], 10, 64)
				if err == nil && strings.HasPrefix(s, "urn:hubbub:") {
					seqs = append(seqs, n)
				}
			}
		}
	}
	return seqs, a.header.Get(transport.CursorHeader)
}

// BenchmarkRetrieveLarge measures one JSON retrieve of 300 events of 64
// KiB (about 20 MiB of answer) with the default bound and with a 4 MiB one.
func BenchmarkRetrieveLarge(b *testing.B) {
	bst := broker.New()
	st, err := embedded.Open(b.TempDir(), store.Config{OnCommit: bst.Publish})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := hub.New(st, bst, hub.Options{})
	drafts := make([]event.Draft, 100)
	for i := range drafts {
		drafts[i] = event.Draft{Topics: []string{"big/a"}, ContentType: "text/plain", Data: []byte(strings.Repeat("x", 64<<10))}
	}
	for range 3 {
		if _, err := h.Publish(context.Background(), drafts); err != nil {
			b.Fatal(err)
		}
	}
	for _, maxBytes := range []int{64 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("max-%dMiB", maxBytes>>20), func(b *testing.B) {
			th := transport.New(h, transport.Options{MaxResponseBytes: maxBytes})
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				th.Events(w, httptest.NewRequest(http.MethodGet, "/events?topic=big/a&count=1000&after=0", nil))
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
				b.ReportMetric(float64(w.Body.Len()), "answer-bytes")
			}
		})
	}
}
