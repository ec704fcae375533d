package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRetrieve: count, after, before, formats, Superfeedr aliases and the
// cursor header.
func TestRetrieve(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	const topic = "retrieve/a"
	res := h.publishN(t, topic, 15)
	id := func(seq int) string { return url.QueryEscape(res[seq-1].ID) }

	cases := []struct {
		query  string
		want   []uint64
		cursor string
	}{
		{"", seqRange(6, 15), res[14].ID},
		{"&count=3", seqRange(13, 15), res[14].ID},
		{"&after=" + id(4) + "&count=3", seqRange(5, 7), res[6].ID},
		{"&after=" + id(4), seqRange(5, 14), res[13].ID},
		{"&before=" + id(10) + "&count=3", seqRange(7, 9), ""},
		{"&after=" + id(15), nil, res[14].ID},
	}
	for _, c := range cases {
		er, a := h.getEvents(t, "topic="+topic+c.query)
		if !equalSeqs(seqsOf(er.Events), c.want) {
			t.Errorf("retrieve %q: seqs %v, want %v", c.query, seqsOf(er.Events), c.want)
		}
		if hc := a.Header.Get("Hubbub-Cursor"); hc == "" || hc != er.Cursor {
			t.Errorf("retrieve %q: Hubbub-Cursor %q, body cursor %q: want both, equal", c.query, hc, er.Cursor)
		}
		if c.cursor != "" && er.Cursor != c.cursor {
			t.Errorf("retrieve %q: cursor %q, want %q", c.query, er.Cursor, c.cursor)
		}
		if !bytes.Contains(a.Body, []byte(`"events":[`)) {
			t.Errorf("retrieve %q: answer %s has no events list", c.query, a.Body)
		}
	}
	for _, q := range []string{"count=1001", "count=-1", "count=x", "after=nope", "before=nope"} {
		if a := h.do(t, http.MethodGet, "/events?topic="+topic+"&"+q, nil, nil); a.Status != http.StatusBadRequest {
			t.Errorf("retrieve %s: %s, want 400", q, a)
		}
	}
	if a := h.do(t, http.MethodGet, "/events?topic="+topic+"&count=1000", nil, nil); a.Status != http.StatusOK {
		t.Errorf("retrieve count=1000: %s, want 200", a)
	}

	// Superfeedr spellings.
	er, _ := h.getEvents(t, "hub.mode=retrieve&hub.topic="+topic+"&count=2&format=json")
	if !equalSeqs(seqsOf(er.Events), []uint64{14, 15}) {
		t.Errorf("hub.mode=retrieve: seqs %v, want [14 15]", seqsOf(er.Events))
	}

	// Atom, by format= and by Accept.
	type atomFeed struct {
		XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
		Entries []struct {
			ID string `xml:"id"`
		} `xml:"entry"`
	}
	type rssFeed struct {
		XMLName xml.Name `xml:"rss"`
		Version string   `xml:"version,attr"`
		Items   []struct {
			GUID string `xml:"guid"`
		} `xml:"channel>item"`
	}
	for _, c := range []struct {
		query, accept, ct string
		rss               bool
	}{
		{"&format=atom&count=4", "", "application/atom+xml", false},
		{"&count=4", "application/atom+xml", "application/atom+xml", false},
		{"&format=rss&count=4", "", "application/rss+xml", true},
		{"&count=4", "application/rss+xml", "application/rss+xml", true},
		{"&hub.mode=retrieve&format=atom&count=4", "", "application/atom+xml", false},
	} {
		hdr := http.Header{}
		if c.accept != "" {
			hdr.Set("Accept", c.accept)
		}
		a := h.do(t, http.MethodGet, "/events?topic="+topic+c.query, hdr, nil)
		if a.Status != http.StatusOK {
			t.Errorf("feed %q Accept %q: %s", c.query, c.accept, a)
			continue
		}
		if !strings.HasPrefix(a.Header.Get("Content-Type"), c.ct) {
			t.Errorf("feed %q Accept %q: Content-Type %q, want %s", c.query, c.accept, a.Header.Get("Content-Type"), c.ct)
		}
		if a.Header.Get("Hubbub-Cursor") != res[14].ID {
			t.Errorf("feed %q Accept %q: Hubbub-Cursor %q, want %q", c.query, c.accept, a.Header.Get("Hubbub-Cursor"), res[14].ID)
		}
		if err := wellFormed(a.Body); err != nil {
			t.Errorf("feed %q Accept %q: not well-formed XML: %v\n%s", c.query, c.accept, err, a.Body)
			continue
		}
		n := 0
		if c.rss {
			var f rssFeed
			if err := xml.Unmarshal(a.Body, &f); err != nil {
				t.Errorf("RSS %q: %v", c.query, err)
			}
			if f.Version != "2.0" {
				t.Errorf("RSS %q: version %q, want 2.0", c.query, f.Version)
			}
			n = len(f.Items)
		} else {
			var f atomFeed
			if err := xml.Unmarshal(a.Body, &f); err != nil {
				t.Errorf("Atom %q: %v", c.query, err)
			}
			n = len(f.Entries)
		}
		if n != 4 {
			t.Errorf("feed %q Accept %q: %d entries, want 4", c.query, c.accept, n)
		}
	}
}

