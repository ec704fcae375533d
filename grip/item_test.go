package grip

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		bad  string // part of the error, "" for none
	}{
		{"http-response", `{"items":[{"channel":"c","id":"1","prev-id":"0","formats":{"http-response":{"code":200,"reason":"OK","headers":{"X-A":"b"},"body":"hi\n"}}}]}`, ""},
		{"headers as pairs", `{"items":[{"channel":"c","formats":{"http-response":{"headers":[["X-A","1"],["X-A","2"]],"body-bin":"aGk="}}}]}`, ""},
		{"http-stream", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}},{"channel":"d","formats":{"http-stream":{"action":"close","content":""}}}]}`, ""},
		{"ws-message", `{"items":[{"channel":"c","formats":{"ws-message":{"content-bin":"AAE="}}}]}`, ""},
		{"ws close", `{"items":[{"channel":"c","formats":{"ws-message":{"action":"close","code":4000,"reason":"bye"}}}]}`, ""},
		{"unknown fields ignored", `{"items":[{"channel":"c","meta":{"a":"b"},"formats":{"http-stream":{"content":"x"}}}]}`, ""},
		{"no items", `{"items":[]}`, "no items"},
		{"not an object", `[1]`, "not a GRIP publish"},
		{"trailing data", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]} {}`, "after its JSON"},
		{"no formats", `{"items":[{"channel":"c","formats":{}}]}`, "no formats"},
		{"no channel", `{"items":[{"formats":{"http-stream":{"content":"x"}}}]}`, "channel"},
		{"pattern channel", `{"items":[{"channel":"a/*","formats":{"http-stream":{"content":"x"}}}]}`, "wildcard"},
		{"reserved channel", `{"items":[{"channel":"$sys/x","formats":{"http-stream":{"content":"x"}}}]}`, "reserved"},
		{"bad code", `{"items":[{"channel":"c","formats":{"http-response":{"code":99}}}]}`, "code 99"},
		{"body and body-bin", `{"items":[{"channel":"c","formats":{"http-response":{"body":"a","body-bin":"YQ=="}}}]}`, "both"},
		{"bad header name", `{"items":[{"channel":"c","formats":{"http-response":{"headers":{"X A":"b"}}}}]}`, "not a valid header"},
		{"header value line break", `{"items":[{"channel":"c","formats":{"http-response":{"headers":{"X-A":"b\r\nSet-Cookie: x"}}}}]}`, "not a valid header"},
		{"headers of numbers", `{"items":[{"channel":"c","formats":{"http-response":{"headers":{"X-A":1}}}}]}`, "not a GRIP publish"},
		{"bad base64", `{"items":[{"channel":"c","formats":{"http-stream":{"content-bin":"!!"}}}]}`, "not a GRIP publish"},
		{"bad action", `{"items":[{"channel":"c","formats":{"http-stream":{"action":"hint"}}}]}`, "action"},
		{"bad close code", `{"items":[{"channel":"c","formats":{"ws-message":{"action":"close","code":999}}}]}`, "close code"},
		{"long id", `{"items":[{"channel":"c","id":"` + strings.Repeat("i", MaxIDLen+1) + `","formats":{"http-stream":{"content":"x"}}}]}`, "longer"},
		{"second item bad", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}},{"channel":"","formats":{}}]}`, "item 1"},
		{"not UTF-8", "{\"items\":[{\"channel\":\"\xff\"}]}", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := ParsePublish([]byte(tc.body))
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("got %v, want an error with %q", err, tc.bad)
			case err != nil && !event.IsValidation(err):
				t.Fatalf("error %v is not a ValidationError", err)
			case err == nil && len(items) == 0:
				t.Fatal("no items")
			}
		})
	}
}

func TestTooManyItems(t *testing.T) {
	item := `{"channel":"c","formats":{"http-stream":{"content":"x"}}}`
	body := `{"items":[` + strings.Repeat(item+",", MaxItemsPerPublish) + item + `]}`
	if _, err := ParsePublish([]byte(body)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v", err)
	}
}

// An item is stored as an event and renders back to its formats; any
// other event renders with its data as the body of every format.
func TestFormatsOf(t *testing.T) {
	items, err := ParsePublish([]byte(`{"items":[{"channel":"c","id":"i1","prev-id":"i0","formats":{"http-stream":{"content":"x"},"ws-message":{"content":"y"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := items[0].Draft()
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != ItemType || d.ContentType != ItemContentType || d.Topics[0] != "c" {
		t.Fatalf("draft %+v", d)
	}
	e := &event.Event{Topic: "c", Epoch: "e1", Seq: 4, ContentType: d.ContentType, Data: d.Data, Time: time.Now()}
	r := FormatsOf(e)
	if r.ID != "i1" || r.PrevID != "i0" || r.Formats.HTTPResponse != nil || *r.Formats.HTTPStream.Content != "x" || *r.Formats.WSMessage.Content != "y" {
		t.Fatalf("rendered %+v", r)
	}
	if e.Kind() != event.PayloadJSON {
		t.Fatalf("stored items should be JSON to native subscribers, kind %v", e.Kind())
	}

	for _, tc := range []struct {
		ct, data, wantCT string
		binary           bool
	}{
		{"", `{"a":1}`, "application/json", false},
		{"text/plain", "hi", "text/plain", false},
		{"application/octet-stream", "\x00\x01", "application/octet-stream", true},
	} {
		r := FormatsOf(&event.Event{Topic: "c", Epoch: "e1", Seq: 9, ContentType: tc.ct, Data: []byte(tc.data)})
		hr := r.Formats.HTTPResponse
		if r.ID != "e1:9" || hr.Code != 200 || hr.Headers[0] != [2]string{"Content-Type", tc.wantCT} || *hr.Body != tc.data ||
			*r.Formats.HTTPStream.Content != tc.data {
			t.Errorf("%q: rendered %+v %+v", tc.ct, r, hr)
		}
		ws := r.Formats.WSMessage
		if tc.binary != (ws.ContentBin != nil) {
			t.Errorf("%q: ws-message %+v", tc.ct, ws)
		}
	}
}

// FuzzParsePublish: no input panics; what is accepted is valid and
// stores as a draft hub.Publish would take.
func FuzzParsePublish(f *testing.F) {
	f.Add(`{"items":[{"channel":"c","id":"1","formats":{"http-response":{"code":200,"headers":{"A":"b"},"body":"x"}}}]}`)
	f.Add(`{"items":[{"channel":"c","formats":{"http-stream":{"content-bin":"AAE="},"ws-message":{"action":"close","code":1000}}}]}`)
	f.Add(`{"items":[{"channel":"c","formats":{"http-response":{"headers":[["A","b"]]}}}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		items, err := ParsePublish([]byte(body))
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		for _, it := range items {
			d, err := it.Draft()
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Validate(); err != nil {
				t.Fatalf("draft of a valid item is invalid: %v", err)
			}
			r := FormatsOf(&event.Event{Topic: it.Channel, Epoch: "e", Seq: 1, ContentType: d.ContentType, Data: d.Data})
			if want, _ := json.Marshal(it.Formats); string(mustJSON(t, r.Formats)) != string(want) {
				t.Fatalf("formats did not survive storing: %s vs %s", mustJSON(t, r.Formats), want)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
