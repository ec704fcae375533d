// Package event holds the values every other hubbub package speaks: the
// Event a publisher sends and the hub stores, the Draft it starts as, topic
// names and patterns, and cursors. It has no dependencies inside hubbub, so
// store, broker, hub and transports can all import it.
package event

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a publisher may send. They are part of the wire contract.
const (
	MaxTopicLen = 1024
	MaxTypeLen  = 64
	MaxKeyLen   = 1024
	MaxTags     = 64
	MaxTagLen   = 256
	MaxIdemLen  = 256
	DefaultType = "message"
	MaxCoalesce = time.Hour
)

// Geo is a point on Earth in degrees.
type Geo struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// Valid reports whether the point is on Earth.
func (g Geo) Valid() bool {
	return g.Lat >= -90 && g.Lat <= 90 && g.Lon >= -180 && g.Lon <= 180
}

// Draft is an event as a publisher sends it, before the store gives it a
// place. One draft may name several topics; it becomes one Event per topic.
type Draft struct {
	Topics []string
	Type   string // empty means DefaultType
	Key    string
	// ContentType is empty for a JSON publish (Data is then a JSON value);
	// otherwise the publisher's Content-Type, kept exactly.
	ContentType    string
	Data           []byte
	Tags           []string
	Geo            *Geo
	IdempotencyKey string
	// Coalesce asks that updates to this event's key within this window
	// reach webhook and long-poll subscribers as one, the latest.
	Coalesce time.Duration
}

// Event is one stored (event, topic) pair. Seq, Epoch and Time are assigned
// by the store; everything else comes from the Draft. An Event is immutable
// once stored: share it by pointer, never modify it.
type Event struct {
	Topic          string
	Epoch          string
	Seq            uint64
	Type           string
	Key            string
	Time           time.Time
	ContentType    string
	Data           []byte
	Tags           []string
	Geo            *Geo
	IdempotencyKey string
	Coalesce       time.Duration // see Draft.Coalesce
}

// Position is where the event stands in its topic's log; its String form is
// the event's id and the cursor that follows it.
func (e *Event) Position() Position { return Position{Epoch: e.Epoch, Seq: e.Seq} }

// ValidationError is bad input from outside: the message is safe and useful
// to show to the client, and transports answer it with a 4xx.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

// Invalid builds a ValidationError.
func Invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// IsValidation reports whether err is (or wraps) a ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// ValidateTopic checks a concrete topic name (no wildcards).
func ValidateTopic(t string) error {
	if t == "" {
		return Invalid("topic is empty")
	}
	if len(t) > MaxTopicLen {
		return Invalid("topic is longer than %d bytes", MaxTopicLen)
	}
	if err := checkText("topic", t); err != nil {
		return err
	}
	if IsPattern(t) {
		return Invalid("topic %q contains a wildcard segment; patterns are for subscribing only", t)
	}
	return nil
}

// checkText is the one rule for names that end up in store keys, headers
// and logs (topics, event keys): valid UTF-8 and no control character (C0,
// including NUL, CR and LF, nor DEL).
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return Invalid("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return Invalid("%s contains a control character (%U); NUL, line breaks and other controls are not allowed", what, r)
		}
	}
	return nil
}

// ValidateKey checks an event key (empty is no key).
func ValidateKey(k string) error {
	if len(k) > MaxKeyLen {
		return Invalid("key is longer than %d bytes", MaxKeyLen)
	}
	return checkText("key", k)
}

// ValidateType checks an event type: a short token.
func ValidateType(t string) error {
	if t == "" {
		return nil
	}
	if len(t) > MaxTypeLen {
		return Invalid("type is longer than %d characters", MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return Invalid("type %q is not a token (letters, digits, '-', '_', '.')", t)
		}
	}
	return nil
}

// Validate checks a draft and fills in defaults (Type). It does not look at
// Data beyond its presence: transports check payload syntax.
func (d *Draft) Validate() error {
	if len(d.Topics) == 0 {
		return Invalid("no topic given")
	}
	seen := make(map[string]struct{}, len(d.Topics))
	for _, t := range d.Topics {
		if err := ValidateTopic(t); err != nil {
			return err
		}
		if _, dup := seen[t]; dup {
			return Invalid("topic %q is named twice", t)
		}
		seen[t] = struct{}{}
	}
	if err := ValidateType(d.Type); err != nil {
		return err
	}
	if d.Type == "" {
		d.Type = DefaultType
	}
	if err := ValidateKey(d.Key); err != nil {
		return err
	}
	if len(d.Tags) > MaxTags {
		return Invalid("more than %d tags", MaxTags)
	}
	for _, tag := range d.Tags {
		if tag == "" || len(tag) > MaxTagLen || !utf8.ValidString(tag) {
			return Invalid("tag %q is empty, too long or not UTF-8", tag)
		}
	}
	if d.Geo != nil && !d.Geo.Valid() {
		return Invalid("geo is not a point on Earth (lat -90..90, lon -180..180)")
	}
	if len(d.IdempotencyKey) > MaxIdemLen {
		return Invalid("idempotency_key is longer than %d bytes", MaxIdemLen)
	}
	if d.Coalesce < 0 || d.Coalesce > MaxCoalesce || d.Coalesce%time.Millisecond != 0 {
		return Invalid("coalesce_ms must be whole milliseconds from 0 to %d", MaxCoalesce.Milliseconds())
	}
	if strings.ContainsAny(d.ContentType, "\r\n") {
		return Invalid("content type contains a line break")
	}
	return nil
}
