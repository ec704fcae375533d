package grip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
)

// Hold modes of Grip-Hold.
const (
	HoldResponse = "response"
	HoldStream   = "stream"
)

// Bounds on what an origin's instructions may ask.
const (
	MaxChannels       = 64               // Grip-Channel entries of one hold
	DefaultTimeout    = 55 * time.Second // Grip-Timeout when absent (Pushpin's)
	MaxTimeout        = time.Hour        // Grip-Timeout is clamped to it
	DefaultKeepAlive  = 55 * time.Second // Grip-Keep-Alive timeout when absent
	MinKeepAlive      = time.Second      // shorter keep-alive timeouts are raised to it
	MaxKeepAliveBytes = 4096             // decoded keep-alive data
	maxHeaderValue    = 16 << 10         // one instruction header's length
)

// Channel is one Grip-Channel entry: a channel (hubbub topic) and the id
// of the last item the origin's answer reflects ("" for none).
type Channel struct {
	Name   string
	PrevID string
}

// Instruction is what an origin's answer asks of the proxy.
type Instruction struct {
	Hold     string // "", HoldResponse or HoldStream
	Channels []Channel
	Timeout  time.Duration // of a response hold
	// KeepAlive, when not nil, is sent on a held stream after
	// KeepAliveEvery without other output ("idle" mode) or every
	// KeepAliveEvery ("interval" mode).
	KeepAlive      []byte
	KeepAliveEvery time.Duration
	KeepAliveMode  string
	// Status is Grip-Status's code (0 for none): the status the client
	// gets instead of the origin's own (the reason phrase is not kept).
	Status int
	// Next is the Grip-Link rel=next target (absolute), nil for none;
	// NextTimeout is its timeout parameter (0: none given).
	Next        *url.URL
	NextTimeout time.Duration
}

// ErrInstruction marks bad GRIP instructions from an origin.
var ErrInstruction = errors.New("invalid GRIP instruction")

func badInstruction(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInstruction, fmt.Sprintf(format, a...))
}

// ParseInstruction reads the GRIP headers of an origin's answer. base is
// the URL the answer came from (Grip-Link targets are relative to it).
func ParseInstruction(h http.Header, base *url.URL) (Instruction, error) {
	var in Instruction
	for _, name := range []string{"Grip-Hold", "Grip-Channel", "Grip-Timeout", "Grip-Keep-Alive", "Grip-Link", "Grip-Status"} {
		n := 0
		for _, v := range h.Values(name) {
			n += len(v)
		}
		if n > maxHeaderValue {
			return in, badInstruction("%s is longer than %d bytes", name, maxHeaderValue)
		}
	}
	var err error
	if in.Hold, err = ParseHold(h.Get("Grip-Hold")); err != nil {
		return in, err
	}
	if in.Channels, err = ParseChannels(h.Values("Grip-Channel")); err != nil {
		return in, err
	}
	if in.Hold != "" && len(in.Channels) == 0 {
		return in, badInstruction("Grip-Hold without Grip-Channel")
	}
	if in.Timeout, err = ParseTimeout(h.Get("Grip-Timeout")); err != nil {
		return in, err
	}
	if v := h.Get("Grip-Keep-Alive"); v != "" {
		if in.KeepAlive, in.KeepAliveEvery, in.KeepAliveMode, err = ParseKeepAlive(v); err != nil {
			return in, err
		}
	}
	if in.Next, in.NextTimeout, err = ParseLink(h.Values("Grip-Link"), base); err != nil {
		return in, err
	}
	if in.Status, err = ParseStatus(h.Get("Grip-Status")); err != nil {
		return in, err
	}
	return in, nil
}

// ParseStatus reads Grip-Status, "CODE [REASON]": the code (200..599),
// or 0 when absent.
func ParseStatus(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	code, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 200 || n > 599 {
		return 0, badInstruction("Grip-Status %q is not a status code 200..599", v)
	}
	return n, nil
}

// status is the code the client gets for the origin's answer resp.
func (in Instruction) status(resp *http.Response) int {
	if in.Status != 0 {
		return in.Status
	}
	return resp.StatusCode
}

