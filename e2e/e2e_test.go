package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSSELive: an SSE subscriber gets an event published the way `curl -d`
// sends it (form-urlencoded content type, JSON body), with id EPOCH:SEQ and
// the event JSON as data; retry: comes once.
func TestSSELive(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := h.do(t, http.MethodGet, p, nil, nil); a.Status != http.StatusOK {
			t.Errorf("GET %s: %s", p, a)
		}
	}
	s := h.openSSE(t, "topic=photos/user/42", "", true)
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("SSE Content-Type = %q, want text/event-stream", ct)
	}

	var results []pubResult
	for i, body := range []string{
		`{"topic":"photos/user/42","data":{"title":"kitten"}}`,
		`{"topic":"photos/user/42","type":"like","data":{"title":"puppy"}}`,
	} {
		a := h.do(t, http.MethodPost, "/publish", ctHeader("application/x-www-form-urlencoded"), []byte(body))
		if a.Status != http.StatusOK {
			t.Fatalf("publish %d as curl -d: %s", i, a)
		}
		var pr pubResponse
		if err := json.Unmarshal(a.Body, &pr); err != nil || len(pr.Events) != 1 {
			t.Fatalf("publish answer %s: %v", a.Body, err)
		}
		r := pr.Events[0]
		if r.Topic != "photos/user/42" || r.Seq != uint64(i+1) || r.Epoch == "" || r.ID != fmt.Sprintf("%s:%d", r.Epoch, r.Seq) {
			t.Errorf("publish result %+v: want topic photos/user/42, seq %d, id EPOCH:SEQ", r, i+1)
		}
		if !strings.Contains(r.Time, ".") {
			t.Errorf("publish time %q has no sub-second part", r.Time)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			t.Errorf("publish time %q: %v", r.Time, err)
		}
		results = append(results, r)

		ev := s.next(t, 10*time.Second)
		if ev.ID != r.ID {
			t.Errorf("SSE id = %q, want %q (EPOCH:SEQ)", ev.ID, r.ID)
		}
		wantType := "message"
		if i == 1 {
			wantType = "like"
		}
		if ev.Event != wantType {
			t.Errorf("SSE event type = %q, want %q", ev.Event, wantType)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			t.Fatalf("SSE data %q: %v", ev.Data, err)
		}
		for _, f := range []string{"id", "topic", "seq", "type", "time", "data"} {
			if _, ok := m[f]; !ok {
				t.Errorf("SSE data %s has no %q", ev.Data, f)
			}
		}
		w := decodeData(t, ev)
		if w.Topic != "photos/user/42" || w.Seq != r.Seq || w.Type != wantType || w.Time != r.Time || w.ID != r.ID {
			t.Errorf("SSE event %+v does not match publish result %+v", w, r)
		}
		var want, got bytes.Buffer
		_ = json.Compact(&want, []byte(fmt.Sprintf(`{"title":%q}`, []string{"kitten", "puppy"}[i])))
		_ = json.Compact(&got, w.Data)
		if got.String() != want.String() {
			t.Errorf("SSE data.data = %s, want %s", w.Data, want.String())
		}
	}
	if results[0].Epoch != results[1].Epoch {
		t.Errorf("epoch changed between publishes: %q, %q", results[0].Epoch, results[1].Epoch)
	}
	a := h.do(t, http.MethodGet, "/metrics", nil, nil)
	metrics := string(a.Body)
	if v := metricValue(metrics, `hubbub_events_delivered_total{transport="sse"}`); v < 2 {
		t.Errorf("hubbub_events_delivered_total{transport=\"sse\"} = %v, want >= 2", v)
	}
	if v := metricValue(metrics, `hubbub_connections{transport="sse"}`); v != 1 {
		t.Errorf("hubbub_connections{transport=\"sse\"} = %v with one SSE stream open", v)
	}
	if v := metricValue(metrics, "hubbub_events_published_total"); v != 2 {
		t.Errorf("hubbub_events_published_total = %v, want 2", v)
	}
	if v := metricValue(metrics, "hubbub_store_append_seconds_count"); v < 1 {
		t.Errorf("hubbub_store_append_seconds_count = %v, want >= 1 (append latency histogram)", v)
	}
	raw := s.raw.String()
	if n := countLinePrefix(raw, "retry:"); n != 1 {
		t.Errorf("retry: sent %d times, want once; stream:\n%s", n, raw)
	}
	if s.r.Retry <= 0 {
		t.Errorf("retry: value %d, want > 0", s.r.Retry)
	}
}

