package filter

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func jsonEvent(data string, tags ...string) *event.Event {
	return &event.Event{Topic: "t", Type: "message", Data: []byte(data), Tags: tags}
}

func textEvent(ct, data string) *event.Event {
	return &event.Event{Topic: "t", Type: "message", ContentType: ct, Data: []byte(data)}
}

func geoEvent(lat, lon float64) *event.Event {
	return &event.Event{Topic: "t", Type: "message", Data: []byte(`{}`), Geo: &event.Geo{Lat: lat, Lon: lon}}
}

func mustParse(t testing.TB, s string) *Filter {
	t.Helper()
	f, err := ParseJSON([]byte(s))
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", s, err)
	}
	return f
}

// destination returns the point dist metres from (lat, lon) on the given
// bearing (degrees), on the same sphere as the filter.
func destination(lat, lon, bearing, dist float64) event.Geo {
	φ1, λ1, θ := lat*math.Pi/180, lon*math.Pi/180, bearing*math.Pi/180
	δ := dist / EarthRadiusM
	φ2 := math.Asin(math.Sin(φ1)*math.Cos(δ) + math.Cos(φ1)*math.Sin(δ)*math.Cos(θ))
	λ2 := λ1 + math.Atan2(math.Sin(θ)*math.Sin(δ)*math.Cos(φ1), math.Cos(δ)-math.Sin(φ1)*math.Sin(φ2))
	lon2 := math.Mod(λ2*180/math.Pi+540, 360) - 180
	return event.Geo{Lat: φ2 * 180 / math.Pi, Lon: lon2}
}

// checkBoth asserts that Filter.Match and a Set agree on want.
func checkBoth(t *testing.T, name string, f *Filter, e *event.Event, want bool) {
	t.Helper()
	if got := f.Match(e); got != want {
		t.Errorf("%s: Match = %v, want %v", name, got, want)
	}
	s := NewSet()
	h := s.Add(f)
	if got := s.Eval(e).Matches(h); got != want {
		t.Errorf("%s: Set Matches = %v, want %v", name, got, want)
	}
}

