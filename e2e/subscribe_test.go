package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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

// TestPatternLimits (audit finding 1): a pattern with more than four '**'
// or more than 32 segments is refused with 400 naming the limit, and the
// costliest pattern allowed, against a 500-segment topic, neither stalls
// the hub nor matches wrongly.
func TestPatternLimits(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	for pattern, reason := range map[string]string{
		"**/a/**/b/**/c/**/d/**":       "limit is 4",
		strings.Repeat("x/", 32) + "*": "limit is 32",
	} {
		q := "topic=" + url.QueryEscape(pattern)
		a := h.do(t, http.MethodGet, "/events?"+q+"&wait=poll&timeout=1", nil, nil)
		if a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), reason) {
			t.Errorf("poll %q: %s, want 400 with %q", pattern, a, reason)
		}
		if s, a := h.trySSE(t, q, "", false); s != nil || a.Status != http.StatusBadRequest {
			t.Errorf("SSE %q: status %d, want 400", pattern, a.Status)
		}
	}
	s := h.openSSE(t, "topic="+url.QueryEscape("**/a/**/a/**/a/**/b"), "", false)
	defer s.Close()
	long := strings.Repeat("a/", 499) + "a" // 500 segments, no b
	h.publish(t, `{"topic":"`+long+`","data":"no"}`)
	h.publish(t, `{"topic":"`+long+`/b","data":"yes"}`)
	if w := decodeData(t, s.next(t, 10*time.Second)); w.Topic != long+"/b" {
		t.Fatalf("adversarial pattern: got topic of %d bytes, want the one ending in /b", len(w.Topic))
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
	// Comments are lone lines: no blank line ends a block without data
	// (clients such as @microsoft/fetch-event-source dispatch those as
	// empty messages; see also TestNodeSSEComments).
	if n := emptyDispatches(s.raw.String()); n != 0 {
		t.Errorf("idle SSE stream: %d blank lines end a block without data:\n%q", n, s.raw.String())
	}
}

// emptyDispatches counts the blank lines of an SSE stream that end a block
// with no data line: what a client that does not skip empty events would
// dispatch as an empty message.
func emptyDispatches(raw string) int {
	n, data := 0, false
	for _, line := range strings.Split(raw, "\n") {
		switch {
		case line == "":
			if !data {
				n++
			}
			data = false
		case strings.HasPrefix(line, "data:"):
			data = true
		}
	}
	if strings.HasSuffix(raw, "\n") { // the split's last element is no line
		if !data {
			n--
		}
	}
	return n
}
