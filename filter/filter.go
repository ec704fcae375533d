// Package filter selects and shapes the events a live subscriber receives:
// filters (tags, a geo circle, equality on JSON fields, a substring) decide
// whether an event reaches a subscriber, and projections cut an event's JSON
// data down to the fields the subscriber asked for.
//
// A Set holds the distinct filters in use on one broker and evaluates them
// once per event, so many subscribers sharing a filter cost one evaluation,
// and geo filters are found through an s2 cell index rather than by a
// distance check per subscriber.
//
// Nothing here knows about transports: ParseJSON and FromQuery turn the wire
// forms into values, and every error they return is an event.ValidationError
// whose message can be shown to the client.
package filter

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hubbub/hubbub/event"
)

// Limits on a filter, part of the wire contract.
const (
	EarthRadiusM   = 6371008.8  // mean Earth radius used for all distances
	MaxRadiusM     = 20_000_000 // largest near.radius_m
	MaxFilterBytes = 64 << 10   // largest filter in its JSON form
	MaxTags        = 64         // most tags in tags.any, and in tags.all
	MaxWhere       = 32         // most where fields
	MaxPathDepth   = 16         // most segments in a dotted path
	MaxPathLen     = 256        // longest dotted path, in bytes
	MaxValueLen    = 1024       // longest where value (string or number), in bytes
	MaxContainsLen = 256        // longest contains text, in bytes (after case folding)
	MaxFields      = 64         // most paths in a projection
)

// Tags selects events by their tags: an event matches when it carries at
// least one of Any (if Any is not empty) and every one of All. Tags compare
// exactly (case-sensitive).
type Tags struct {
	Any []string
	All []string
}

// Circle is a disc on Earth: the points whose great-circle (haversine)
// distance from the centre, on a sphere of radius EarthRadiusM, is at most
// RadiusM metres. Lat and Lon are in degrees.
type Circle struct {
	Lat     float64
	Lon     float64
	RadiusM float64
}

// Filter selects events. The nil *Filter and the zero Filter match every
// event. Every part that is set must match (tags, near, where, contains).
//
// Build a Filter with ParseJSON, FromQuery or New, which validate it and
// bring it to canonical form (sorted, de-duplicated tags; where numbers in
// canonical text as json.Number; contains case-folded). A Filter is
// immutable once built and safe to share between goroutines: do not modify
// its fields. A literal that did not come from those functions still works
// but is validated on every call, and if invalid matches nothing.
type Filter struct {
	Tags *Tags   // nil: any tags
	Near *Circle // nil: anywhere (and events without geo)
	// Where maps dotted paths into the event's JSON data (each segment an
	// object key) to the value that must be found there: a string, a bool,
	// nil (an explicit JSON null; a missing field never matches), or a
	// number (json.Number after New; numbers compare by value, so 42
	// matches 42.0 and 4.2e1). All entries must match.
	Where map[string]any
	// Contains is a case-insensitive substring of the event's data as text:
	// the JSON text for JSON payloads, the text for text payloads. Binary
	// payloads never match. Empty means no condition.
	Contains string

	c *compiled // set by New; nil for literals
}

// compiled is a validated filter, ready to evaluate.
type compiled struct {
	key      string
	any, all []string
	near     *circle
	where    []wherePart
	contains string // case-folded
}

type valueKind uint8

const (
	kindNull valueKind = iota
	kindBool
	kindNumber
	kindString
)

type wherePart struct {
	path []string
	kind valueKind
	str  string // canonical number text, or the string
	b    bool
}

// circle is a Circle with what the haversine test needs precomputed.
type circle struct {
	lat, lon, cosLat float64 // radians
	thr              float64 // sin²(radius/2R): inside iff haversine a <= thr
}

func newCircle(c Circle) *circle {
	lat := c.Lat * math.Pi / 180
	h := math.Sin(c.RadiusM / (2 * EarthRadiusM))
	return &circle{lat: lat, lon: c.Lon * math.Pi / 180, cosLat: math.Cos(lat), thr: h * h}
}

// point is an event position in radians.
type point struct{ lat, lon, cosLat float64 }

func newPoint(g event.Geo) point {
	lat := g.Lat * math.Pi / 180
	return point{lat: lat, lon: g.Lon * math.Pi / 180, cosLat: math.Cos(lat)}
}

// havA is the haversine of the central angle between two points.
func havA(lat1, lon1, cos1, lat2, lon2, cos2 float64) float64 {
	s1 := math.Sin((lat2 - lat1) / 2)
	s2 := math.Sin((lon2 - lon1) / 2)
	a := s1*s1 + cos1*cos2*s2*s2
	return min(max(a, 0), 1)
}

