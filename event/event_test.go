package event

import (
	"encoding/json"
	"testing"
	"time"
)

// Audit finding 13 (info): NUL, CR, LF and the other controls are refused in
// topics and event keys by the same rule.
func TestValidateNames(t *testing.T) {
	cases := []struct {
		name  string
		draft Draft
		ok    bool
	}{
		{"plain", Draft{Topics: []string{"a/b"}, Key: "k-1 é"}, true},
		{"NUL in topic", Draft{Topics: []string{"a\x00b"}}, false},
		{"LF in topic", Draft{Topics: []string{"a\nb"}}, false},
		{"CR in topic", Draft{Topics: []string{"a\rb"}}, false},
		{"tab in topic", Draft{Topics: []string{"a\tb"}}, false},
		{"DEL in topic", Draft{Topics: []string{"a\x7fb"}}, false},
		{"bad UTF-8 in topic", Draft{Topics: []string{"a\xffb"}}, false},
		{"NUL in key", Draft{Topics: []string{"a"}, Key: "k\x00"}, false},
		{"LF in key", Draft{Topics: []string{"a"}, Key: "k\n"}, false},
		{"CR in key", Draft{Topics: []string{"a"}, Key: "\rk"}, false},
		{"ESC in key", Draft{Topics: []string{"a"}, Key: "k\x1b[0m"}, false},
		{"bad UTF-8 in key", Draft{Topics: []string{"a"}, Key: "k\xc3"}, false},
	}
	for _, c := range cases {
		err := c.draft.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !IsValidation(err) {
			t.Errorf("%s: %v is not a ValidationError", c.name, err)
		}
	}
}

// The publisher's idempotency key comes back as client_id, so it can tell
// the echo of its own event; events published without one do not show it.
func TestWireClientID(t *testing.T) {
	for _, tc := range []struct {
		idem string
		want string
	}{
		{"c-42", `{"id":"e:1","topic":"t","seq":1,"type":"message","time":"2026-12-01T00:00:00.000000Z","client_id":"c-42","data":1}`},
		{"", `{"id":"e:1","topic":"t","seq":1,"type":"message","time":"2026-12-01T00:00:00.000000Z","data":1}`},
	} {
		e := &Event{Topic: "t", Epoch: "e", Seq: 1, Type: DefaultType, Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			Data: []byte("1"), IdempotencyKey: tc.idem}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("idempotency key %q:\n got %s\nwant %s", tc.idem, b, tc.want)
		}
	}
}