func countLinePrefix(text, prefix string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// TestSSEResume: Last-Event-ID, ?last_event_id= and ?after= resume after
// the given event; an unparseable cursor is 400.
func TestSSEResume(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	const topic = "resume/a"
	res := h.publishN(t, topic, 5)
	id2 := res[1].ID
	next := uint64(6)

	check := func(name string, s *sseStream) {
		t.Helper()
		got := s.expectSeqs(t, topic, 3, 4, 5)
		if got[2].ID != res[4].ID {
			t.Errorf("%s: id of seq 5 = %q, want %q", name, got[2].ID, res[4].ID)
		}
		// Nothing else came from history: the next event is a new one.
		h.publishN(t, "resume/other", 1)
		r := h.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, next))
		if r[0].Seq != next {
			t.Fatalf("publish: seq %d, want %d", r[0].Seq, next)
		}
		s.expectSeqs(t, topic, next)
		s.Close()
		next++
	}
	check("Last-Event-ID", h.openSSE(t, "topic="+topic, id2, false))
	// Later publishes moved the topic on; event 2 is still the resume point.
	want := []uint64{3, 4, 5}
	for _, q := range []string{"after=", "last_event_id="} {
		s := h.openSSE(t, "topic="+topic+"&"+q+url.QueryEscape(id2), "", false)
		s.expectSeqs(t, topic, want...)
		for seq := uint64(6); seq < next; seq++ {
			s.expectSeqs(t, topic, seq)
		}
		r := h.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, next))
		s.expectSeqs(t, topic, r[0].Seq)
		next++
		s.Close()
	}
	// A bare SEQ is accepted on input.
	s := h.openSSE(t, "topic="+topic+"&after=2", "", false)
	s.expectSeqs(t, topic, 3, 4, 5)
	s.Close()

	for _, bad := range []string{"abc", "x:y", "1:-3", "m.!!!"} {
		if s, a := h.trySSE(t, "topic="+topic, bad, false); s != nil {
			t.Errorf("Last-Event-ID %q: status 200, want 400", bad)
			s.Close()
		} else if a.Status != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: %s, want 400", bad, a)
		}
		if s, a := h.trySSE(t, "topic="+topic+"&after="+url.QueryEscape(bad), "", false); s != nil {
			t.Errorf("after=%q: status 200, want 400", bad)
			s.Close()
		} else if a.Status != http.StatusBadRequest {
			t.Errorf("after=%q: %s, want 400", bad, a)
		}
	}
}

