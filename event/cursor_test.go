package event

import (
	"encoding/base64"
	"reflect"
	"testing"
	"time"
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

// TestCursorWatermark: a pattern cursor carries its watermark in whole
// microseconds; tokens without one (from before) still parse, with none.
func TestCursorWatermark(t *testing.T) {
	w := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	c := Cursor{"q/a": {"e1", 4}}
	s := c.EncodeWatermark(w)
	got, gw, err := ParseWatermarked(s, "")
	if err != nil || !reflect.DeepEqual(got, c) || !gw.Equal(w.Truncate(time.Microsecond)) {
		t.Fatalf("round trip: %v %v %v, want %v at %v", got, gw, err, c, w.Truncate(time.Microsecond))
	}
	if plain, err := ParseCursor(s, ""); err != nil || !reflect.DeepEqual(plain, c) {
		t.Fatalf("ParseCursor of a watermarked token: %v %v", plain, err)
	}
	empty := Cursor{}.EncodeWatermark(w)
	if got, gw, err := ParseWatermarked(empty, ""); err != nil || len(got) != 0 || !gw.Equal(w.Truncate(time.Microsecond)) {
		t.Fatalf("a watermark alone: %v %v %v", got, gw, err)
	}
	old := c.Encode("") // the form without a watermark
	if got, gw, err := ParseWatermarked(old, ""); err != nil || !reflect.DeepEqual(got, c) || !gw.IsZero() {
		t.Fatalf("an old token: %v %v %v, want no watermark", got, gw, err)
	}
	if s := c.EncodeWatermark(time.Time{}); s != old {
		t.Fatalf("EncodeWatermark(zero) = %q, want the plain form %q", s, old)
	}
	for _, js := range []string{
		`{"w":0,"p":[]}`, `{"w":-5,"p":[]}`, `{"w":1e30,"p":[]}`, `{"w":"1","p":[]}`,
		`{"w":1,"p":[],"x":1}`, `{"w":1,"p":[]}{}`, `{"p":[["a","1"]]}`, `{"w":1,"p":[["a","x"]]}`,
	} {
		tok := "m." + base64.RawURLEncoding.EncodeToString([]byte(js))
		if _, _, err := ParseWatermarked(tok, ""); err == nil || !IsValidation(err) {
			t.Errorf("token %s: err %v, want a validation error", js, err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("abc:12", "t")
	f.Add("12", "")
	f.Add(Cursor{"a": {"e", 1}, "b/c": {"f", 2}}.Encode(""), "")
	f.Add(Cursor{"a": {"e", 1}}.EncodeWatermark(time.UnixMicro(1700000000123456)), "")
	f.Add("m.W10", "x")
	f.Fuzz(func(t *testing.T, s, single string) {
		c, w, err := ParseWatermarked(s, single)
		if err != nil {
			if !IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		// Whatever parses must encode and parse back to the same cursor.
		enc := c.EncodeWatermark(w)
		back, bw, err := ParseWatermarked(enc, "")
		if err != nil || !reflect.DeepEqual(back, c) || !bw.Equal(w) {
			t.Fatalf("re-parse of %q: %v %v %v (from %v at %v)", enc, back, bw, err, c, w)
		}
	})
}
