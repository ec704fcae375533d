// Package client holds the client side of hubbub's wire protocol that the
// CLI (and tests) use: an SSE stream reader.
package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
)

// SSEEvent is one dispatched Server-Sent Event.
type SSEEvent struct {
	ID    string // the last id seen on the stream (as EventSource keeps it)
	Event string // "message" when the stream named none
	Data  string // data lines joined by "\n"
}

// MaxSSELine bounds one line of a stream; longer lines are an error.
const MaxSSELine = 4 << 20

// ErrLineTooLong is returned for a line over MaxSSELine.
var ErrLineTooLong = errors.New("sse: line too long")

// SSEReader parses a text/event-stream as the HTML standard's EventSource
// does: fields id, event, data and retry; comments ignored; an event is
// dispatched at a blank line when it has data.
type SSEReader struct {
	r      *bufio.Reader
	lastID string
	Retry  int // the last retry: value in milliseconds, 0 if none
}

// NewSSEReader reads events from r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next event. At the end of the stream it returns io.EOF
// (an incomplete final event is dropped, as EventSource does).
func (s *SSEReader) Next() (SSEEvent, error) {
	var data strings.Builder
	var typ string
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return SSEEvent{}, err
		}
		if len(line) == 0 {
			if !hasData {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return SSEEvent{ID: s.lastID, Event: typ, Data: data.String()}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "event":
			typ = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				s.lastID = string(value)
			}
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
				s.Retry = n
			}
		}
	}
}

// LastID is the last id the stream set.
func (s *SSEReader) LastID() string { return s.lastID }

// readLine returns one line without its ending (\n, \r\n or \r).
func (s *SSEReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxSSELine {
			return nil, ErrLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		break
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	// A lone \r also ends a line; split on it and keep the rest for later.
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		rest := append([]byte(nil), line[i+1:]...)
		rest = append(rest, '\n')
		s.r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), s.r), 64<<10)
		line = line[:i]
	}
	return line, nil
}
