package event

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Position is a place in one topic's log: the epoch of the log and the seq of
// the last event before it. The zero Position (no epoch, seq 0) is the start
// of any log. A Position with no epoch matches whatever epoch is current.
type Position struct {
	Epoch string
	Seq   uint64
}

// String renders the one-topic cursor form, EPOCH:SEQ, or a bare SEQ when the
// epoch is unknown.
func (p Position) String() string {
	if p.Epoch == "" {
		return strconv.FormatUint(p.Seq, 10)
	}
	return p.Epoch + ":" + strconv.FormatUint(p.Seq, 10)
}

// AppendTo appends String() to b without allocating a string.
func (p Position) AppendTo(b []byte) []byte {
	if p.Epoch != "" {
		b = append(b, p.Epoch...)
		b = append(b, ':')
	}
	return strconv.AppendUint(b, p.Seq, 10)
}

// NewEpoch returns a fresh random epoch id (16 lowercase hex digits).
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

const maxEpochLen = 64

func validEpoch(s string) bool {
	if s == "" || len(s) > maxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParsePosition parses EPOCH:SEQ or a bare SEQ.
func ParsePosition(s string) (Position, error) {
	epoch, seqStr, hasEpoch := strings.Cut(s, ":")
	if !hasEpoch {
		seqStr, epoch = epoch, ""
	} else if !validEpoch(epoch) {
		return Position{}, Invalid("cursor %q: bad epoch", clip(s))
	}
	if seqStr == "" || len(seqStr) > 20 || seqStr[0] == '+' || seqStr[0] == '-' {
		return Position{}, Invalid("cursor %q: bad sequence number", clip(s))
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return Position{}, Invalid("cursor %q: bad sequence number", clip(s))
	}
	return Position{Epoch: epoch, Seq: seq}, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Cursor is a subscriber's place in several topics at once. The zero value
// (nil) is a valid empty cursor: every topic from its start.
//
// Its wire form is either a one-topic Position (EPOCH:SEQ), used when the
// subscription names exactly one concrete topic, or an opaque URL-safe token
// "m." + base64url(JSON). The JSON is [[TOPIC, POSITION], ...] (the form
// without a watermark), or {"w":W,"p":[[TOPIC, POSITION], ...]} for a
// pattern subscription, where W is a store time in unix microseconds: the
// subscriber has every event of the topics named up to their positions,
// and wants, of the other topics its patterns match, only the events after
// W (see hub.Subscribe).
type Cursor map[string]Position

const (
	multiPrefix    = "m."
	maxCursorLen   = 256 << 10
	maxCursorTopic = 4096
	// maxWatermark is the end of year 9999, in unix microseconds.
	maxWatermark = 253402300799999999
)

// Clone returns an independent copy.
func (c Cursor) Clone() Cursor {
	out := make(Cursor, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// Encode renders the cursor. single names the subscription's one concrete
// topic, or "" when the subscription has several topics or a pattern; with
// single set, the one-topic form is used.
func (c Cursor) Encode(single string) string {
	if single != "" {
		return c[single].String()
	}
	js, _ := json.Marshal(c.pairs(nil)) // strings only: cannot fail
	return multiPrefix + base64.RawURLEncoding.EncodeToString(js)
}

// EncodeWatermark renders the multi-topic form with watermark w (unix
// microseconds are kept; a zero w gives Encode("")).
func (c Cursor) EncodeWatermark(w time.Time) string { return c.EncodeWatermarkOmit(w, nil) }

// EncodeWatermarkOmit is EncodeWatermark leaving out the topics for which
// omit (when not nil) reports true.
func (c Cursor) EncodeWatermarkOmit(w time.Time, omit func(topic string) bool) string {
	if w.IsZero() && omit == nil {
		return c.Encode("")
	}
	var js []byte
	if w.IsZero() {
		js, _ = json.Marshal(c.pairs(omit)) // cannot fail
	} else {
		js, _ = json.Marshal(watermarked{W: w.UnixMicro(), P: c.pairs(omit)}) // cannot fail
	}
	return multiPrefix + base64.RawURLEncoding.EncodeToString(js)
}

// watermarked is the JSON of a token with a watermark.
type watermarked struct {
	W int64       `json:"w"`
	P [][2]string `json:"p"`
}

// pairs lists the positions by topic, sorted, leaving out the topics omit
// (when not nil) reports true for.
func (c Cursor) pairs(omit func(string) bool) [][2]string {
	topics := make([]string, 0, len(c))
	for t := range c {
		if omit == nil || !omit(t) {
			topics = append(topics, t)
		}
	}
	sort.Strings(topics)
	pairs := make([][2]string, len(topics))
	for i, t := range topics {
		pairs[i] = [2]string{t, c[t].String()}
	}
	return pairs
}

// ParseCursor parses a cursor's wire form. single is the subscription's one
// concrete topic or "" (as for Encode); a one-topic form is accepted only
// when single is set. An empty string is the empty cursor. A watermark the
// token may carry is checked and left out (see ParseWatermarked).
func ParseCursor(s, single string) (Cursor, error) {
	c, _, err := ParseWatermarked(s, single)
	return c, err
}

// ParseWatermarked is ParseCursor that also returns the token's watermark,
// or the zero time when it has none (every one-topic form, and tokens from
// before watermarks).
func ParseWatermarked(s, single string) (Cursor, time.Time, error) {
	if s == "" {
		return Cursor{}, time.Time{}, nil
	}
	if len(s) > maxCursorLen {
		return nil, time.Time{}, Invalid("cursor is too long")
	}
	if !strings.HasPrefix(s, multiPrefix) {
		if single == "" {
			return nil, time.Time{}, Invalid("cursor %q names one topic's position but the subscription has several topics or a pattern; use the cursor the server returned", clip(s))
		}
		if err := ValidateTopic(single); err != nil {
			return nil, time.Time{}, Invalid("cursor names a bad topic: %v", err)
		}
		p, err := ParsePosition(s)
		if err != nil {
			return nil, time.Time{}, err
		}
		return Cursor{single: p}, time.Time{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(multiPrefix):])
	if err != nil {
		return nil, time.Time{}, Invalid("cursor is not a token this server issued (bad base64)")
	}
	var pairs [][2]string
	var w time.Time
	if len(raw) > 0 && raw[0] == '{' {
		var wm watermarked
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wm); err != nil || dec.More() {
			return nil, time.Time{}, Invalid("cursor is not a token this server issued (bad contents)")
		}
		if wm.W <= 0 || wm.W > maxWatermark {
			return nil, time.Time{}, Invalid("cursor is not a token this server issued (bad watermark)")
		}
		pairs, w = wm.P, time.UnixMicro(wm.W).UTC()
	} else if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, time.Time{}, Invalid("cursor is not a token this server issued (bad contents)")
	}
	if len(pairs) > maxCursorTopic {
		return nil, time.Time{}, Invalid("cursor names more than %d topics", maxCursorTopic)
	}
	c := make(Cursor, len(pairs))
	for _, p := range pairs {
		if err := ValidateTopic(p[0]); err != nil {
			return nil, time.Time{}, Invalid("cursor names a bad topic: %v", err)
		}
		pos, err := ParsePosition(p[1])
		if err != nil {
			return nil, time.Time{}, err
		}
		c[p[0]] = pos
	}
	return c, w, nil
}
