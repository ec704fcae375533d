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

func TestCompactJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 4, 5, 678901000, time.UTC)
	plain := NewItem(&Event{Topic: "photos/42", Epoch: "3f9c0e1a2b4d5e6f", Seq: 42, Type: DefaultType, Time: at, Data: []byte(`{"title":"kitten"}`)})
	rich := NewItem(&Event{Topic: "cards", Epoch: "e", Seq: 7, Type: "update", Key: "card-7", Time: at,
		Tags: []string{"a"}, Geo: &Geo{Lat: 51.5, Lon: -0.12}, Data: []byte(`1`)})
	for _, c := range []struct {
		it    *Item
		flags int
		want  string
	}{
		{plain, 0, `{"data":{"title":"kitten"}}`},
		{plain, CompactTopic, `{"topic":"photos/42","data":{"title":"kitten"}}`},
		{plain, CompactID, `{"id":"3f9c0e1a2b4d5e6f:42","data":{"title":"kitten"}}`},
		{plain, CompactID | CompactTopic, `{"id":"3f9c0e1a2b4d5e6f:42","topic":"photos/42","data":{"title":"kitten"}}`},
		{rich, 0, `{"type":"update","key":"card-7","tags":["a"],"geo":{"lat":51.5,"lon":-0.12},"data":1}`},
	} {
		if got := string(c.it.CompactJSON(c.flags)); got != c.want {
			t.Errorf("flags %d: %s, want %s", c.flags, got, c.want)
		}
		if again := string(c.it.CompactJSON(c.flags)); again != c.want {
			t.Errorf("flags %d, cached: %s", c.flags, again)
		}
	}
	// What one delivery of the plain event costs on the wire over SSE.
	full, compact := AppendSSE(nil, plain, ""), AppendSSECompact(nil, plain, "", 0)
	t.Logf("SSE frame of a one-topic event: %d bytes, %d compact", len(full), len(compact))
	if want := "id: 3f9c0e1a2b4d5e6f:42\ndata: {\"data\":{\"title\":\"kitten\"}}\n\n"; string(compact) != want {
		t.Errorf("compact SSE frame %q, want %q", compact, want)
	}
	// client_id stays: an optimistic client knows its echo by it.
	echo := NewItem(&Event{Topic: "t", Epoch: "e", Seq: 1, Type: DefaultType, Time: at, Data: []byte(`1`), IdempotencyKey: "c-42"})
	if got := string(echo.CompactJSON(0)); got != `{"client_id":"c-42","data":1}` {
		t.Errorf("compact echo %s", got)
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