func TestTags(t *testing.T) {
	tests := []struct {
		filter string
		tags   []string
		want   bool
	}{
		{`{"tags":{"any":["kitten"]}}`, []string{"kitten"}, true},
		{`{"tags":{"any":["kitten","puppy"]}}`, []string{"cat", "puppy"}, true},
		{`{"tags":{"any":["kitten"]}}`, []string{"Kitten"}, false},
		{`{"tags":{"any":["kitten"]}}`, nil, false},
		{`{"tags":{"all":["a","b"]}}`, []string{"b", "c", "a"}, true},
		{`{"tags":{"all":["a","b"]}}`, []string{"a", "c"}, false},
		{`{"tags":{"all":["a"],"any":["x","y"]}}`, []string{"a", "y"}, true},
		{`{"tags":{"all":["a"],"any":["x","y"]}}`, []string{"a"}, false},
		{`{"tags":{"all":["a"],"any":["x","y"]}}`, []string{"x"}, false},
		{`{}`, nil, true},
		// many event tags take the map path
		{`{"tags":{"all":["t9","t1"]}}`, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"}, true},
		{`{"tags":{"any":["zz"]}}`, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"}, false},
	}
	for _, tt := range tests {
		checkBoth(t, tt.filter+" "+strings.Join(tt.tags, ","), mustParse(t, tt.filter), jsonEvent(`{}`, tt.tags...), tt.want)
	}
}

func TestNear(t *testing.T) {
	near := func(lat, lon, r float64) *Filter {
		f, err := New(Filter{Near: &Circle{Lat: lat, Lon: lon, RadiusM: r}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	type tc struct {
		name string
		f    *Filter
		at   event.Geo
		want bool
	}
	var tests []tc
	// Just inside and just outside the radius, in several directions and sizes.
	for _, c := range []struct{ lat, lon, r float64 }{
		{51.5074, -0.1278, 5000}, {0, 0, 100}, {-33.86, 151.2, 1}, {60, 25, 1_000_000}, {10, 20, 19_000_000},
	} {
		for _, bearing := range []float64{0, 45, 90, 180, 270} {
			eps := max(c.r*1e-7, 1e-3)
			in := destination(c.lat, c.lon, bearing, c.r-eps)
			out := destination(c.lat, c.lon, bearing, c.r+eps)
			if d := DistanceM(event.Geo{Lat: c.lat, Lon: c.lon}, in); math.Abs(d-(c.r-eps)) > eps/4 {
				t.Fatalf("test geometry off: %v vs %v", d, c.r-eps)
			}
			tests = append(tests,
				tc{"inside", near(c.lat, c.lon, c.r), in, true},
				tc{"outside", near(c.lat, c.lon, c.r), out, false})
		}
	}
	tests = append(tests,
		tc{"centre", near(1, 2, 1), event.Geo{Lat: 1, Lon: 2}, true},
		// across the antimeridian: ~219 m apart at lat 10
		tc{"antimeridian in", near(10, 179.999, 300), event.Geo{Lat: 10, Lon: -179.999}, true},
		tc{"antimeridian out", near(10, 179.999, 150), event.Geo{Lat: 10, Lon: -179.999}, false},
		tc{"antimeridian -180", near(0, -180, 10), event.Geo{Lat: 0, Lon: 180}, true},
		tc{"antimeridian far side", near(0, 180, 50_000), event.Geo{Lat: 0.2, Lon: -179.8}, true},
		// poles: longitude means nothing there
		tc{"north pole in", near(90, 0, 100_000), event.Geo{Lat: 89.5, Lon: 123}, true},
		tc{"north pole out", near(90, 0, 100_000), event.Geo{Lat: 89, Lon: -45}, false},
		tc{"north pole any lon", near(90, 77, 1), event.Geo{Lat: 90, Lon: -150}, true},
		tc{"across south pole", near(-89.9, 170, 25_000), event.Geo{Lat: -89.9, Lon: -10}, true},
		tc{"across south pole out", near(-89.9, 170, 20_000), event.Geo{Lat: -89.9, Lon: -10}, false},
		tc{"antipode", near(0, 0, MaxRadiusM), event.Geo{Lat: 0, Lon: 180}, false},
		tc{"nearly antipode", near(0, 0, MaxRadiusM), event.Geo{Lat: 0, Lon: 179.8}, true},
	)
	for _, tt := range tests {
		checkBoth(t, tt.name, tt.f, geoEvent(tt.at.Lat, tt.at.Lon), tt.want)
	}
	// Events without geo never match a near filter.
	checkBoth(t, "no geo", near(0, 0, MaxRadiusM), jsonEvent(`{}`), false)
	checkBoth(t, "bad geo", near(0, 0, MaxRadiusM), geoEvent(91, 0), false)
}

func TestWhere(t *testing.T) {
	data := `{"topicID":"47dd","user":{"id":42,"name":"Ann","admin":true,"boss":null,"big":9007199254740993,
		"score":0.5,"tags":["a"],"deep":{"er":{"x":"y"}}},"n":-0,"e":1.5e3,"dot.key":1}`
	tests := []struct {
		where string
		data  string
		want  bool
	}{
		{`{"topicID":"47dd"}`, data, true},
		{`{"topicID":"47DD"}`, data, false},
		{`{"user.id":42}`, data, true},
		{`{"user.id":42.0}`, data, true},
		{`{"user.id":4.2e1}`, data, true},
		{`{"user.id":420e-1}`, data, true},
		{`{"user.id":43}`, data, false},
		{`{"user.id":"42"}`, data, false}, // type mismatch
		{`{"user.big":9007199254740993}`, data, true},
		{`{"user.big":9007199254740992}`, data, false}, // exact, not float64
		{`{"user.score":0.50}`, data, true},
		{`{"user.score":5e-1}`, data, true},
		{`{"n":0}`, data, true},
		{`{"e":1500}`, data, true},
		{`{"user.admin":true}`, data, true},
		{`{"user.admin":false}`, data, false},
		{`{"user.admin":"true"}`, data, false},
		{`{"user.boss":null}`, data, true},
		{`{"user.missing":null}`, data, false}, // missing is not null
		{`{"user.name":null}`, data, false},
		{`{"user.deep.er.x":"y"}`, data, true},
		{`{"user.deep.er":"y"}`, data, false},      // object is not a scalar
		{`{"user.name.first":"Ann"}`, data, false}, // through a string
		{`{"user.tags.0":"a"}`, data, false},       // arrays are not walked
		{`{"dot.key":1}`, data, false},             // segments are object keys
		{`{"nope":1}`, data, false},
		{`{"user.id":42,"topicID":"47dd"}`, data, true},
		{`{"user.id":42,"topicID":"x"}`, data, false},
		{`{"a":1}`, `[{"a":1}]`, false},
		{`{"a":1}`, `1`, false},
		{`{"a":1}`, ``, false},
	}
	for _, tt := range tests {
		f := mustParse(t, `{"where":`+tt.where+`}`)
		checkBoth(t, tt.where+" on "+tt.data, f, jsonEvent(tt.data), tt.want)
	}
	// Payloads that are not JSON never match where.
	f := mustParse(t, `{"where":{"a":1}}`)
	checkBoth(t, "text payload", f, textEvent("text/plain", `{"a":1}`), false)
	checkBoth(t, "binary payload", f, textEvent("application/octet-stream", `{"a":1}`), false)
	checkBoth(t, "json media type", f, textEvent("application/json; charset=utf-8", `{"a":1}`), true)
}

func TestContains(t *testing.T) {
	tests := []struct {
		contains string
		e        *event.Event
		want     bool
	}{
		{"nfl", jsonEvent(`{"text":"Go NFL!"}`), true},
		{"NFL", jsonEvent(`{"text":"go nfl"}`), true},
		{"nba", jsonEvent(`{"text":"go nfl"}`), false},
		{`"text":`, jsonEvent(`{"text":"x"}`), true}, // the JSON text
		{"nfl", textEvent("text/plain", "Watching NFL"), true},
		{"nfl", textEvent("text/plain; charset=utf-8", "nothing"), false},
		{"nfl", textEvent("application/octet-stream", "NFL"), false}, // binary never
		{"nfl", textEvent("text/plain", "NFL\xff"), false},           // invalid UTF-8 is binary
		{"σας", textEvent("text/plain", "ΣΑΣ"), true},                // final sigma folds
		{"straße", textEvent("text/plain", "STRAßE"), true},
		{"kelvin", textEvent("text/plain", "\u212aelvin"), true}, // Kelvin sign
		{"ÉTÉ", jsonEvent(`"été"`), true},
	}
	for _, tt := range tests {
		f := mustParse(t, `{"contains":`+string(mustJSON(tt.contains))+`}`)
		checkBoth(t, tt.contains+" in "+string(tt.e.Data), f, tt.e, tt.want)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCombined(t *testing.T) {
	f := mustParse(t, `{"tags":{"any":["photo"]},"near":{"lat":51.5,"lon":0,"radius_m":1000},
		"where":{"kind":"kitten"},"contains":"CUTE"}`)
	e := &event.Event{Data: []byte(`{"kind":"kitten","caption":"cute"}`), Tags: []string{"photo"}, Geo: &event.Geo{Lat: 51.501, Lon: 0}}
	checkBoth(t, "all parts", f, e, true)
	for name, mod := range map[string]func(*event.Event){
		"tags":     func(e *event.Event) { e.Tags = nil },
		"near":     func(e *event.Event) { e.Geo = &event.Geo{Lat: 52, Lon: 0} },
		"where":    func(e *event.Event) { e.Data = []byte(`{"kind":"puppy","caption":"cute"}`) },
		"contains": func(e *event.Event) { e.Data = []byte(`{"kind":"kitten"}`) },
	} {
		c := *e
		mod(&c)
		checkBoth(t, "fails on "+name, f, &c, false)
	}
	var nilF *Filter
	if !nilF.Match(e) || nilF.Key() != "{}" {
		t.Error("nil filter must match everything")
	}
}

func TestKey(t *testing.T) {
	same := [][]string{
		{`{}`, `{"tags":{}}`},
		{`{"tags":{"any":["b","a","b"]}}`, `{"tags":{"any":["a","b"]}}`},
		{`{"tags":{"all":["x"],"any":["y"]}}`, `{"tags":{"any":["y"],"all":["x"]}}`},
		{`{"where":{"b":1,"a":"x"}}`, `{"where":{"a":"x","b":1.0}}`, `{"where":{"a":"x","b":10e-1}}`},
		{`{"where":{"n":-0.0}}`, `{"where":{"n":0}}`},
		{`{"where":{"n":1e21}}`, `{"where":{"n":1000000000000000000000}}`},
		{`{"where":{"n":0.000001}}`, `{"where":{"n":1e-6}}`},
		{`{"contains":"NFL"}`, `{"contains":"nfl"}`, `{"contains":"Nfl"}`},
		{`{"contains":""}`, `{}`},
		{`{"near":{"lat":1,"lon":-180,"radius_m":5}}`, `{"near":{"lon":180,"lat":1.0,"radius_m":5e0}}`},
		{`{"near":{"lat":90,"lon":12,"radius_m":5}}`, `{"near":{"lat":90,"lon":-3,"radius_m":5}}`},
		{`{"near":{"lat":-0,"lon":-0,"radius_m":5}}`, `{"near":{"lat":0,"lon":0,"radius_m":5}}`},
	}
	for _, group := range same {
		k0 := mustParse(t, group[0]).Key()
		for _, s := range group[1:] {
			if k := mustParse(t, s).Key(); k != k0 {
				t.Errorf("Key(%s) = %s, want %s", s, k, k0)
			}
		}
	}
	differ := []string{
		`{}`, `{"tags":{"any":["a"]}}`, `{"tags":{"all":["a"]}}`, `{"where":{"a":1}}`, `{"where":{"a":"1"}}`,
		`{"where":{"a":true}}`, `{"where":{"a":null}}`, `{"where":{"a.b":1}}`, `{"contains":"a"}`,
		`{"near":{"lat":1,"lon":2,"radius_m":3}}`, `{"near":{"lat":1,"lon":2,"radius_m":3.5}}`,
		`{"where":{"n":9007199254740993}}`, `{"where":{"n":9007199254740992}}`,
	}
	seen := map[string]string{}
	for _, s := range differ {
		k := mustParse(t, s).Key()
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s share key %s", s, prev, k)
		}
		seen[k] = s
		// The key is the JSON form and parses to itself.
		if k2 := mustParse(t, k).Key(); k2 != k {
			t.Errorf("Key(ParseJSON(%s)) = %s", k, k2)
		}
	}
	want := `{"contains":"nfl","near":{"lat":51.5,"lon":-0.1,"radius_m":500},"tags":{"all":["x"],"any":["a","b"]},"where":{"a.b":42,"c":"<&>","d":null}}`
	got := mustParse(t, `{"where":{"d":null,"c":"<&>","a.b":42.00},"tags":{"any":["b","a"],"all":["x"]},
		"contains":"NFL","near":{"radius_m":500,"lat":51.5,"lon":-0.1}}`).Key()
	if got != want {
		t.Errorf("Key = %s\nwant  %s", got, want)
	}
}

func TestCanonNumber(t *testing.T) {
	tests := map[string]string{
		"0": "0", "-0": "0", "0.000": "0", "0e5": "0", "42": "42", "42.0": "42", "4.2e1": "42", "4.2E+1": "42",
		"420e-1": "42", "-1.50": "-1.5", "1e20": "100000000000000000000", "1e21": "1e21", "1000000000000000000000": "1e21", "123e20": "1.23e22",
		"0.001": "0.001", "1e-6": "0.000001", "1e-7": "1e-7", "12.5e-9": "1.25e-8", "100": "100",
	}
	for in, want := range tests {
		if got, ok := canonNumber(in); !ok || got != want {
			t.Errorf("canonNumber(%s) = %q, %v; want %q", in, got, ok, want)
		}
		if got, _ := canonNumber(want); got != want {
			t.Errorf("canonNumber(%s) not stable: %s", want, got)
		}
	}
	for _, bad := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "1e9999999999", "NaN", "1 "} {
		if _, ok := canonNumber(bad); ok {
			t.Errorf("canonNumber(%q) accepted", bad)
		}
	}
}

func TestNewLiteral(t *testing.T) {
	f, err := New(Filter{Where: map[string]any{"a": 42, "b": int64(-3), "c": 1.5, "d": uint8(7)}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Key() != `{"where":{"a":42,"b":-3,"c":1.5,"d":7}}` {
		t.Errorf("Key = %s", f.Key())
	}
	if !f.Match(jsonEvent(`{"a":42.0,"b":-3,"c":1.50,"d":7}`)) {
		t.Error("no match")
	}
	// Literals work without New; invalid ones match nothing.
	lit := &Filter{Tags: &Tags{Any: []string{"x"}}}
	if !lit.Match(jsonEvent(`{}`, "x")) || lit.Key() != `{"tags":{"any":["x"]}}` {
		t.Error("literal filter misbehaves")
	}
	bad := &Filter{Near: &Circle{RadiusM: -1}}
	if bad.Match(geoEvent(0, 0)) || bad.Key() != "invalid" {
		t.Error("invalid literal must match nothing")
	}
	if _, err := New(Filter{Where: map[string]any{"a": []int{1}}}); !event.IsValidation(err) {
		t.Errorf("array where value: %v", err)
	}
	if _, err := New(Filter{Where: map[string]any{"a": math.NaN()}}); !event.IsValidation(err) {
		t.Errorf("NaN where value: %v", err)
	}
}
