package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// publishItem is one event in a JSON publish body.
type publishItem struct {
	Topic          *string         `json:"topic"`
	Topics         []string        `json:"topics"`
	Type           string          `json:"type"`
	Key            string          `json:"key"`
	Data           json.RawMessage `json:"data"`
	Tags           []string        `json:"tags"`
	Geo            *event.Geo      `json:"geo"`
	IdempotencyKey string          `json:"idempotency_key"`
	CoalesceMS     int64           `json:"coalesce_ms"`
}

// PublishResult is one entry of a publish answer.
type PublishResult struct {
	Topic     string `json:"topic"`
	ID        string `json:"id"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	Time      string `json:"time"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// PublishResponse is the answer to POST /publish.
type PublishResponse struct {
	Events []PublishResult `json:"events"`
}

const maxEventsPerPublish = 1000

// Publish serves POST /publish: a JSON event or array of events, or a raw
// body of any type with ?topic= (repeatable). It answers only once every
// event is durable. A client that may not publish at all is refused
// before its body is read; one whose token does not cover every topic of
// the request is refused as a whole (see Access.Publish).
func (h *Handlers) Publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	id := h.opts.Access.Identify(r)
	if !h.authorizePublish(w, r, id, nil) {
		return
	}
	if h.opts.AllowPublish != nil { // the rate counts authorised publishers only
		if wait, ok := h.opts.AllowPublish(r, id); !ok {
			secs := retrySeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			httpError(w, http.StatusTooManyRequests, fmt.Sprintf("publish rate limit: try again in %ds", secs))
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBody)
	drafts, status, err := parsePublish(r)
	if err != nil {
		if status != 0 {
			httpError(w, status, err.Error())
		} else {
			h.fail(w, r, err)
		}
		return
	}
	if t := reservedIn(drafts); t != "" {
		httpError(w, http.StatusForbidden, fmt.Sprintf("topic %q: topics under $sys/ are the hub's own and cannot be published to", t))
		return
	}
	if !h.authorizePublish(w, r, id, draftTopics(drafts)) {
		return
	}
	results, err := h.hub.Publish(r.Context(), drafts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Debug("published", "client", h.opts.Access.ClientAddr(r), "events", len(results))
	writeJSON(w, http.StatusOK, PublishResponse{Events: publishResults(results)})
}

func publishResults(results []store.Result) []PublishResult {
	out := make([]PublishResult, len(results))
	for i, res := range results {
		out[i] = PublishResult{
			Topic: res.Topic, ID: res.Position().String(), Seq: res.Seq, Epoch: res.Epoch,
			Time: res.Time.UTC().Format(event.TimeFormat), Duplicate: res.Duplicate,
		}
	}
	return out
}

// parsePublish reads a publish request into drafts. A non-zero status is
// the HTTP status for err; otherwise err is for fail (validation, size).
func parsePublish(r *http.Request) ([]event.Draft, int, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, 0, event.Invalid("query string: %v", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, 0, err
		}
		return nil, 0, event.Invalid("reading the body: %v", err)
	}
	if topics := v["topic"]; len(topics) > 0 {
		if len(body) == 0 {
			return nil, 0, event.Invalid("empty body: a raw publish with ?topic= stores the body, so send one")
		}
		return []event.Draft{rawDraft(r, v, body)}, 0, nil
	}
	ct := r.Header.Get("Content-Type")
	loose := false // a type curl -d and forms send, which may well not be JSON
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, http.StatusUnsupportedMediaType, errors.New("Content-Type does not parse; send JSON, or any body with ?topic=")
		}
		// curl -d sends form-urlencoded; the body is still the JSON it
		// holds, so take it.
		switch mt {
		case "application/json", "text/json":
		case "application/x-www-form-urlencoded", "text/plain":
			loose = true
		default:
			return nil, http.StatusUnsupportedMediaType, errors.New("a body without ?topic= must be JSON (application/json); for another type, add ?topic=NAME")
		}
	}
	drafts, err := ParseJSONPublish(body)
	if err != nil {
		if loose {
			err = event.Invalid("%v (send JSON with Content-Type: application/json, or add ?topic=NAME for a raw body)", err)
		}
		return nil, 0, err
	}
	if err := applyIdempotencyHeader(drafts, r.Header.Get("Idempotency-Key")); err != nil {
		return nil, 0, err
	}
	return drafts, 0, nil
}

// applyIdempotencyHeader gives a one-event JSON publish the Idempotency-Key
// header's key. The header names one event, so a body of several events,
// or one whose own idempotency_key differs, is refused rather than half
// honoured.
func applyIdempotencyHeader(drafts []event.Draft, key string) error {
	if key == "" {
		return nil
	}
	if len(drafts) != 1 {
		return event.Invalid("the Idempotency-Key header names one event, and this body holds %d; give each its own idempotency_key instead", len(drafts))
	}
	if k := drafts[0].IdempotencyKey; k != "" && k != key {
		return event.Invalid("the Idempotency-Key header and the body's idempotency_key differ; give one, or the same in both")
	}
	drafts[0].IdempotencyKey = key
	return nil
}

