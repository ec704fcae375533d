package filter

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func TestParseJSONErrors(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		var parts []string
		for i := range n {
			parts = append(parts, f(i))
		}
		return strings.Join(parts, ",")
	}
	deep := strings.Repeat("a.", MaxPathDepth) + "a"
	tests := []struct{ in, msg string }{
		{``, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`[]`, "must be a JSON object"},
		{`"x"`, "must be a JSON object"},
		{`{`, "not valid JSON"},
		{`{"tags":{"any":["a"]}} x`, "not valid JSON"},
		{`{"bogus":1}`, `unknown filter member "bogus"`},
		{`{"Tags":{"any":["a"]}}`, `unknown filter member "Tags"`},
		{`{"tags":["a"]}`, "filter tags must be a JSON object"},
		{`{"tags":{"some":["a"]}}`, `unknown member "some" in filter tags`},
		{`{"tags":{"any":"a"}}`, "tags.any must be an array of strings"},
		{`{"tags":{"any":[1]}}`, "tags.any must be an array of strings"},
		{`{"tags":{"all":null}}`, "tags.all must be an array of strings"},
		{`{"tags":{"any":[]}}`, "tags.any is empty"},
		{`{"tags":{"any":[""]}}`, "is empty, longer than"},
		{`{"tags":{"any":["` + strings.Repeat("x", event.MaxTagLen+1) + `"]}}`, "is empty, longer than"},
		{`{"tags":{"any":[` + many(MaxTags+1, func(i int) string { return fmt.Sprintf(`"t%d"`, i) }) + `]}}`, "more than 64 tags"},
		{`{"near":[1,2,3]}`, "filter near must be a JSON object"},
		{`{"near":{"lat":1,"lon":2}}`, "near.radius_m is required"},
		{`{"near":{"lat":1,"lon":2,"radius_m":3,"alt":4}}`, `unknown member "alt" in filter near`},
		{`{"near":{"lat":"1","lon":2,"radius_m":3}}`, "near.lat must be a number"},
		{`{"near":{"lat":null,"lon":2,"radius_m":3}}`, "near.lat must be a number"},
		{`{"near":{"lat":1e400,"lon":2,"radius_m":3}}`, "near.lat must be a number"},
		{`{"near":{"lat":91,"lon":2,"radius_m":3}}`, "near.lat must be between -90 and 90"},
		{`{"near":{"lat":1,"lon":-180.5,"radius_m":3}}`, "near.lon must be between -180 and 180"},
		{`{"near":{"lat":1,"lon":2,"radius_m":0}}`, "radius_m must be more than 0"},
		{`{"near":{"lat":1,"lon":2,"radius_m":-5}}`, "radius_m must be more than 0"},
		{`{"near":{"lat":1,"lon":2,"radius_m":20000001}}`, "at most 20000000"},
		{`{"where":[]}`, "filter where must be a JSON object"},
		{`{"where":{"a":{"b":1}}}`, "must be a string, number, boolean or null"},
		{`{"where":{"a":[1]}}`, "must be a string, number, boolean or null"},
		{`{"where":{"":1}}`, "where: empty path"},
		{`{"where":{"a..b":1}}`, "has an empty segment"},
		{`{"where":{".a":1}}`, "has an empty segment"},
		{`{"where":{"` + deep + `":1}}`, "has more than 16 segments"},
		{`{"where":{"` + strings.Repeat("p", MaxPathLen+1) + `":1}}`, "longer than 256 bytes"},
		{`{"where":{"a":"` + strings.Repeat("v", MaxValueLen+1) + `"}}`, "value is longer than 1024 bytes"},
		{`{"where":{"a":1e9999999999}}`, "is not a usable number"},
		{`{"where":{` + many(MaxWhere+1, func(i int) string { return fmt.Sprintf(`"f%d":1`, i) }) + `}}`, "more than 32 where fields"},
		{`{"contains":5}`, "contains must be a string"},
		{`{"contains":null}`, "contains must be a string"},
		{`{"contains":"` + strings.Repeat("c", MaxContainsLen+1) + `"}`, "contains is longer than 256 bytes"},
		{`{"contains":"` + strings.Repeat(" ", MaxFilterBytes) + `"}`, "filter is longer than"},
	}
	for _, tt := range tests {
		f, err := ParseJSON([]byte(tt.in))
		if err == nil {
			t.Errorf("ParseJSON(%.60s) = %s, want error", tt.in, f.Key())
			continue
		}
		if !event.IsValidation(err) {
			t.Errorf("ParseJSON(%.60s): %v is not a validation error", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseJSON(%.60s) error %q, want it to mention %q", tt.in, err, tt.msg)
		}
	}
}