// wellFormed reads every token of an XML document.
func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for range 1_000_000 {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("too many tokens")
}

// TestPublishContract: batches, raw bodies, idempotency and bad input.
func TestPublishContract(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")

	t.Run("array", func(t *testing.T) {
		res := h.publish(t, `[{"topics":["pc/a","pc/b"],"data":1},{"topic":"pc/a","data":2},{"topic":"pc/c","type":"x.y-z_1","data":3},{"topics":["pc/b"],"data":4}]`)
		want := []struct {
			topic string
			seq   uint64
		}{{"pc/a", 1}, {"pc/b", 1}, {"pc/a", 2}, {"pc/c", 1}, {"pc/b", 2}}
		if len(res) != len(want) {
			t.Fatalf("array publish: %d results %+v, want %d", len(res), res, len(want))
		}
		for i, w := range want {
			if res[i].Topic != w.topic || res[i].Seq != w.seq || res[i].ID != fmt.Sprintf("%s:%d", res[i].Epoch, w.seq) {
				t.Errorf("result %d: %+v, want %s seq %d", i, res[i], w.topic, w.seq)
			}
		}
		more := h.publish(t, `{"topic":"pc/a","data":5}`)
		if more[0].Seq != 3 {
			t.Errorf("next publish to pc/a: seq %d, want 3", more[0].Seq)
		}
		all := h.retrieveAll(t, "pc/a")
		checkGapFree(t, "pc/a", all)
		if len(all) != 3 || string(all[0].Data) != "1" || string(all[1].Data) != "2" || string(all[2].Data) != "5" {
			t.Errorf("pc/a history: %+v", all)
		}
		if c := h.retrieveAll(t, "pc/c"); len(c) != 1 || c[0].Type != "x.y-z_1" {
			t.Errorf("pc/c history: %+v", c)
		}
	})

	t.Run("raw", func(t *testing.T) {
		png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe binary \x00\x01")
		a := h.do(t, http.MethodPost, "/publish?topic=raw/png", ctHeader("image/png"), png)
		if a.Status != http.StatusOK {
			t.Fatalf("raw png publish: %s", a)
		}
		text := "hello, wörld\nline two \"quoted\""
		a = h.do(t, http.MethodPost, "/publish?topic=raw/text", ctHeader("text/plain; charset=utf-8"), []byte(text))
		if a.Status != http.StatusOK {
			t.Fatalf("raw text publish: %s", a)
		}
		ev := h.retrieveAll(t, "raw/png")
		if len(ev) != 1 {
			t.Fatalf("raw/png: %d events", len(ev))
		}
		if !bytes.Equal(ev[0].DataBase64, png) || ev[0].Data != nil || ev[0].ContentType != "image/png" {
			t.Errorf("raw/png: data_base64 %q data %s content_type %q; want the exact bytes %q as data_base64, image/png", ev[0].DataBase64, ev[0].Data, ev[0].ContentType, png)
		}
		ev = h.retrieveAll(t, "raw/text")
		if len(ev) != 1 {
			t.Fatalf("raw/text: %d events", len(ev))
		}
		var s string
		if err := json.Unmarshal(ev[0].Data, &s); err != nil || s != text || ev[0].DataBase64 != nil {
			t.Errorf("raw/text: data %s (%v), data_base64 %q; want the string %q", ev[0].Data, err, ev[0].DataBase64, text)
		}
		if !strings.HasPrefix(ev[0].ContentType, "text/plain") {
			t.Errorf("raw/text: content_type %q", ev[0].ContentType)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		body := `{"topic":"idem/a","idempotency_key":"k-1","data":{"v":1}}`
		first := h.publish(t, body)
		again := h.publish(t, body)
		if len(again) != 1 || again[0].ID != first[0].ID || again[0].Seq != first[0].Seq {
			t.Errorf("repeated idempotency_key: %+v, want the first answer %+v", again, first)
		}
		er, _ := h.getEvents(t, "topic=idem/a&count=1000")
		if len(er.Events) != 1 {
			t.Errorf("after a repeated idempotency_key, history holds %d events, want 1", len(er.Events))
		}
		other := h.publish(t, `{"topic":"idem/a","idempotency_key":"k-2","data":{"v":2}}`)
		if other[0].Seq != 2 {
			t.Errorf("new idempotency_key: seq %d, want 2", other[0].Seq)
		}
	})

	t.Run("fields", func(t *testing.T) {
		h.publish(t, `{"topic":"f/a","type":"update","key":"doc-1","tags":["x","y"],"geo":{"lat":48.5,"lon":-2.25},"data":{"v":[1,2]}}`)
		ev := h.retrieveAll(t, "f/a")
		if len(ev) != 1 {
			t.Fatalf("f/a: %d events", len(ev))
		}
		e := ev[0]
		if e.Type != "update" || e.Key != "doc-1" || strings.Join(e.Tags, ",") != "x,y" || string(e.Data) != `{"v":[1,2]}` || e.ContentType != "" {
			t.Errorf("event with every field: %+v", e)
		}
		a := h.do(t, http.MethodGet, "/events?topic=f/a", nil, nil)
		if !bytes.Contains(a.Body, []byte(`"geo":{"lat":48.5,"lon":-2.25}`)) {
			t.Errorf("event JSON %s lacks the geo it was published with", a.Body)
		}
		// Defaults: type message, no key/tags/geo/content_type shown.
		h.publish(t, `{"topic":"f/b","data":null}`)
		a = h.do(t, http.MethodGet, "/events?topic=f/b", nil, nil)
		var er struct{ Events []map[string]json.RawMessage }
		_ = json.Unmarshal(a.Body, &er)
		if len(er.Events) != 1 || string(er.Events[0]["type"]) != `"message"` {
			t.Fatalf("f/b: %s", a.Body)
		}
		for _, f := range []string{"key", "tags", "geo", "content_type"} {
			if _, ok := er.Events[0][f]; ok {
				t.Errorf("event without %s shows %q: %s", f, f, a.Body)
			}
		}
	})

	t.Run("raw-multi-topic", func(t *testing.T) {
		a := h.do(t, http.MethodPost, "/publish?topic=rm/a&topic=rm/b", http.Header{"Content-Type": {"text/plain"}, "Idempotency-Key": {"rm-1"}}, []byte("hi"))
		var pr pubResponse
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &pr) != nil || len(pr.Events) != 2 || pr.Events[0].Topic != "rm/a" || pr.Events[1].Topic != "rm/b" {
			t.Fatalf("raw publish to two topics: %s", a)
		}
		a = h.do(t, http.MethodPost, "/publish?topic=rm/a&topic=rm/b", http.Header{"Content-Type": {"text/plain"}, "Idempotency-Key": {"rm-1"}}, []byte("hi"))
		var again pubResponse
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &again) != nil || len(again.Events) != 2 || again.Events[0].ID != pr.Events[0].ID || again.Events[1].ID != pr.Events[1].ID {
			t.Errorf("repeated Idempotency-Key on a raw publish: %s, want the first answer %+v", a, pr.Events)
		}
		for _, topic := range []string{"rm/a", "rm/b"} {
			if n := len(h.retrieveAll(t, topic)); n != 1 {
				t.Errorf("%s holds %d events, want 1", topic, n)
			}
		}
		// Retrieve over both topics: a multi-topic cursor.
		er, _ := h.getEvents(t, "topic=rm/a&topic=rm/b")
		if len(er.Events) != 2 || !strings.HasPrefix(er.Cursor, "m.") {
			t.Errorf("retrieve of two topics: %d events, cursor %q (want 2 and m....)", len(er.Events), er.Cursor)
		}
		er2, _ := h.getEvents(t, "topic=rm/a&topic=rm/b&after="+url.QueryEscape(er.Cursor))
		if len(er2.Events) != 0 {
			t.Errorf("retrieve of two topics after their cursor: %d events, want 0", len(er2.Events))
		}
	})

	t.Run("topic-1024-ok", func(t *testing.T) {
		topic := strings.Repeat("t", 1024)
		res := h.publish(t, `{"topic":"`+topic+`","data":1}`)
		if len(res) != 1 || res[0].Seq != 1 || res[0].Topic != topic {
			t.Errorf("topic of 1024 bytes: %+v", res)
		}
		if n := len(h.retrieveAll(t, topic)); n != 1 {
			t.Errorf("topic of 1024 bytes holds %d events, want 1", n)
		}
	})

	t.Run("type-64-ok", func(t *testing.T) {
		res := h.publish(t, `{"topic":"ok/type64","type":"`+strings.Repeat("t", 64)+`","data":1}`)
		if len(res) != 1 || res[0].Seq != 1 {
			t.Errorf("type of 64 chars: %+v", res)
		}
	})

	t.Run("bad-input", func(t *testing.T) {
		long := strings.Repeat("a", 1025)
		cases := []struct {
			name, path, ct, body string
			status               int
		}{
			{"malformed JSON", "/publish", "application/json", `{"topic":"bad/1","data":`, 400},
			{"malformed JSON curl", "/publish", "application/x-www-form-urlencoded", `{"topic":"bad/1"`, 400},
			{"trailing garbage", "/publish", "application/json", `{"topic":"bad/1","data":1} x`, 400},
			{"missing topic", "/publish", "application/json", `{"data":{"a":1}}`, 400},
			{"empty topic", "/publish", "application/json", `{"topic":"","data":1}`, 400},
			{"empty topics", "/publish", "application/json", `{"topics":[],"data":1}`, 400},
			{"topic 1025 bytes", "/publish", "application/json", `{"topic":"` + long + `","data":1}`, 400},
			{"raw topic 1025 bytes", "/publish?topic=" + long, "text/plain", `hello`, 400},
			{"bad type", "/publish", "application/json", `{"topic":"bad/1","type":"bad type!","data":1}`, 400},
			{"type 65 chars", "/publish", "application/json", `{"topic":"bad/1","type":"` + strings.Repeat("t", 65) + `","data":1}`, 400},
			{"unknown field", "/publish", "application/json", `{"topic":"bad/1","dat":1}`, 400},
			{"one bad in array", "/publish", "application/json", `[{"topic":"bad/1","data":1},{"topic":"","data":2}]`, 400},
			{"empty body", "/publish", "application/json", ``, 400},
			{"empty raw body (curl --data-binary @missing-file)", "/publish?topic=bad/1", "image/png", ``, 400},
			{"empty raw body, no type", "/publish?topic=bad/1", "", ``, 400},
			{"text without topic", "/publish", "text/plain", `hello`, 400},
			{"xml without topic", "/publish", "application/xml", `<a topic="bad/1"/>`, 415},
		}
		before := h.metric(t, "hubbub_events_published_total")
		for _, c := range cases {
			a := h.do(t, http.MethodPost, c.path, ctHeader(c.ct), []byte(c.body))
			if a.Status != c.status {
				t.Errorf("%s: %s, want %d", c.name, a, c.status)
			}
			if !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") || len(bytes.TrimSpace(a.Body)) == 0 {
				t.Errorf("%s: answer %s, want a plain-text reason", c.name, a)
			}
		}
		if a := h.do(t, http.MethodGet, "/publish", nil, nil); a.Status != http.StatusMethodNotAllowed {
			t.Errorf("GET /publish: %s, want 405", a)
		}
		if n := len(h.retrieveAll(t, "bad/1")); n != 0 {
			t.Errorf("bad input stored %d events in bad/1", n)
		}
		if after := h.metric(t, "hubbub_events_published_total"); after != before {
			t.Errorf("hubbub_events_published_total went from %v to %v over bad input only", before, after)
		}
	})

	t.Run("max-body", func(t *testing.T) {
		small := startHub(t, "", "--max-body", "1000")
		body := `{"topic":"big/a","data":"` + strings.Repeat("x", 1100) + `"}`
		a := small.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(body))
		if a.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("JSON body over --max-body: %s, want 413 text/plain", a)
		}
		a = small.do(t, http.MethodPost, "/publish?topic=big/a", ctHeader("application/octet-stream"), bytes.Repeat([]byte{7}, 1001))
		if a.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("raw body over --max-body: %s, want 413", a)
		}
		if n := len(small.retrieveAll(t, "big/a")); n != 0 {
			t.Errorf("over-size bodies stored %d events", n)
		}
		// Just under the limit is fine.
		ok := `{"topic":"big/a","data":"` + strings.Repeat("x", 900) + `"}`
		if r := small.publish(t, ok); r[0].Seq != 1 {
			t.Errorf("body under the limit: %+v", r)
		}
	})
}