func (c *circle) contains(p point) bool {
	return havA(c.lat, c.lon, c.cosLat, p.lat, p.lon, p.cosLat) <= c.thr
}

// DistanceM is the haversine great-circle distance between two points, in
// metres, on a sphere of radius EarthRadiusM.
func DistanceM(a, b event.Geo) float64 {
	p, q := newPoint(a), newPoint(b)
	return 2 * EarthRadiusM * math.Asin(math.Sqrt(havA(p.lat, p.lon, p.cosLat, q.lat, q.lon, q.cosLat)))
}

// Contains reports whether g lies in the circle (distance <= RadiusM).
func (c Circle) Contains(g event.Geo) bool {
	return g.Valid() && newCircle(c).contains(newPoint(g))
}

// New validates f and returns it in canonical form, ready to use. Errors
// are event.ValidationErrors. Where values may be given as any Go number
// type as well as json.Number.
func New(f Filter) (*Filter, error) {
	out := &Filter{}
	c := &compiled{}
	if f.Tags != nil {
		var err error
		if c.any, err = normTags("tags.any", f.Tags.Any); err != nil {
			return nil, err
		}
		if c.all, err = normTags("tags.all", f.Tags.All); err != nil {
			return nil, err
		}
		if len(c.any) > 0 || len(c.all) > 0 {
			out.Tags = &Tags{Any: c.any, All: c.all}
		}
	}
	if f.Near != nil {
		n, err := normCircle(*f.Near)
		if err != nil {
			return nil, err
		}
		out.Near = &n
		c.near = newCircle(n)
	}
	if len(f.Where) > MaxWhere {
		return nil, event.Invalid("more than %d where fields", MaxWhere)
	}
	if len(f.Where) > 0 {
		out.Where = make(map[string]any, len(f.Where))
		for _, p := range sortedKeys(f.Where) {
			segs, err := splitPath("where", p)
			if err != nil {
				return nil, err
			}
			wp, v, err := normValue(p, f.Where[p])
			if err != nil {
				return nil, err
			}
			wp.path = segs
			c.where = append(c.where, wp)
			out.Where[p] = v
		}
	}
	if f.Contains != "" {
		if !validUTF8(f.Contains) {
			return nil, event.Invalid("contains is not valid UTF-8")
		}
		c.contains = fold(f.Contains)
		if len(c.contains) > MaxContainsLen {
			return nil, event.Invalid("contains is longer than %d bytes", MaxContainsLen)
		}
		out.Contains = c.contains
	}
	c.key = out.buildKey()
	out.c = c
	return out, nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func normTags(name string, tags []string) ([]string, error) {
	if len(tags) > MaxTags {
		return nil, event.Invalid("%s has more than %d tags", name, MaxTags)
	}
	if len(tags) == 0 {
		return nil, nil
	}
	for _, t := range tags {
		if t == "" || len(t) > event.MaxTagLen || !validUTF8(t) {
			return nil, event.Invalid("%s: tag %q is empty, longer than %d bytes or not UTF-8", name, t, event.MaxTagLen)
		}
	}
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func normCircle(n Circle) (Circle, error) {
	for _, v := range []float64{n.Lat, n.Lon, n.RadiusM} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return n, event.Invalid("near: lat, lon and radius_m must be finite numbers")
		}
	}
	if n.Lat < -90 || n.Lat > 90 {
		return n, event.Invalid("near.lat must be between -90 and 90")
	}
	if n.Lon < -180 || n.Lon > 180 {
		return n, event.Invalid("near.lon must be between -180 and 180")
	}
	if !(n.RadiusM > 0) || n.RadiusM > MaxRadiusM {
		return n, event.Invalid("near.radius_m must be more than 0 and at most %d", MaxRadiusM)
	}
	// Points that are the same place get the same form.
	if n.Lon == -180 {
		n.Lon = 180
	}
	if n.Lat == 90 || n.Lat == -90 {
		n.Lon = 0
	}
	n.Lat += 0 // -0 becomes 0
	n.Lon += 0
	return n, nil
}

// splitPath checks a dotted path and splits it into segments.
func splitPath(what, p string) ([]string, error) {
	if p == "" {
		return nil, event.Invalid("%s: empty path", what)
	}
	if len(p) > MaxPathLen {
		return nil, event.Invalid("%s: a path is longer than %d bytes", what, MaxPathLen)
	}
	if !validUTF8(p) {
		return nil, event.Invalid("%s: path %q is not valid UTF-8", what, p)
	}
	segs := strings.Split(p, ".")
	if len(segs) > MaxPathDepth {
		return nil, event.Invalid("%s: path %q has more than %d segments", what, p, MaxPathDepth)
	}
	for _, s := range segs {
		if s == "" {
			return nil, event.Invalid("%s: path %q has an empty segment", what, p)
		}
	}
	return segs, nil
}