func TestFromQuery(t *testing.T) {
	tests := []struct {
		query, key, fields string
	}{
		{``, "", ""},
		{`topic=a&after=1`, "", ""},
		{`tag=b&tag=a`, `{"tags":{"any":["a","b"]}}`, ""},
		{`tags_all=x&tags_all=y&tag=a`, `{"tags":{"all":["x","y"],"any":["a"]}}`, ""},
		{`near=51.5,-0.1,500`, `{"near":{"lat":51.5,"lon":-0.1,"radius_m":500}}`, ""},
		{`near=+51.5,+-0.1,+5e2`, `{"near":{"lat":51.5,"lon":-0.1,"radius_m":500}}`, ""},
		{`where.user.id=42`, `{"where":{"user.id":42}}`, ""},
		{`where.user.id=42.0`, `{"where":{"user.id":42}}`, ""},
		{`where.a=true&where.b=null&where.c=hello&where.d="q"&where.e=01`, `{"where":{"a":true,"b":null,"c":"hello","d":"\"q\"","e":"01"}}`, ""},
		{`q=NFL`, `{"contains":"nfl"}`, ""},
		{`q=`, "", ""},
		{`fields=a,b.c&fields=d`, "", "a,b.c,d"},
		{`fields=`, "", ""},
		{`filter={"tags":{"any":["a"]}}`, `{"tags":{"any":["a"]}}`, ""},
		{`filter={}`, `{}`, ""},
		// merged, and agreeing duplicates are fine
		{`filter={"tags":{"any":["a"]}}&q=x&where.k=1`, `{"contains":"x","tags":{"any":["a"]},"where":{"k":1}}`, ""},
		{`filter={"tags":{"any":["b","a"]}}&tag=a&tag=b`, `{"tags":{"any":["a","b"]}}`, ""},
		{`filter={"where":{"k":1.0,"j":"x"}}&where.k=1`, `{"where":{"j":"x","k":1}}`, ""},
		{`filter={"contains":"NFL"}&q=nfl`, `{"contains":"nfl"}`, ""},
		{`filter={"near":{"lat":1,"lon":2,"radius_m":3}}&near=1,2,3`, `{"near":{"lat":1,"lon":2,"radius_m":3}}`, ""},
		{`near=1,2,3&near=1,2,3`, `{"near":{"lat":1,"lon":2,"radius_m":3}}`, ""},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		f, p, err := FromQuery(v)
		if err != nil {
			t.Errorf("FromQuery(%s): %v", tt.query, err)
			continue
		}
		key := ""
		if f != nil {
			key = f.Key()
		}
		if key != tt.key {
			t.Errorf("FromQuery(%s) filter %s, want %s", tt.query, key, tt.key)
		}
		if p.Key() != tt.fields {
			t.Errorf("FromQuery(%s) fields %q, want %q", tt.query, p.Key(), tt.fields)
		}
	}
	// where.user.id=42 matches the number 42 and not the string.
	f, _, _ := FromQuery(url.Values{"where.user.id": {"42"}})
	if !f.Match(jsonEvent(`{"user":{"id":42}}`)) || f.Match(jsonEvent(`{"user":{"id":"42"}}`)) {
		t.Error("where.user.id=42 must match the number 42 only")
	}
}

func TestFromQueryErrors(t *testing.T) {
	tests := []struct{ query, msg string }{
		{`near=1,2`, "near must be LAT,LON,RADIUS_M"},
		{`near=a,b,c`, "near must be LAT,LON,RADIUS_M (numbers)"},
		{`near=1,2,3,4`, "near must be LAT,LON,RADIUS_M"},
		{`near=NaN,2,3`, "finite numbers"},
		{`near=100,2,3`, "near.lat must be between"},
		{`near=1,2,0`, "radius_m must be more than 0"},
		{`near=1,2,3&near=1,2,4`, "near= is given more than once"},
		{`q=a&q=b`, "q= is given more than once"},
		{`where.a=1&where.a=2`, "where.a= is given more than once"},
		{`where.=1`, "where: empty path"},
		{`where.a..b=1`, "empty segment"},
		{`tag=`, "is empty, longer than"},
		{`tag=%ff`, "not UTF-8"},
		{`q=%ff`, "contains is not valid UTF-8"},
		{`where.a=%ff`, "not valid UTF-8"},
		{`fields=a,,b`, "fields: empty path"},
		{`fields=a.`, "empty segment"},
		{`filter=nope`, "filter must be a JSON object"},
		{`filter={"x":1}`, `unknown filter member "x"`},
		{`filter={"tags":{"any":["a"]}}&tag=b`, "tag= and filter's tags.any disagree"},
		{`filter={"tags":{"all":["a"]}}&tags_all=b`, "tags_all= and filter's tags.all disagree"},
		{`filter={"near":{"lat":1,"lon":2,"radius_m":3}}&near=1,2,4`, "near= and filter's near disagree"},
		{`filter={"where":{"k":1}}&where.k=2`, `where.k= and filter's where "k" disagree`},
		{`filter={"where":{"k":1}}&where.k="1"`, `disagree`},
		{`filter={"contains":"a"}&q=b`, "q= and filter's contains disagree"},
		{`filter={}&filter={"contains":"a"}`, "filter= is given more than once"},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = FromQuery(v)
		if err == nil {
			t.Errorf("FromQuery(%s): no error", tt.query)
			continue
		}
		if !event.IsValidation(err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("FromQuery(%s) error %q (validation %v), want %q", tt.query, err, event.IsValidation(err), tt.msg)
		}
	}
	// Too many where fields, split between the two forms.
	v := url.Values{}
	for i := range MaxWhere {
		v.Set(fmt.Sprintf("where.f%d", i), "1")
	}
	v.Set("filter", `{"where":{"extra":1}}`)
	if _, _, err := FromQuery(v); err == nil || !strings.Contains(err.Error(), "more than 32 where fields") {
		t.Errorf("too many where fields: %v", err)
	}
}