// rawDraft makes the draft for a raw body published with ?topic=: its bytes
// and Content-Type are kept as they are. type, key and idempotency_key may
// come as query parameters (the last also as an Idempotency-Key header).
func rawDraft(r *http.Request, v url.Values, body []byte) event.Draft {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	idem := v.Get("idempotency_key")
	if idem == "" {
		idem = r.Header.Get("Idempotency-Key")
	}
	d := event.Draft{
		Topics: v["topic"], Type: v.Get("type"), Key: v.Get("key"),
		ContentType: ct, Data: body, Tags: v["tag"], IdempotencyKey: idem,
	}
	if c := v.Get("coalesce_ms"); c != "" {
		ms, err := strconv.ParseInt(c, 10, 64)
		if err != nil || ms < 0 || ms > event.MaxCoalesce.Milliseconds() {
			ms = -1 // Validate refuses it with a clear reason
		}
		d.Coalesce = time.Duration(ms) * time.Millisecond
	}
	return d
}

// ParseJSONPublish parses a JSON publish body: one event object or an
// array of them. Unknown fields are refused, so a misspelt field is an
// error rather than silently dropped data, and so is text that is not
// valid Unicode (see CheckJSONText) and a coalesce_ms out of range. Drafts
// are not yet validated otherwise (hub.Publish does that).
func ParseJSONPublish(body []byte) ([]event.Draft, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, event.Invalid("the body is empty; send a JSON event such as {\"topic\":\"a\",\"data\":{}}")
	}
	if err := CheckJSONText(body); err != nil {
		return nil, err
	}
	var items []publishItem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var err error
	if body[0] == '[' {
		err = dec.Decode(&items)
	} else {
		var one publishItem
		err = dec.Decode(&one)
		items = []publishItem{one}
	}
	if err != nil {
		return nil, event.Invalid("malformed JSON: %v", err)
	}
	if dec.More() {
		return nil, event.Invalid("malformed JSON: more than one value in the body; send an array")
	}
	if len(items) == 0 {
		return nil, event.Invalid("the array holds no event")
	}
	if len(items) > maxEventsPerPublish {
		return nil, event.Invalid("more than %d events in one publish", maxEventsPerPublish)
	}
	drafts := make([]event.Draft, len(items))
	for i, it := range items {
		coalesce, err := coalesceMS(it.CoalesceMS)
		if err != nil {
			return nil, event.Invalid("event %d: %v", i, err)
		}
		d := event.Draft{
			Type: it.Type, Key: it.Key, Tags: it.Tags, Geo: it.Geo,
			IdempotencyKey: it.IdempotencyKey, Coalesce: coalesce,
		}
		switch {
		case it.Topic != nil && it.Topics != nil:
			return nil, event.Invalid("event %d: give topic or topics, not both", i)
		case it.Topic != nil:
			d.Topics = []string{*it.Topic}
		default:
			d.Topics = it.Topics
		}
		if len(d.Topics) == 0 {
			return nil, event.Invalid("event %d: no topic given", i)
		}
		if len(it.Data) > 0 && !bytes.Equal(it.Data, []byte("null")) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, it.Data); err != nil {
				return nil, event.Invalid("event %d: data: %v", i, err)
			}
			d.Data = buf.Bytes()
		}
		drafts[i] = d
	}
	return drafts, nil
}

// coalesceMS turns a coalescing window in milliseconds from outside into
// a duration, checking the range before the multiplication can overflow.
func coalesceMS(ms int64) (time.Duration, error) {
	if ms < 0 || ms > event.MaxCoalesce.Milliseconds() {
		return 0, event.Invalid("coalesce_ms must be whole milliseconds from 0 to %d", event.MaxCoalesce.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// CheckJSONText refuses JSON text that is not valid Unicode: bytes that are
// not UTF-8 (RFC 8259 section 8.1), and \u escapes of lone UTF-16
// surrogates. Go's decoder would silently turn either into U+FFFD in
// strings (so different topics would collapse into one), and json.Compact
// would keep them in data, which strict clients then cannot read.
func CheckJSONText(b []byte) error {
	if !utf8.Valid(b) {
		return event.Invalid("the JSON is not valid UTF-8")
	}
	// Backslashes occur only inside strings, so no string tracking is
	// needed: walk the escapes and pair the surrogates.
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		r, ok := hex4(b, i+2)
		i += 5
		switch {
		case !ok || r < 0xd800 || r > 0xdfff:
		case r <= 0xdbff && i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u':
			if lo, ok := hex4(b, i+3); ok && lo >= 0xdc00 && lo <= 0xdfff {
				i += 6
				continue
			}
			fallthrough
		default:
			return event.Invalid("the JSON holds a lone UTF-16 surrogate escape (\\u%04x), which is not a character", r)
		}
	}
	return nil
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "could not encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