// ParseHold reads Grip-Hold: "", "response" or "stream".
func ParseHold(v string) (string, error) {
	switch v = strings.TrimSpace(v); v {
	case "", HoldResponse, HoldStream:
		return v, nil
	}
	return "", badInstruction("Grip-Hold %q is not response or stream", v)
}

// ParseChannels reads Grip-Channel values: comma-separated channels, each
// with an optional prev-id parameter ("c1; prev-id=7, c2"). Several
// header lines add up. Unknown parameters are ignored.
func ParseChannels(values []string) ([]Channel, error) {
	var out []Channel
	for _, v := range values {
		items, err := parseItems(v, true)
		if err != nil {
			return nil, badInstruction("Grip-Channel: %v", err)
		}
		for _, it := range items {
			if err := event.ValidateTopic(it.value); err != nil {
				return nil, badInstruction("Grip-Channel %q: %v", it.value, err)
			}
			if event.IsReserved(it.value) {
				return nil, badInstruction("Grip-Channel %q is reserved", it.value)
			}
			c := Channel{Name: it.value}
			if p, ok := it.param("prev-id"); ok {
				if len(p) > MaxIDLen || event.ValidateKey(p) != nil {
					return nil, badInstruction("Grip-Channel %q: bad prev-id", it.value)
				}
				c.PrevID = p
			}
			out = append(out, c)
			if len(out) > MaxChannels {
				return nil, badInstruction("more than %d channels", MaxChannels)
			}
		}
	}
	return out, nil
}

// ParseTimeout reads Grip-Timeout, whole seconds: DefaultTimeout when
// absent, clamped to 1s..MaxTimeout.
func ParseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultTimeout, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badInstruction("Grip-Timeout %q is not a number of seconds", v)
	}
	return clampSeconds(n, time.Second, MaxTimeout), nil
}

func clampSeconds(n int64, lo, hi time.Duration) time.Duration {
	if n > int64(hi/time.Second) {
		return hi
	}
	return max(lo, time.Duration(n)*time.Second)
}

// ParseKeepAlive reads Grip-Keep-Alive: the data, then parameters format
// (raw, the default; cstring: backslash escapes; base64), timeout (whole
// seconds, DefaultKeepAlive when absent, at least MinKeepAlive) and mode
// (idle, the default: after that long without output; interval: every
// that long).
func ParseKeepAlive(v string) (data []byte, every time.Duration, mode string, err error) {
	items, err := parseItems(v, false)
	if err != nil {
		return nil, 0, "", badInstruction("Grip-Keep-Alive: %v", err)
	}
	if len(items) != 1 {
		return nil, 0, "", badInstruction("Grip-Keep-Alive: want one value")
	}
	it := items[0]
	format, _ := it.param("format")
	switch format {
	case "", "raw":
		data = []byte(it.value)
	case "cstring":
		s, err := unescapeCString(it.value)
		if err != nil {
			return nil, 0, "", badInstruction("Grip-Keep-Alive: %v", err)
		}
		data = []byte(s)
	case "base64":
		if data, err = base64.StdEncoding.DecodeString(it.value); err != nil {
			return nil, 0, "", badInstruction("Grip-Keep-Alive: bad base64")
		}
	default:
		return nil, 0, "", badInstruction("Grip-Keep-Alive format %q is not raw, cstring or base64", format)
	}
	if len(data) == 0 || len(data) > MaxKeepAliveBytes {
		return nil, 0, "", badInstruction("Grip-Keep-Alive data must be 1..%d bytes", MaxKeepAliveBytes)
	}
	every = DefaultKeepAlive
	if t, ok := it.param("timeout"); ok {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return nil, 0, "", badInstruction("Grip-Keep-Alive timeout %q is not a number of seconds", t)
		}
		every = clampSeconds(n, MinKeepAlive, MaxTimeout)
	}
	mode, _ = it.param("mode")
	switch mode {
	case "":
		mode = "idle"
	case "idle", "interval":
	default:
		return nil, 0, "", badInstruction("Grip-Keep-Alive mode %q is not idle or interval", mode)
	}
	return data, every, mode, nil
}

