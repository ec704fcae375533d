package filter

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hubbub/hubbub/event"
)

// evalCtx holds what is derived from one event, each part computed at most
// once, on first need, however many filters look at it.
type evalCtx struct {
	e *event.Event

	kindDone bool
	kind     event.PayloadKind

	docDone, docOK bool
	docVal         any

	textDone, textOK bool
	textVal          string

	ptDone, ptOK bool
	pt           point

	tagSet map[string]struct{}
}

func (x *evalCtx) payloadKind() event.PayloadKind {
	if !x.kindDone {
		x.kind = x.e.Kind()
		x.kindDone = true
	}
	return x.kind
}

// doc is the event's JSON data decoded (numbers as json.Number); ok is
// false for payloads that are not JSON.
func (x *evalCtx) doc() (any, bool) {
	if !x.docDone {
		x.docDone = true
		if x.payloadKind() == event.PayloadJSON && len(x.e.Data) > 0 {
			d := json.NewDecoder(bytes.NewReader(x.e.Data))
			d.UseNumber()
			var v any // a local, so the context itself need not escape
			x.docOK = d.Decode(&v) == nil
			x.docVal = v
		}
	}
	return x.docVal, x.docOK
}

// text is the event's data as case-folded text; ok is false for binary.
func (x *evalCtx) text() (string, bool) {
	if !x.textDone {
		x.textDone = true
		if x.payloadKind() != event.PayloadBinary {
			x.textVal, x.textOK = fold(string(x.e.Data)), true
		}
	}
	return x.textVal, x.textOK
}

func (x *evalCtx) point() (point, bool) {
	if !x.ptDone {
		x.ptDone = true
		if g := x.e.Geo; g != nil && g.Valid() {
			x.pt, x.ptOK = newPoint(*g), true
		}
	}
	return x.pt, x.ptOK
}

func (x *evalCtx) hasTag(t string) bool {
	tags := x.e.Tags
	if len(tags) <= 8 {
		for _, u := range tags {
			if u == t {
				return true
			}
		}
		return false
	}
	if x.tagSet == nil {
		x.tagSet = make(map[string]struct{}, len(tags))
		for _, u := range tags {
			x.tagSet[u] = struct{}{}
		}
	}
	_, ok := x.tagSet[t]
	return ok
}

func (x *evalCtx) tagsMatch(anyOf, allOf []string) bool {
	for _, t := range allOf {
		if !x.hasTag(t) {
			return false
		}
	}
	if len(anyOf) == 0 {
		return true
	}
	for _, t := range anyOf {
		if x.hasTag(t) {
			return true
		}
	}
	return false
}

// fold maps s to a case-folded form: two strings that are equal under
// Unicode simple case folding have the same fold. Bytes that are not UTF-8
// are kept as they are.
func fold(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteByte(c)
			i++
			continue
		}
		b.WriteRune(foldRune(r))
		i += n
	}
	return b.String()
}

// foldRune picks one representative of r's case-folding orbit.
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return unicode.ToLower(m)
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// canonNumber returns the canonical JSON text of a JSON number: two numbers
// have the same value exactly when their canonical texts are equal. ok is
// false when s is not a JSON number or its exponent is out of range.
func canonNumber(s string) (string, bool) {
	if plainInt(s) {
		return s, true // already canonical; the common case, without allocating
	}
	i, neg := 0, false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[start:i]
	if intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return "", false
	}
	frac := ""
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[fs:i]
		if frac == "" {
			return "", false
		}
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		ed := strings.TrimLeft(s[es:i], "0")
		if es == i || len(ed) > 9 {
			return "", false
		}
		if ed != "" {
			exp, _ = strconv.ParseInt(ed, 10, 64)
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return "", false
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= int64(len(frac))
	if digits == "" {
		return "0", true
	}
	t := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(t))
	digits = t
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	n := int64(len(digits))
	switch {
	case exp >= 0 && n+exp <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", int(exp)))
	case exp < 0 && n+exp > 0:
		b.WriteString(digits[:n+exp])
		b.WriteByte('.')
		b.WriteString(digits[n+exp:])
	case exp < 0 && n+exp > -6:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", int(-(n + exp))))
		b.WriteString(digits)
	default:
		b.WriteByte(digits[0])
		if n > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		b.WriteString(strconv.FormatInt(exp+n-1, 10))
	}
	return b.String(), true
}

// plainInt reports whether s is a canonical integer: "0", or an optional
// minus, a non-zero digit and at most 20 more digits.
func plainInt(s string) bool {
	if s == "0" {
		return true
	}
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 21 || d[0] == '0' {
		return false
	}
	for i := 0; i < len(d); i++ {
		if !isDigit(d[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// buildKey writes the canonical JSON form of a normalised filter.
func (f *Filter) buildKey() string {
	var b []byte
	b = append(b, '{')
	sep := func() {
		if len(b) > 1 {
			b = append(b, ',')
		}
	}
	if f.Contains != "" {
		b = append(b, `"contains":`...)
		b = appendString(b, f.Contains)
	}
	if f.Near != nil {
		sep()
		b = append(b, `"near":{"lat":`...)
		b = strconv.AppendFloat(b, f.Near.Lat, 'g', -1, 64)
		b = append(b, `,"lon":`...)
		b = strconv.AppendFloat(b, f.Near.Lon, 'g', -1, 64)
		b = append(b, `,"radius_m":`...)
		b = strconv.AppendFloat(b, f.Near.RadiusM, 'g', -1, 64)
		b = append(b, '}')
	}
	if f.Tags != nil {
		sep()
		b = append(b, `"tags":{`...)
		if len(f.Tags.All) > 0 {
			b = append(b, `"all":`...)
			b = appendStrings(b, f.Tags.All)
		}
		if len(f.Tags.Any) > 0 {
			if len(f.Tags.All) > 0 {
				b = append(b, ',')
			}
			b = append(b, `"any":`...)
			b = appendStrings(b, f.Tags.Any)
		}
		b = append(b, '}')
	}
	if len(f.Where) > 0 {
		sep()
		b = append(b, `"where":{`...)
		first := true
		for _, k := range sortedKeys(f.Where) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			switch v := f.Where[k].(type) {
			case nil:
				b = append(b, "null"...)
			case bool:
				b = strconv.AppendBool(b, v)
			case json.Number:
				b = append(b, v...)
			case string:
				b = appendString(b, v)
			}
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return string(b)
}

func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}
