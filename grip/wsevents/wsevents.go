// Package wsevents encodes and decodes application/websocket-events, the
// body format of the WebSocket-over-HTTP protocol (Pushpin's): a GRIP
// proxy holds a client's WebSocket and exchanges the connection's events
// with the origin as the bodies of ordinary HTTP POSTs and their answers.
//
// An event is its name, then optionally a space and the content length in
// hexadecimal, then CRLF; with a length, the content and another CRLF
// follow:
//
//	TEXT 5\r\nhello\r\n
//	OPEN\r\n
//
// A body is any number of events, concatenated.
package wsevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ContentType is the media type of a body of events.
const ContentType = "application/websocket-events"

// Type is the kind of an event.
type Type string

// The event types of the protocol.
const (
	// Open asks the origin to accept a connection (first event of the
	// first request) and accepts it (first event of the first answer).
	Open Type = "OPEN"
	// Text and Binary are messages; their content is the message.
	Text   Type = "TEXT"
	Binary Type = "BINARY"
	// Ping and Pong are the WebSocket control frames, content optional.
	Ping Type = "PING"
	Pong Type = "PONG"
	// Close is a close frame: content is a 2-byte big-endian code and a
	// UTF-8 reason, or empty (no code).
	Close Type = "CLOSE"
	// Disconnect says the connection ended without a close handshake, or
	// (from the origin) that it should end now.
	Disconnect Type = "DISCONNECT"
)

// maxTypeLine bounds the line naming an event ("DISCONNECT ffffffff").
const maxTypeLine = 32

// Event is one event. Content is nil for an event written without a
// length (OPEN\r\n), and non-nil (possibly empty) for one written with a
// length (TEXT 0\r\n\r\n).
type Event struct {
	Type    Type
	Content []byte
}

// Known reports whether t is one of the protocol's event types.
func (t Type) Known() bool {
	switch t {
	case Open, Text, Binary, Ping, Pong, Close, Disconnect:
		return true
	}
	return false
}

// Append appends the encoding of e to dst. An event with nil content is
// written without a length; TEXT and BINARY always carry one.
func Append(dst []byte, e Event) []byte {
	dst = append(dst, e.Type...)
	if e.Content == nil && e.Type != Text && e.Type != Binary {
		return append(dst, '\r', '\n')
	}
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(len(e.Content)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, e.Content...)
	return append(dst, '\r', '\n')
}

// Encode returns the body holding events, in order.
func Encode(events ...Event) []byte {
	n := 0
	for _, e := range events {
		n += len(e.Type) + len(e.Content) + 14
	}
	out := make([]byte, 0, n)
	for _, e := range events {
		out = Append(out, e)
	}
	return out
}

// Limits bound what Decode accepts. Zero fields mean no bound; the caller
// bounds the body's size as a whole before decoding it.
type Limits struct {
	// MaxEvents is the most events one body may hold.
	MaxEvents int
	// MaxContent is the most bytes one event's content may hold.
	MaxContent int
}

// SyntaxError is a body that is not a well-formed sequence of events.
type SyntaxError struct {
	Offset int // of the event in the body
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("websocket-events: at byte %d: %s", e.Offset, e.Msg)
}

// ErrLimit is wrapped by the errors of a body beyond Limits.
var ErrLimit = errors.New("websocket-events: limit exceeded")

// Decode parses a body of events. It accepts only the protocol's event
// types, lengths of 1 to 8 hexadecimal digits and CRLF line ends, and
// fails with a *SyntaxError naming the offset of the first bad event, or
// an error wrapping ErrLimit. Contents alias body.
func Decode(body []byte, lim Limits) ([]Event, error) {
	var out []Event
	at := 0
	for at < len(body) {
		start := at
		bad := func(format string, args ...any) error {
			return &SyntaxError{Offset: start, Msg: fmt.Sprintf(format, args...)}
		}
		if lim.MaxEvents > 0 && len(out) >= lim.MaxEvents {
			return nil, fmt.Errorf("%w: more than %d events in one body", ErrLimit, lim.MaxEvents)
		}
		window := body[at:min(len(body), at+maxTypeLine+2)]
		eol := bytes.Index(window, []byte("\r\n"))
		if eol < 0 {
			return nil, bad("no CRLF ends the event's first line (it holds the type and length, at most %d bytes)", maxTypeLine)
		}
		line := window[:eol]
		at += eol + 2
		name, size, hasSize := line, []byte(nil), false
		if sp := bytes.IndexByte(line, ' '); sp >= 0 {
			name, size, hasSize = line[:sp], line[sp+1:], true
		}
		t := Type(name)
		if !t.Known() {
			return nil, bad("unknown event type %q", printable(name))
		}
		if !hasSize {
			out = append(out, Event{Type: t})
			continue
		}
		if len(size) == 0 || len(size) > 8 {
			return nil, bad("%s: the length must be 1 to 8 hexadecimal digits", t)
		}
		n, err := strconv.ParseUint(string(size), 16, 32)
		if err != nil {
			return nil, bad("%s: length %q is not hexadecimal", t, printable(size))
		}
		if lim.MaxContent > 0 && n > uint64(lim.MaxContent) {
			return nil, fmt.Errorf("%w: %s event of %d bytes, over %d", ErrLimit, t, n, lim.MaxContent)
		}
		if uint64(len(body)-at) < n+2 {
			return nil, bad("%s: the body ends inside the event's %d bytes of content", t, n)
		}
		content := body[at : at+int(n) : at+int(n)]
		at += int(n)
		if body[at] != '\r' || body[at+1] != '\n' {
			return nil, bad("%s: no CRLF after the event's %d bytes of content", t, n)
		}
		at += 2
		out = append(out, Event{Type: t, Content: content})
	}
	return out, nil
}

// CloseEvent is a CLOSE event with a code and reason; code 0 means none
// (an empty close, which a WebSocket reports as 1005).
func CloseEvent(code uint16, reason string) Event {
	if code == 0 {
		return Event{Type: Close}
	}
	c := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(c, code)
	return Event{Type: Close, Content: append(c, reason...)}
}

// ParseClose reads a CLOSE event's content: code 0 for none. A content of
// one byte, or a reason that is not UTF-8, is an error.
func ParseClose(content []byte) (code uint16, reason string, err error) {
	switch {
	case len(content) == 0:
		return 0, "", nil
	case len(content) == 1:
		return 0, "", errors.New("websocket-events: CLOSE content of one byte: give a 2-byte code, then the reason")
	}
	if !utf8.Valid(content[2:]) {
		return 0, "", errors.New("websocket-events: CLOSE reason is not UTF-8")
	}
	return binary.BigEndian.Uint16(content), string(content[2:]), nil
}

// printable shortens and quotes-safe a piece of bad input for an error.
func printable(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}
