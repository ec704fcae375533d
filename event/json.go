package event

import (
	"encoding/json"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeFormat is how event times are written: RFC 3339, UTC, microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Wire is an event as JSON, the same everywhere an event is shown (SSE data,
// NDJSON lines, long-poll and retrieve answers, the CLI). Exactly one of
// Data and DataBase64 is set: Data holds the JSON value for JSON payloads and
// a JSON string for text; DataBase64 holds binary payloads.
type Wire struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Seq         uint64          `json:"seq"`
	Type        string          `json:"type"`
	Time        string          `json:"time"`
	Key         string          `json:"key,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Geo         *Geo            `json:"geo,omitempty"`
	ClientID    string          `json:"client_id,omitempty"` // the publisher's idempotency key: it knows its own echo
	ContentType string          `json:"content_type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  []byte          `json:"data_base64,omitempty"`
}

// PayloadKind says how an event's bytes are shown.
type PayloadKind int

const (
	PayloadJSON PayloadKind = iota
	PayloadText
	PayloadBinary
)

// Kind classifies the payload: JSON when published as JSON or with a JSON
// media type and valid JSON bytes; text for text-like media types holding
// valid UTF-8; binary otherwise.
func (e *Event) Kind() PayloadKind {
	if e.ContentType == "" {
		return PayloadJSON
	}
	mt, _, err := mime.ParseMediaType(e.ContentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(e.ContentType))
	}
	if (mt == "application/json" || strings.HasSuffix(mt, "+json")) && json.Valid(e.Data) {
		return PayloadJSON
	}
	if isTextual(mt) && utf8.Valid(e.Data) {
		return PayloadText
	}
	return PayloadBinary
}

func isTextual(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/javascript", mt == "application/x-www-form-urlencoded",
		mt == "application/x-ndjson":
		return true
	}
	return false
}

// ToWire converts the event to its JSON shape.
func (e *Event) ToWire() Wire {
	w := Wire{
		ID:          e.Position().String(),
		Topic:       e.Topic,
		Seq:         e.Seq,
		Type:        e.Type,
		Time:        e.Time.UTC().Format(TimeFormat),
		Key:         e.Key,
		Tags:        e.Tags,
		Geo:         e.Geo,
		ClientID:    e.IdempotencyKey,
		ContentType: e.ContentType,
	}
	switch e.Kind() {
	case PayloadJSON:
		if len(e.Data) == 0 {
			w.Data = json.RawMessage("null")
		} else {
			w.Data = json.RawMessage(e.Data)
		}
	case PayloadText:
		s, _ := json.Marshal(string(e.Data))
		w.Data = s
	default:
		w.DataBase64 = e.Data
		if w.DataBase64 == nil {
			w.DataBase64 = []byte{}
		}
	}
	return w
}

// MarshalJSON encodes the event in its wire shape.
func (e *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(e.ToWire())
}

// Payload returns the event's bytes as a publisher would get them back:
// Data for JSON and text, decoded for the Wire's base64 form.
func (w *Wire) Payload() []byte {
	if w.DataBase64 != nil {
		return w.DataBase64
	}
	var s string
	if len(w.Data) > 0 && w.Data[0] == '"' && json.Unmarshal(w.Data, &s) == nil && w.ContentType != "" {
		return []byte(s)
	}
	return w.Data
}

// ParseTime parses a time written in TimeFormat (or any RFC 3339 time).
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