// waitRetained waits until retrieve holds exactly n events of topic (the
// count limit trims).
func waitRetained(t *testing.T, h *hubProc, topic string, n int) []wireEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var er eventsResponse
	for time.Now().Before(deadline) {
		er, _ = h.getEvents(t, "topic="+topic+"&count=1000&after=0")
		if len(er.Events) == n {
			return er.Events
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s: history holds %d events (%v), want %d after trimming", topic, len(er.Events), seqsOf(er.Events), n)
	return nil
}

// TestReset: a cursor behind trimmed history or of another epoch gets
// event: reset first (with the earliest position still held), then the
// held events; long-poll says "reset".
func TestReset(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--history-max-events", "5")
	const topic = "reset/a"
	res := h.publishN(t, topic, 12)
	epoch := res[0].Epoch
	held := waitRetained(t, h, topic, 5)
	if !equalSeqs(seqsOf(held), seqRange(8, 12)) {
		t.Fatalf("held seqs %v, want 8..12", seqsOf(held))
	}
	wantCursor := epoch + ":7"

	checkReset := func(name, lastID, reason string) {
		t.Helper()
		s := h.openSSE(t, "topic="+topic, lastID, false)
		ev := s.next(t, 10*time.Second)
		if ev.Event != "reset" {
			t.Fatalf("%s: first frame is event %q data %s, want event: reset", name, ev.Event, ev.Data)
		}
		var rj resetJSON
		if err := json.Unmarshal([]byte(ev.Data), &rj); err != nil {
			t.Fatalf("%s: reset data %q: %v", name, ev.Data, err)
		}
		want := resetJSON{Topic: topic, Reason: reason, Cursor: wantCursor}
		if rj != want {
			t.Errorf("%s: reset %+v, want %+v", name, rj, want)
		}
		if ev.ID != wantCursor {
			t.Errorf("%s: the reset frame's id is %q, want its cursor %q", name, ev.ID, wantCursor)
		}
		got := s.expectSeqs(t, topic, 8, 9, 10, 11, 12)
		if got[4].ID != res[11].ID {
			t.Errorf("%s: last id %q, want %q", name, got[4].ID, res[11].ID)
		}
		s.Close()
	}
	checkReset("trimmed cursor", res[0].ID, "trimmed")
	checkReset("epoch mismatch", "zzzz:3", "epoch")

	er, _ := h.getEvents(t, "topic="+topic+"&wait=poll&timeout=5&after="+url.QueryEscape(res[0].ID))
	if er.Reset == nil {
		t.Errorf("long-poll after a trimmed cursor: no \"reset\" in the answer")
	} else if want := (resetJSON{Topic: topic, Reason: "trimmed", Cursor: wantCursor}); *er.Reset != want {
		t.Errorf("long-poll reset %+v, want %+v", *er.Reset, want)
	}
	// The events held after the reset come in the same answer: a long-poll
	// answers at once when there are events after the cursor.
	if !equalSeqs(seqsOf(er.Events), seqRange(8, 12)) || er.Cursor != res[11].ID {
		t.Errorf("long-poll after reset: seqs %v cursor %q, want 8..12 and %q", seqsOf(er.Events), er.Cursor, res[11].ID)
	}
	// Retrieve with after= says so too.
	er, _ = h.getEvents(t, "topic="+topic+"&after="+url.QueryEscape(res[0].ID))
	if er.Reset == nil || er.Reset.Reason != "trimmed" || er.Reset.Cursor != wantCursor {
		t.Errorf("retrieve after a trimmed cursor: reset %+v, want trimmed %s", er.Reset, wantCursor)
	}
}

// TestLongPoll: wait=poll answers at once when events are there, holds
// until a publish otherwise, and times out with an empty list.
func TestLongPoll(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	const topic = "poll/a"
	res := h.publishN(t, topic, 3)

	start := time.Now()
	er, _ := h.getEvents(t, "topic="+topic+"&wait=poll&timeout=20&after="+url.QueryEscape(res[0].ID))
	if !equalSeqs(seqsOf(er.Events), []uint64{2, 3}) || er.Cursor != res[2].ID {
		t.Fatalf("poll after seq 1: seqs %v cursor %q, want [2 3] %q", seqsOf(er.Events), er.Cursor, res[2].ID)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("poll with events waiting took %v; it should answer at once", el)
	}

	// Nothing new: the poll holds until a publish.
	type result struct {
		er  eventsResponse
		a   answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := h.try(http.MethodGet, "/events?topic="+topic+"&wait=poll&timeout=30&after="+url.QueryEscape(res[2].ID), nil, nil)
		var r eventsResponse
		if err == nil {
			err = json.Unmarshal(a.Body, &r)
		}
		done <- result{r, a, err}
	}()
	h.waitMetric(t, `hubbub_connections{transport="poll"}`, 10*time.Second, func(v float64) bool { return v == 1 })
	select {
	case r := <-done:
		t.Fatalf("poll answered before anything was published: %v %s", r.err, r.a)
	default:
	}
	r4 := h.publish(t, `{"topic":"`+topic+`","data":{"n":4}}`)[0]
	select {
	case r := <-done:
		if r.err != nil || r.a.Status != http.StatusOK {
			t.Fatalf("held poll: %v %s", r.err, r.a)
		}
		if !equalSeqs(seqsOf(r.er.Events), []uint64{4}) || r.er.Cursor != r4.ID {
			t.Errorf("held poll: seqs %v cursor %q, want [4] %q", seqsOf(r.er.Events), r.er.Cursor, r4.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("held poll did not answer within 10s of a publish")
	}
	h.waitMetric(t, `hubbub_connections{transport="poll"}`, 10*time.Second, func(v float64) bool { return v == 0 })

	// timeout=1 with nothing new: empty list, same cursor.
	start = time.Now()
	er, a := h.getEvents(t, "topic="+topic+"&wait=poll&timeout=1&after="+url.QueryEscape(r4.ID))
	el := time.Since(start)
	if len(er.Events) != 0 || er.Cursor != r4.ID {
		t.Errorf("timed-out poll: seqs %v cursor %q, want none and %q", seqsOf(er.Events), er.Cursor, r4.ID)
	}
	if !bytes.Contains(a.Body, []byte(`"events":[]`)) {
		t.Errorf("timed-out poll answer %s: want \"events\":[]", a.Body)
	}
	if el < 900*time.Millisecond || el > 15*time.Second {
		t.Errorf("timeout=1 poll answered after %v, want about 1s", el)
	}

	// The most a client may ask for is 120 s; with events waiting the
	// answer is still immediate.
	er, _ = h.getEvents(t, "topic="+topic+"&wait=poll&timeout=120&after="+url.QueryEscape(res[0].ID))
	if len(er.Events) != 3 {
		t.Errorf("poll timeout=120 after seq 1: %d events, want 3", len(er.Events))
	}
	for _, q := range []string{"wait=poll&after=garbage", "wait=stream&after=garbage", "wait=poll&after=abc:xyz"} {
		if a := h.do(t, http.MethodGet, "/events?topic="+topic+"&"+q, nil, nil); a.Status != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", q, a)
		}
	}
	for _, q := range []string{"timeout=121", "timeout=10m", "timeout=abc"} {
		if a := h.do(t, http.MethodGet, "/events?topic="+topic+"&wait=poll&"+q, nil, nil); a.Status != http.StatusBadRequest {
			t.Errorf("poll %s: %s, want 400", q, a)
		}
	}
}

// TestStream: wait=stream&count=3 gives the last 3 events as NDJSON, then
// live ones.
func TestStream(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	const topic = "stream/a"
	h.publishN(t, topic, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/events?topic="+topic+"&wait=stream&count=3", nil)
	resp, err := streamc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("wait=stream: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Errorf("wait=stream Content-Type %q, want application/x-ndjson", ct)
	}
	ls := newLineStream(t, resp.Body)
	nextEvent := func() wireEvent {
		t.Helper()
		for range 100 {
			line := ls.next(t, 10*time.Second)
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("NDJSON line %q: %v", line, err)
			}
			if _, ok := m["id"]; !ok {
				if _, hb := m["heartbeat"]; !hb {
					t.Fatalf("NDJSON line %q is neither an event nor a heartbeat", line)
				}
				continue
			}
			var w wireEvent
			_ = json.Unmarshal([]byte(line), &w)
			return w
		}
		t.Fatalf("NDJSON: 100 lines without an event")
		return wireEvent{}
	}
	for _, want := range []uint64{3, 4, 5} {
		if w := nextEvent(); w.Topic != topic || w.Seq != want {
			t.Fatalf("NDJSON: %s seq %d, want %s seq %d", w.Topic, w.Seq, topic, want)
		}
	}
	// Live: the stream was subscribed before its headers came.
	for n := 6; n <= 7; n++ {
		h.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, n))
		if w := nextEvent(); w.Seq != uint64(n) || string(w.Data) != fmt.Sprintf(`{"n":%d}`, n) {
			t.Fatalf("NDJSON live: seq %d data %s, want seq %d", w.Seq, w.Data, n)
		}
	}
}

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