// normValue checks a where value and returns its compiled and canonical forms.
func normValue(path string, v any) (wherePart, any, error) {
	var num string
	switch x := v.(type) {
	case nil:
		return wherePart{kind: kindNull}, nil, nil
	case bool:
		return wherePart{kind: kindBool, b: x}, x, nil
	case string:
		if len(x) > MaxValueLen {
			return wherePart{}, nil, event.Invalid("where %q: value is longer than %d bytes", path, MaxValueLen)
		}
		if !validUTF8(x) {
			return wherePart{}, nil, event.Invalid("where %q: value is not valid UTF-8", path)
		}
		return wherePart{kind: kindString, str: x}, x, nil
	case json.Number:
		num = string(x)
	case float64:
		num = strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		num = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case int:
		num = strconv.FormatInt(int64(x), 10)
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		num = toDecimal(x)
	default:
		return wherePart{}, nil, event.Invalid("where %q: value must be a string, number, boolean or null", path)
	}
	if len(num) > MaxValueLen {
		return wherePart{}, nil, event.Invalid("where %q: number is longer than %d bytes", path, MaxValueLen)
	}
	cn, ok := canonNumber(num)
	if !ok {
		return wherePart{}, nil, event.Invalid("where %q: %q is not a usable number", path, num)
	}
	return wherePart{kind: kindNumber, str: cn}, json.Number(cn), nil
}

func toDecimal(x any) string {
	switch n := x.(type) {
	case int8:
		return strconv.FormatInt(int64(n), 10)
	case int16:
		return strconv.FormatInt(int64(n), 10)
	case int32:
		return strconv.FormatInt(int64(n), 10)
	case int64:
		return strconv.FormatInt(n, 10)
	case uint:
		return strconv.FormatUint(uint64(n), 10)
	case uint8:
		return strconv.FormatUint(uint64(n), 10)
	case uint16:
		return strconv.FormatUint(uint64(n), 10)
	case uint32:
		return strconv.FormatUint(uint64(n), 10)
	case uint64:
		return strconv.FormatUint(n, 10)
	}
	return ""
}

// compiledOrNil returns the compiled form, compiling literals on the fly;
// nil means the filter is invalid.
func (f *Filter) compiledOrNil() *compiled {
	if f.c != nil {
		return f.c
	}
	g, err := New(*f)
	if err != nil {
		return nil
	}
	return g.c
}

// Key is the filter's canonical text: filters with the same meaning have
// the same key, and different meanings have different keys. The key is
// itself the filter's JSON form (ParseJSON(Key()) gives an equal filter);
// the match-everything filter's key is "{}". An invalid literal's key is
// "invalid".
func (f *Filter) Key() string {
	if f == nil {
		return "{}"
	}
	c := f.compiledOrNil()
	if c == nil {
		return "invalid"
	}
	return c.key
}

// IsZero reports whether the filter matches every event.
func (f *Filter) IsZero() bool { return f.Key() == "{}" }

// Match reports whether the event passes the filter.
func (f *Filter) Match(e *event.Event) bool {
	if f == nil {
		return true
	}
	c := f.compiledOrNil()
	if c == nil {
		return false
	}
	x := evalCtx{e: e}
	if c.near != nil {
		p, ok := x.point()
		if !ok || !c.near.contains(p) {
			return false
		}
	}
	return c.matchRest(&x)
}

// matchRest evaluates everything but near.
func (c *compiled) matchRest(x *evalCtx) bool {
	if len(c.all) > 0 || len(c.any) > 0 {
		if !x.tagsMatch(c.any, c.all) {
			return false
		}
	}
	if c.contains != "" {
		t, ok := x.text()
		if !ok || !strings.Contains(t, c.contains) {
			return false
		}
	}
	if len(c.where) > 0 {
		doc, ok := x.doc()
		if !ok {
			return false
		}
		for i := range c.where {
			if !c.where[i].match(doc) {
				return false
			}
		}
	}
	return true
}

func (w *wherePart) match(doc any) bool {
	for _, s := range w.path {
		m, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		if doc, ok = m[s]; !ok {
			return false
		}
	}
	switch v := doc.(type) {
	case nil:
		return w.kind == kindNull
	case bool:
		return w.kind == kindBool && v == w.b
	case string:
		return w.kind == kindString && v == w.str
	case json.Number:
		if w.kind != kindNumber {
			return false
		}
		cn, ok := canonNumber(string(v))
		return ok && cn == w.str
	}
	return false
}