// TestAuth: with a publish key, a bearer key is required.
func TestAuth(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--publish-key", "secret1", "--publish-key", "secret2")
	body := []byte(`{"topic":"auth/a","data":1}`)
	for _, c := range []struct {
		name, auth string
		status     int
	}{
		{"no header", "", 401},
		{"wrong key", "Bearer nope", 401},
		{"not bearer", "Basic c2VjcmV0MQ==", 401},
		{"empty bearer", "Bearer ", 401},
		{"right key", "Bearer secret1", 200},
		{"second key", "Bearer secret2", 200},
	} {
		hdr := ctHeader("application/json")
		if c.auth != "" {
			hdr.Set("Authorization", c.auth)
		}
		a := h.do(t, http.MethodPost, "/publish", hdr, body)
		if a.Status != c.status {
			t.Errorf("%s: %s, want %d", c.name, a, c.status)
		}
	}
	if ev := h.retrieveAll(t, "auth/a"); len(ev) != 2 {
		t.Errorf("auth/a holds %d events, want 2 (only the authorised publishes)", len(ev))
	}
	// Loopback-only mode (no keys) is the default of the other tests; its
	// start-up log says so.
	open := startHub(t, "")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(open.Stderr(), "loopback") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval: the line follows "listening"
	}
	if !strings.Contains(open.Stderr(), "loopback") {
		t.Errorf("without publish keys the start-up log does not mention loopback-only publishing:\n%s", open.Stderr())
	}
	if r := open.publish(t, `{"topic":"auth/b","data":1}`); r[0].Seq != 1 {
		t.Errorf("loopback publish without keys: %+v", r)
	}
}
