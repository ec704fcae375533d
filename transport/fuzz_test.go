package transport

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hubbub/hubbub/event"
)

func FuzzParseJSONPublish(f *testing.F) {
	f.Add([]byte(`{"topic":"a","data":{"x":1}}`))
	f.Add([]byte(`[{"topics":["a","b"],"type":"update","key":"k","tags":["t"],"geo":{"lat":1,"lon":2},"idempotency_key":"i"}]`))
	f.Add([]byte(`{"topic":"a","data":"text"}`))
	f.Add([]byte(`{"topic":"a","topics":["b"]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"topic":"a","bogus":1}`))
	f.Add([]byte("{\"topic\":\"a\xff\",\"data\":\"\xfe\"}"))
	f.Add([]byte(`{"topic":"a\udc00","data":"\ud83d\ude00"}`))
	f.Add([]byte(`{"topic":"a","key":"k\u0000","coalesce_ms":288230376151712704}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		drafts, err := ParseJSONPublish(body)
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		if len(drafts) == 0 {
			t.Fatal("no error and no drafts")
		}
		if !utf8.Valid(body) {
			t.Fatal("a body that is not UTF-8 passed")
		}
		for i := range drafts {
			if len(drafts[i].Topics) == 0 {
				t.Fatal("a draft without topics passed")
			}
			if !utf8.Valid(drafts[i].Data) || drafts[i].Coalesce < 0 || drafts[i].Coalesce > event.MaxCoalesce {
				t.Fatalf("draft %d passed with bad data or coalescing: %+v", i, drafts[i])
			}
			// Validate must not panic, whatever it decides.
			_ = drafts[i].Validate()
		}
	})
}

func FuzzCheckJSONText(f *testing.F) {
	f.Add([]byte(`"\ud83d\ude00"`))
	f.Add([]byte(`"\\udc00 \udc00"`))
	f.Add([]byte(`"\ud800\ud800\udc00"`))
	f.Add([]byte("\"\xc3\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckJSONText(b)
		if err == nil && !utf8.Valid(b) {
			t.Fatal("text that is not UTF-8 passed")
		}
		if err != nil && !event.IsValidation(err) {
			t.Fatalf("error %v is not a validation error", err)
		}
		// What passes decodes without replacement: Go's decoder turns only
		// bad UTF-8 and lone surrogates into U+FFFD.
		var s string
		if err == nil && !bytes.ContainsRune(b, utf8.RuneError) && !bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`)) &&
			json.Unmarshal(b, &s) == nil && strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("%q passed but decodes to %q", b, s)
		}
	})
}

func FuzzParseValues(f *testing.F) {
	f.Add("topic=a&after=e:1&count=5", "")
	f.Add("topic=a/*&topic=b&wait=stream&timeout=30s", "m.W10")
	f.Add("hub.mode=retrieve&hub.topic=x&format=atom&before=3", "")
	f.Add("topic=a&count=-1&timeout=99999999999", "x:y")
	f.Fuzz(func(t *testing.T, raw, lastEventID string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseValues(v, lastEventID)
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		if len(q.topics) == 0 || q.count < 0 || q.count > 1000 || q.timeout < 0 {
			t.Fatalf("accepted a bad query: %+v", q)
		}
	})
}
