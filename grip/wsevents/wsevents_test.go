package wsevents

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeSpecExamples(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []Event
	}{
		{"open", "OPEN\r\n", []Event{{Type: Open}}},
		{"open with empty content", "OPEN 0\r\n\r\n", []Event{{Type: Open, Content: []byte{}}}},
		{"text", "TEXT 5\r\nhello\r\n", []Event{{Type: Text, Content: []byte("hello")}}},
		{"hex length", "TEXT B\r\nhello world\r\n", []Event{{Type: Text, Content: []byte("hello world")}}},
		{"lower-case hex", "TEXT 1c\r\nhere is another nice message\r\n", []Event{{Type: Text, Content: []byte("here is another nice message")}}},
		// The spec writes 1B for this 28-byte message; 1C is right.
		{"two messages", "TEXT 5\r\nworld\r\nTEXT 1C\r\nhere is another nice message\r\n",
			[]Event{{Type: Text, Content: []byte("world")}, {Type: Text, Content: []byte("here is another nice message")}}},
		{"content holding CRLF", "TEXT 4\r\na\r\nb\r\n", []Event{{Type: Text, Content: []byte("a\r\nb")}}},
		{"binary", "BINARY 3\r\n\x00\xff\r\r\n", []Event{{Type: Binary, Content: []byte{0, 0xff, '\r'}}}},
		{"close with code", "CLOSE 2\r\n\x03\xe8\r\n", []Event{{Type: Close, Content: []byte{0x03, 0xe8}}}},
		{"ping pong disconnect", "PING\r\nPONG 2\r\nhi\r\nDISCONNECT\r\n",
			[]Event{{Type: Ping}, {Type: Pong, Content: []byte("hi")}, {Type: Disconnect}}},
		{"empty body", "", nil},
		{"empty text", "TEXT 0\r\n\r\n", []Event{{Type: Text, Content: []byte{}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode([]byte(c.body), Limits{})
			if err != nil {
				t.Fatalf("Decode(%q): %v", c.body, err)
			}
			if !equal(got, c.want) {
				t.Fatalf("Decode(%q) = %q, want %q", c.body, got, c.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, body, msg string
	}{
		{"no CRLF", "OPEN", "no CRLF"},
		{"LF only", "OPEN\n", "no CRLF"},
		{"unknown type", "HELLO\r\n", "unknown event type"},
		{"lower-case type", "text 1\r\na\r\n", "unknown event type"},
		{"empty length", "TEXT \r\n\r\n", "1 to 8 hexadecimal digits"},
		{"long length", "TEXT 000000001\r\na\r\n", "1 to 8 hexadecimal digits"},
		{"bad length", "TEXT 1g\r\na\r\n", "not hexadecimal"},
		{"negative length", "TEXT -1\r\na\r\n", "not hexadecimal"},
		{"plus sign", "TEXT +1\r\na\r\n", "not hexadecimal"},
		{"short content", "TEXT 5\r\nhel", "ends inside"},
		{"no CRLF after content", "TEXT 2\r\nhello\r\n", "no CRLF after"},
		{"content then nothing", "TEXT 2\r\nhe", "ends inside"},
		{"long line", strings.Repeat("A", 100) + "\r\n", "no CRLF"},
		{"second event bad", "OPEN\r\nTEXT 9\r\nx\r\n", "at byte 6"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.body), Limits{})
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Decode(%q) = %v, want a SyntaxError", c.body, err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Decode(%q) = %q, want it to say %q", c.body, err, c.msg)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	if _, err := Decode([]byte("PING\r\nPING\r\nPING\r\n"), Limits{MaxEvents: 2}); !errors.Is(err, ErrLimit) {
		t.Fatalf("3 events with MaxEvents 2: %v, want ErrLimit", err)
	}
	if _, err := Decode([]byte("PING\r\nPING\r\n"), Limits{MaxEvents: 2}); err != nil {
		t.Fatalf("2 events with MaxEvents 2: %v", err)
	}
	// The limit is checked before the content is looked for: a huge
	// declared length fails as a limit, not as a short body.
	if _, err := Decode([]byte("TEXT ffffffff\r\n"), Limits{MaxContent: 1 << 20}); !errors.Is(err, ErrLimit) {
		t.Fatalf("declared 4 GiB with MaxContent 1 MiB: %v, want ErrLimit", err)
	}
	if _, err := Decode([]byte("TEXT 4\r\nabcd\r\n"), Limits{MaxContent: 4}); err != nil {
		t.Fatalf("4 bytes with MaxContent 4: %v", err)
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		in   []Event
		want string
	}{
		{[]Event{{Type: Open}}, "OPEN\r\n"},
		{[]Event{{Type: Text, Content: []byte("hello world")}}, "TEXT b\r\nhello world\r\n"},
		{[]Event{{Type: Text}}, "TEXT 0\r\n\r\n"}, // messages always carry a length
		{[]Event{{Type: Binary, Content: []byte{}}}, "BINARY 0\r\n\r\n"},
		{[]Event{{Type: Ping}, {Type: Disconnect}}, "PING\r\nDISCONNECT\r\n"},
		{[]Event{{Type: Pong, Content: []byte("x")}}, "PONG 1\r\nx\r\n"},
		{[]Event{CloseEvent(1000, "bye")}, "CLOSE 5\r\n\x03\xe8bye\r\n"},
		{[]Event{CloseEvent(0, "")}, "CLOSE\r\n"},
	}
	for _, c := range cases {
		if got := string(Encode(c.in...)); got != c.want {
			t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseClose(t *testing.T) {
	cases := []struct {
		in     []byte
		code   uint16
		reason string
		ok     bool
	}{
		{nil, 0, "", true},
		{[]byte{0x03, 0xe8}, 1000, "", true},
		{[]byte{0x0f, 0xa1, 'h', 'i'}, 4001, "hi", true},
		{[]byte{0x03}, 0, "", false},
		{[]byte{0x03, 0xe8, 0xff}, 0, "", false},
	}
	for _, c := range cases {
		code, reason, err := ParseClose(c.in)
		if (err == nil) != c.ok || code != c.code || reason != c.reason {
			t.Errorf("ParseClose(%q) = %d, %q, %v; want %d, %q, ok %v", c.in, code, reason, err, c.code, c.reason, c.ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"OPEN\r\n", "TEXT 5\r\nhello\r\n", "CLOSE 2\r\n\x03\xe8\r\n", "OPEN 0\r\n\r\nPING\r\n",
		"TEXT ffffffff\r\n", "BINARY 3\r\n\x00\r\n\r\n", "DISCONNECT\r\n", "TEXT 1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := Decode(body, Limits{MaxEvents: 100, MaxContent: 1 << 16})
		if err != nil {
			return
		}
		// What decodes re-encodes to a body that decodes the same; the
		// bytes may differ only in the case of hex digits and leading
		// zeros of lengths.
		again, err := Decode(Encode(events...), Limits{})
		if err != nil {
			t.Fatalf("re-encoding %q: %v", body, err)
		}
		if !equal(again, events) && !equalIgnoringNil(again, events) {
			t.Fatalf("round trip of %q: %q, then %q", body, events, again)
		}
	})
}

func equal(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || (a[i].Content == nil) != (b[i].Content == nil) || !bytes.Equal(a[i].Content, b[i].Content) {
			return false
		}
	}
	return true
}

// equalIgnoringNil compares contents only: TEXT and BINARY are always
// written with a length.
func equalIgnoringNil(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Content, b[i].Content) {
			return false
		}
	}
	return true
}