// unescapeCString decodes backslash escapes: \\ \" \n \r \t and \0.
func unescapeCString(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("cstring ends in a backslash")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case '"':
			b.WriteByte('"')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

// ParseLink reads Grip-Link values and returns the rel=next target,
// resolved against base and required to be on base's scheme and host (an
// origin can send the proxy only to itself), and its timeout parameter.
// Links of other relations are ignored.
func ParseLink(values []string, base *url.URL) (*url.URL, time.Duration, error) {
	for _, v := range values {
		items, err := parseItems(v, true)
		if err != nil {
			return nil, 0, badInstruction("Grip-Link: %v", err)
		}
		for _, it := range items {
			if rel, _ := it.param("rel"); rel != "next" {
				continue
			}
			if !strings.HasPrefix(it.value, "<") || !strings.HasSuffix(it.value, ">") {
				return nil, 0, badInstruction("Grip-Link: want <URL>; rel=next")
			}
			ref, err := url.Parse(it.value[1 : len(it.value)-1])
			if err != nil {
				return nil, 0, badInstruction("Grip-Link: bad URL")
			}
			u := ref
			if base != nil {
				u = base.ResolveReference(ref)
				if u.Scheme != base.Scheme || u.Host != base.Host {
					return nil, 0, badInstruction("Grip-Link %q is not on the origin %s", it.value, base.Host)
				}
			}
			var timeout time.Duration
			if t, ok := it.param("timeout"); ok {
				n, err := strconv.ParseInt(t, 10, 64)
				if err != nil || n < 0 {
					return nil, 0, badInstruction("Grip-Link timeout %q is not a number of seconds", t)
				}
				timeout = clampSeconds(n, time.Second, MaxTimeout)
			}
			return u, timeout, nil
		}
	}
	return nil, 0, nil
}

// headerItem is one comma-separated element of a structured header: a
// value and its ;-separated parameters.
type headerItem struct {
	value  string
	params [][2]string
}

func (it headerItem) param(name string) (string, bool) {
	for _, p := range it.params {
		if strings.EqualFold(p[0], name) {
			return p[1], true
		}
	}
	return "", false
}

// parseItems splits a header value into items (at commas, when commas is
// set) and each item into its value and parameters. Commas and semicolons
// inside double quotes or <…> do not split; parameter values may be
// quoted strings (with \-escapes).
func parseItems(v string, commas bool) ([]headerItem, error) {
	var items []headerItem
	var parts []string // the current item's ;-separated parts
	var cur strings.Builder
	inQuote, inAngle := false, false
	flushPart := func() { parts = append(parts, cur.String()); cur.Reset() }
	flushItem := func() error {
		flushPart()
		it := headerItem{value: strings.TrimSpace(parts[0])}
		for _, p := range parts[1:] {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			k, val, _ := strings.Cut(p, "=")
			k, val = strings.TrimSpace(k), strings.TrimSpace(val)
			if strings.HasPrefix(val, `"`) {
				uq, err := strconv.Unquote(val)
				if err != nil {
					return fmt.Errorf("bad quoted value of %s", k)
				}
				val = uq
			}
			it.params = append(it.params, [2]string{k, val})
		}
		if it.value == "" && len(it.params) == 0 {
			parts = parts[:0]
			return nil // empty element: skipped, as lists allow
		}
		if it.value == "" {
			return errors.New("an element has parameters but no value")
		}
		items = append(items, it)
		parts = parts[:0]
		return nil
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(v) {
				i++
				cur.WriteByte(v[i])
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
			cur.WriteByte(c)
		case inAngle:
			cur.WriteByte(c)
			if c == '>' {
				inAngle = false
			}
		case c == '<':
			inAngle = true
			cur.WriteByte(c)
		case c == ';':
			flushPart()
		case c == ',' && commas:
			if err := flushItem(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quoted string")
	}
	if err := flushItem(); err != nil {
		return nil, err
	}
	return items, nil
}
