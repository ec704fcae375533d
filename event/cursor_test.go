package event

import (
	"reflect"
	"testing"
)

func TestParsePosition(t *testing.T) {
	cases := []struct {
		in   string
		want Position
		ok   bool
	}{
		{"abc:12", Position{"abc", 12}, true},
		{"12", Position{"", 12}, true},
		{"0", Position{}, true},
		{"abc:", Position{}, false},
		{":5", Position{}, false},
		{"abc:-1", Position{}, false},
		{"abc:+1", Position{}, false},
		{"abc:1:2", Position{}, false},
		{"a b:1", Position{}, false},
		{"abc:99999999999999999999", Position{}, false},
		{"", Position{}, false},
	}
	for _, c := range cases {
		got, err := ParsePosition(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParsePosition(%q) = %v, %v", c.in, got, err)
		}
		if err != nil && !IsValidation(err) {
			t.Errorf("ParsePosition(%q) error is not a validation error", c.in)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{"photos/tag/kitten": {"e1", 4}, "https://x.example/feed?a=b": {"e2", 7}, "b": {"", 0}}
	s := c.Encode("")
	got, err := ParseCursor(s, "")
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, ch := range s {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			t.Fatalf("cursor %q is not URL-safe", s)
		}
	}
	one := Cursor{"a": {"e", 3}}
	if s := one.Encode("a"); s != "e:3" {
		t.Fatalf("single form %q", s)
	}
	if _, err := ParseCursor("e:3", ""); err == nil {
		t.Fatal("a one-topic cursor must not be accepted for a multi-topic subscription")
	}
	if _, err := ParseCursor("m.!!!", ""); err == nil {
		t.Fatal("bad token accepted")
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("abc:12", "t")
	f.Add("12", "")
	f.Add(Cursor{"a": {"e", 1}, "b/c": {"f", 2}}.Encode(""), "")
	f.Add("m.W10", "x")
	f.Fuzz(func(t *testing.T, s, single string) {
		c, err := ParseCursor(s, single)
		if err != nil {
			if !IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		// Whatever parses must encode and parse back to the same cursor.
		enc := c.Encode("")
		back, err := ParseCursor(enc, "")
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("re-parse of %q: %v %v (from %v)", enc, back, err, c)
		}
	})
}
