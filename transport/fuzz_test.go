package transport

import (
	"net/url"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func FuzzParseJSONPublish(f *testing.F) {
	f.Add([]byte(`{"topic":"a","data":{"x":1}}`))
	f.Add([]byte(`[{"topics":["a","b"],"type":"update","key":"k","tags":["t"],"geo":{"lat":1,"lon":2},"idempotency_key":"i"}]`))
	f.Add([]byte(`{"topic":"a","data":"text"}`))
	f.Add([]byte(`{"topic":"a","topics":["b"]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"topic":"a","bogus":1}`))
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
		for i := range drafts {
			if len(drafts[i].Topics) == 0 {
				t.Fatal("a draft without topics passed")
			}
			// Validate must not panic, whatever it decides.
			_ = drafts[i].Validate()
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
