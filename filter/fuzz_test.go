package filter

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

// fuzzEvents are fixed events every fuzzed filter is run against.
var fuzzEvents = []*event.Event{
	{Data: []byte(`{"a":1,"b":{"c":"x","d":null,"e":true},"t":"NFL"}`), Tags: []string{"a", "b"}, Geo: &event.Geo{Lat: 1, Lon: 2}},
	{ContentType: "text/plain", Data: []byte("Hello NFL"), Geo: &event.Geo{Lat: 90, Lon: 180}},
	{ContentType: "application/octet-stream", Data: []byte{0, 1, 2}, Tags: []string{"x"}},
	{Data: nil, Geo: &event.Geo{Lat: -45, Lon: -180}},
	{Data: []byte(`[1,2,3]`)},
}

// checkFilter asserts the properties every successfully built filter has:
// its key parses to a filter with the same key that matches the same
// events, and the Set agrees with Match.
func checkFilter(t *testing.T, f *Filter) {
	if f == nil {
		return
	}
	key := f.Key()
	g, err := ParseJSON([]byte(key))
	if err != nil {
		t.Fatalf("key %s does not parse: %v", key, err)
	}
	if g.Key() != key {
		t.Fatalf("key %s re-parses to %s", key, g.Key())
	}
	s := NewSet()
	h := s.Add(f)
	for _, e := range fuzzEvents {
		m := f.Match(e)
		if g.Match(e) != m {
			t.Fatalf("filter %s and its re-parse disagree on %s", key, e.Data)
		}
		if s.Eval(e).Matches(h) != m {
			t.Fatalf("filter %s: Set and Match disagree on %s", key, e.Data)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"tags":{"any":["a","b"],"all":["c"]}}`, `{"near":{"lat":1,"lon":2,"radius_m":300}}`,
		`{"where":{"a":1,"b.c":"x","b.d":null,"b.e":true,"n":1.5e3}}`, `{"contains":"nfl"}`,
		`{"near":{"lat":90,"lon":-180,"radius_m":20000000}}`, `{"where":{"a":"\u00e9"}}`, `{"contains":"ΣΑΣ"}`,
		`null`, `[]`, `{"tags":{"any":[]}}`, `{"where":{"a":{}}}`, `{"x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := ParseJSON(b)
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		checkFilter(t, fl)
	})
}

func FuzzFromQuery(f *testing.F) {
	for _, s := range []string{
		`tag=a&tag=b`, `tags_all=x`, `near=51.5,-0.1,500`, `where.user.id=42`, `where.a=true&where.b=null`,
		`q=NFL`, `fields=a,b.c`, `filter={"tags":{"any":["a"]}}&tag=a`, `filter={"where":{"k":1}}&where.k=1.0`,
		`near=NaN,0,1`, `where.=1`, `fields=a,,b`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		fl, p, err := FromQuery(v)
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		checkFilter(t, fl)
		if p != nil {
			q, err := ParseFields(p.Fields())
			if err != nil || q.Key() != p.Key() {
				t.Fatalf("fields %q do not re-parse: %v", p.Key(), err)
			}
		}
	})
}

func FuzzProjection(f *testing.F) {
	f.Add("a,b.c", []byte(`{"a":1,"b":{"c":2,"d":3}}`))
	f.Add("user.id", []byte(`{"user":{"id":[1,{"x":2}]}}`))
	f.Add("x", []byte(`[1,2]`))
	f.Add("a.b.c,a", []byte(`{"a":{"b":{"c":null}}}`))
	f.Add("a", []byte(`{"a":`))
	f.Fuzz(func(t *testing.T, fields string, data []byte) {
		p, err := ParseFields(strings.Split(fields, ","))
		if err != nil {
			if !event.IsValidation(err) {
				t.Fatalf("error %v is not a validation error", err)
			}
			return
		}
		out, err := p.Apply(data)
		if err != nil {
			return
		}
		if !isKind(data, '{') {
			if !bytes.Equal(out, data) {
				t.Fatalf("non-object data changed: %q -> %q", data, out)
			}
			return
		}
		if !json.Valid(out) || !isKind(out, '{') {
			t.Fatalf("projection of %q is not a JSON object: %q", data, out)
		}
		// Projecting again changes nothing.
		again, err := p.Apply(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("projection not idempotent: %q -> %q (%v)", out, again, err)
		}
	})
}