// TestPatterns: a pattern subscription gets matching topics only, and its
// multi-topic cursor resumes exactly.
func TestPatterns(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	s := h.openSSE(t, "topic="+url.QueryEscape("photos/tag/*"), "", false)
	h.publish(t, `{"topic":"photos/user/1","data":"no"}`)
	h.publish(t, `{"topic":"photos/tag/kitten/deep","data":"no"}`)
	h.publish(t, `{"topic":"photos/tag/kitten","data":"k1"}`)
	ev := s.next(t, 10*time.Second)
	w := decodeData(t, ev)
	if w.Topic != "photos/tag/kitten" || w.Seq != 1 {
		t.Fatalf("pattern photos/tag/*: first event %s seq %d, want photos/tag/kitten seq 1", w.Topic, w.Seq)
	}
	if !strings.HasPrefix(ev.ID, "m.") {
		t.Errorf("pattern subscription id %q: want a multi-topic cursor m....", ev.ID)
	}
	h.publish(t, `{"topic":"photos/tag/puppy","data":"p1"}`)
	h.publish(t, `{"topic":"photos/tag/kitten","data":"k2"}`)
	got := map[string][]uint64{}
	var lastID string
	for range 2 {
		ev := s.next(t, 10*time.Second)
		w := decodeData(t, ev)
		got[w.Topic] = append(got[w.Topic], w.Seq)
		lastID = ev.ID
	}
	if !equalSeqs(got["photos/tag/puppy"], []uint64{1}) || !equalSeqs(got["photos/tag/kitten"], []uint64{2}) {
		t.Fatalf("pattern live: got %v, want puppy [1] and kitten [2]", got)
	}
	s.Close()

	// While disconnected: more on both seen topics, and noise.
	h.publish(t, `{"topic":"photos/tag/kitten","data":"k3"}`)
	h.publish(t, `{"topic":"photos/user/1","data":"no"}`)
	h.publish(t, `{"topic":"photos/tag/kitten","data":"k4"}`)
	h.publish(t, `{"topic":"photos/tag/puppy","data":"p2"}`)

	s = h.openSSE(t, "topic="+url.QueryEscape("photos/tag/*"), lastID, false)
	got = map[string][]uint64{}
	for range 3 {
		w := decodeData(t, s.next(t, 10*time.Second))
		got[w.Topic] = append(got[w.Topic], w.Seq)
	}
	if !equalSeqs(got["photos/tag/kitten"], []uint64{3, 4}) || !equalSeqs(got["photos/tag/puppy"], []uint64{2}) {
		t.Fatalf("resume with Last-Event-ID: got %v, want kitten [3 4] and puppy [2]", got)
	}
	// Exactly once: the next thing is a new live event.
	h.publish(t, `{"topic":"photos/tag/kitten","data":"k5"}`)
	ev = s.next(t, 10*time.Second)
	if w := decodeData(t, ev); w.Topic != "photos/tag/kitten" || w.Seq != 5 {
		t.Fatalf("after resume: %s seq %d, want photos/tag/kitten seq 5 (a duplicate or stray event came first)", w.Topic, w.Seq)
	}
	// ?after= with the multi-topic cursor on long-poll resumes too.
	er, _ := h.getEvents(t, "topic="+url.QueryEscape("photos/tag/*")+"&wait=poll&timeout=5&after="+url.QueryEscape(lastID))
	var ks []uint64
	for _, e := range er.Events {
		if e.Topic == "photos/tag/kitten" {
			ks = append(ks, e.Seq)
		}
	}
	if !equalSeqs(ks, []uint64{3, 4, 5}) {
		t.Errorf("long-poll with the pattern cursor: kitten seqs %v, want [3 4 5]", ks)
	}
	// A one-topic cursor is no good for a pattern.
	if s2, a := h.trySSE(t, "topic="+url.QueryEscape("photos/tag/*"), "3", false); s2 != nil || a.Status != http.StatusBadRequest {
		t.Errorf("pattern subscription with a one-topic cursor: status %d, want 400", a.Status)
	}
}

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

	out, errOut, code := run("publish", "-t", "cli/a", "--server", h.URL, `{"a":1}`)
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
	tail := exec.CommandContext(ctx, hubBinary, "tail", "-t", "cli/tail", "--server", h.URL, "--max", "2")
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

// TestHeartbeat: idle SSE streams get a comment and NDJSON streams a
// heartbeat line every --heartbeat.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--heartbeat", "1s")
	s := h.openSSE(t, "topic=hb/a", "", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/events?topic=hb/a&wait=stream", nil)
	resp, err := streamc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ls := newLineStream(t, resp.Body)
	line := ls.next(t, 5*time.Second)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil || m["heartbeat"] != true {
		t.Errorf("first line of an idle NDJSON stream: %q, want a heartbeat line", line)
	}
	// By now the SSE stream has had a second or more of quiet too.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && countLinePrefix(s.raw.String(), ":") < 2 {
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if n := countLinePrefix(s.raw.String(), ":"); n < 2 {
		t.Errorf("idle SSE stream: %d comment lines in 1s+ with --heartbeat 1s, want an opening one and a heartbeat:\n%s", n, s.raw.String())
	}
}
