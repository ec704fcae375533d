package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	cases := []struct {
		name, in string
		want     []SSEEvent
	}{
		{"simple", "id: a:1\ndata: {\"x\":1}\n\n", []SSEEvent{{"a:1", "message", `{"x":1}`}}},
		{"typed", "event: reset\nid: e:3\ndata: x\n\n", []SSEEvent{{"e:3", "reset", "x"}}},
		{"multi-line data", "data: a\ndata: b\n\n", []SSEEvent{{"", "message", "a\nb"}}},
		{"comments and retry", "retry: 2000\n: hello\n\ndata: x\n\n", []SSEEvent{{"", "message", "x"}}},
		{"id kept across events", "id: 1\ndata: a\n\ndata: b\n\n", []SSEEvent{{"1", "message", "a"}, {"1", "message", "b"}}},
		{"crlf", "id: 1\r\ndata: a\r\n\r\n", []SSEEvent{{"1", "message", "a"}}},
		{"no space after colon", "data:a\n\n", []SSEEvent{{"", "message", "a"}}},
		{"event without data is dropped", "event: x\n\ndata: y\n\n", []SSEEvent{{"", "message", "y"}}},
		{"unfinished last event dropped", "data: a\n\ndata: b\n", []SSEEvent{{"", "message", "a"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewSSEReader(strings.NewReader(c.in))
			var got []SSEEvent
			for {
				ev, err := r.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatal(err)
					}
					break
				}
				got = append(got, ev)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d events %+v, want %+v", len(got), got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("id: a:1\nevent: reset\ndata: {}\n\n: c\nretry: 10\n\n")
	f.Add("data: a\r\ndata: b\r\rdata:c\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewSSEReader(strings.NewReader(in))
		for i := 0; i < len(in)+1; i++ {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if ev.Event == "" {
				t.Fatal("dispatched an event with no type")
			}
		}
		t.Fatal("more events than input bytes")
	})
}
