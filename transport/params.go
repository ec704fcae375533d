package transport

import (
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
	"github.com/hubbub/hubbub/hub"
)

// query is a parsed GET /events request. Parsing checks everything, so a
// handler that gets a query never has to answer 400 for its parameters.
type query struct {
	topics    []string
	single    string       // the one concrete topic, or ""
	cursor    event.Cursor // after / last_event_id / Last-Event-ID
	watermark time.Time    // the cursor's, for pattern resume (zero: none)
	hasCursor bool
	before    event.Cursor
	count     int
	countSet  bool
	timeout   time.Duration      // 0: the default
	wait      string             // "", "poll" or "stream"
	format    string             // "", "json", "atom", "rss" or "sse"
	filter    *filter.Filter     // nil: every event
	fields    *filter.Projection // nil: data as published
	coalesce  time.Duration      // coalesce_ms; -1 when not given
	compact   bool               // compact=1: the lean event shape on live streams
	values    url.Values         // the parameters as given (for the self URL)
}

const maxTopicsPerRequest = 256

// parseQuery reads the parameters of GET /events. Superfeedr's spellings
// (hub.mode=retrieve, hub.topic) are accepted as aliases.
func parseQuery(r *http.Request) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, event.Invalid("query string: %v", err)
	}
	return parseValues(v, r.Header.Get("Last-Event-ID"))
}

func parseValues(v url.Values, lastEventID string) (query, error) {
	q := query{values: v}
	var err error
	if m := v.Get("hub.mode"); m != "" && m != "retrieve" {
		return q, event.Invalid("hub.mode=%q is not served here; GET /events takes hub.mode=retrieve (subscribe through POST /hub)", m)
	}
	q.topics = append(append(q.topics, v["topic"]...), v["hub.topic"]...)
	if len(q.topics) == 0 {
		return q, event.Invalid("no topic given: add ?topic=NAME")
	}
	if len(q.topics) > maxTopicsPerRequest {
		return q, event.Invalid("more than %d topics in one request", maxTopicsPerRequest)
	}
	concrete := 0
	for _, t := range q.topics {
		if event.IsPattern(t) {
			if _, err := event.CompilePattern(t); err != nil {
				return q, err
			}
			continue
		}
		if err := event.ValidateTopic(t); err != nil {
			return q, err
		}
		concrete++
	}
	if concrete == 1 && len(q.topics) == 1 {
		q.single = q.topics[0]
	}

	switch q.wait = v.Get("wait"); q.wait {
	case "", "poll", "stream":
	default:
		return q, event.Invalid("wait=%q: use wait=poll or wait=stream", q.wait)
	}
	switch q.format = strings.ToLower(v.Get("format")); q.format {
	case "", "json", "atom", "rss", "sse":
	default:
		return q, event.Invalid("format=%q: use json, atom, rss or sse", q.format)
	}

	// The cursor: Last-Event-ID (what EventSource sends on reconnect) wins
	// over the query, so a reconnect resumes where it stopped even when the
	// URL still carries the first cursor.
	raw := lastEventID
	for _, name := range []string{"last_event_id", "after"} {
		if raw == "" {
			raw = v.Get(name)
		}
	}
	if raw != "" {
		if q.cursor, q.watermark, err = event.ParseWatermarked(raw, q.single); err != nil {
			return q, err
		}
		q.hasCursor = true
	}
	if b := v.Get("before"); b != "" {
		if q.before, err = event.ParseCursor(b, q.single); err != nil {
			return q, err
		}
	}
	if c := v.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return q, event.Invalid("count=%q is not a whole number", c)
		}
		if n > hub.MaxCount {
			return q, event.Invalid("count=%d is more than the most, %d", n, hub.MaxCount)
		}
		q.count, q.countSet = n, true
	}
	// tag=, tags_all=, near=, where.PATH=, q=, fields= and filter=.
	if q.filter, q.fields, err = filter.FromQuery(v); err != nil {
		return q, err
	}
	q.coalesce = -1
	if c := v.Get("coalesce_ms"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > 3600_000 {
			return q, event.Invalid("coalesce_ms=%q: give milliseconds from 0 to 3600000", c)
		}
		q.coalesce = time.Duration(n) * time.Millisecond
	}
	switch c := v.Get("compact"); c {
	case "", "0", "false":
	case "1", "true":
		q.compact = true
	default:
		return q, event.Invalid("compact=%q: use compact=1 (or 0)", c)
	}
	if t := v.Get("timeout"); t != "" {
		d, err := parseSeconds(t)
		if err != nil {
			return q, event.Invalid("timeout=%q: give seconds (30) or a duration (30s)", t)
		}
		q.timeout = d
	}
	return q, nil
}

// parseSeconds reads a whole number of seconds or a Go duration.
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 1<<20 {
			return 0, strconv.ErrRange
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = strconv.ErrRange
	}
	return d, err
}

// acceptsSSE reports whether the client asks for an event stream.
func acceptsSSE(r *http.Request) bool {
	return acceptHas(r, "text/event-stream")
}

// wantsEntries reports whether r asks for feed entries as normalised JSON
// (hub.Options.Entries): format=json, or application/json among the types
// it accepts (for SSE: Accept: text/event-stream, application/json).
func wantsEntries(r *http.Request, q query) bool {
	return q.format == "json" || acceptHas(r, "application/json")
}

func acceptHas(r *http.Request, want string) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == want && params["q"] != "0" {
			return true
		}
	}
	return false
}
