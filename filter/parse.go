package filter

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hubbub/hubbub/event"
)

// ParseJSON parses a filter in its JSON form:
//
//	{"tags":{"any":[..],"all":[..]},
//	 "near":{"lat":..,"lon":..,"radius_m":..},
//	 "where":{"user.id":42,"kind":"photo"},
//	 "contains":".."}
//
// Every member is optional; {} matches everything. Unknown members, wrong
// types, empty tag lists and anything over the limits (MaxTags, MaxWhere,
// MaxPathDepth, MaxPathLen, MaxValueLen, MaxContainsLen, MaxRadiusM,
// MaxFilterBytes) are rejected with an event.ValidationError.
func ParseJSON(b []byte) (*Filter, error) {
	f, err := parseJSONParts(b)
	if err != nil {
		return nil, err
	}
	return New(f)
}

func parseJSONParts(b []byte) (Filter, error) {
	var f Filter
	if len(b) > MaxFilterBytes {
		return f, event.Invalid("filter is longer than %d bytes", MaxFilterBytes)
	}
	top, err := object("filter", b)
	if err != nil {
		return f, err
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		raw := top[k]
		switch k {
		case "tags":
			t, err := object("filter tags", raw)
			if err != nil {
				return f, err
			}
			f.Tags = &Tags{}
			for _, tk := range slices.Sorted(maps.Keys(t)) {
				var list []string
				if tk != "any" && tk != "all" {
					return f, event.Invalid("unknown member %q in filter tags (want any or all)", tk)
				}
				if !isKind(t[tk], '[') || json.Unmarshal(t[tk], &list) != nil {
					return f, event.Invalid("tags.%s must be an array of strings", tk)
				}
				if len(list) == 0 {
					return f, event.Invalid("tags.%s is empty", tk)
				}
				if tk == "any" {
					f.Tags.Any = list
				} else {
					f.Tags.All = list
				}
			}
		case "near":
			n, err := object("filter near", raw)
			if err != nil {
				return f, err
			}
			var c Circle
			dst := map[string]*float64{"lat": &c.Lat, "lon": &c.Lon, "radius_m": &c.RadiusM}
			for _, nk := range slices.Sorted(maps.Keys(n)) {
				if dst[nk] == nil {
					return f, event.Invalid("unknown member %q in filter near (want lat, lon, radius_m)", nk)
				}
			}
			for _, nk := range []string{"lat", "lon", "radius_m"} {
				v, ok := n[nk]
				if !ok {
					return f, event.Invalid("near.%s is required", nk)
				}
				if !isNumber(v) || json.Unmarshal(v, dst[nk]) != nil {
					return f, event.Invalid("near.%s must be a number", nk)
				}
			}
			f.Near = &c
		case "where":
			w, err := object("filter where", raw)
			if err != nil {
				return f, err
			}
			if len(w) > MaxWhere {
				return f, event.Invalid("more than %d where fields", MaxWhere)
			}
			f.Where = make(map[string]any, len(w))
			for _, p := range slices.Sorted(maps.Keys(w)) {
				d := json.NewDecoder(bytes.NewReader(w[p]))
				d.UseNumber()
				var v any
				if d.Decode(&v) != nil {
					return f, event.Invalid("where %q: value is not valid JSON", p)
				}
				f.Where[p] = v
			}
		case "contains":
			if !isKind(raw, '"') || json.Unmarshal(raw, &f.Contains) != nil {
				return f, event.Invalid("contains must be a string")
			}
		default:
			return f, event.Invalid("unknown filter member %q (want tags, near, where, contains)", k)
		}
	}
	return f, nil
}

// object decodes a JSON object into its members.
func object(what string, b []byte) (map[string]json.RawMessage, error) {
	if !isKind(b, '{') {
		return nil, event.Invalid("%s must be a JSON object", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, event.Invalid("%s is not valid JSON", what)
	}
	return m, nil
}

func isKind(b []byte, c byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == c
}

func isNumber(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '-' || isDigit(b[0]))
}

// FromQuery reads a filter and a projection from HTTP query parameters:
//
//	tag=T             (repeatable) the event carries at least one of them
//	tags_all=T        (repeatable) the event carries all of them
//	near=LAT,LON,RADIUS_M
//	where.PATH=VALUE  VALUE is a number, true, false or null when it reads
//	                  as one in JSON, else a string (where.user.id=42 matches 42)
//	q=TEXT            contains
//	fields=a,b.c      (repeatable) projection
//	filter=JSON       the JSON form (see ParseJSON), merged with the above
//
// Other parameters are ignored. A part given both as a parameter and inside
// filter= must say the same thing in both, or it is an error. The filter is
// nil when no filter parameter is given, and the projection nil when no
// fields are; nil values mean "everything". Errors are
// event.ValidationErrors.
func FromQuery(v url.Values) (*Filter, *Projection, error) {
	var q Filter
	given := false
	if ts := v["tag"]; len(ts) > 0 {
		q.Tags = &Tags{Any: ts}
		given = true
	}
	if ts := v["tags_all"]; len(ts) > 0 {
		if q.Tags == nil {
			q.Tags = &Tags{}
		}
		q.Tags.All = ts
		given = true
	}
	if s, ok, err := single(v, "near"); err != nil {
		return nil, nil, err
	} else if ok {
		parts := strings.Split(s, ",")
		if len(parts) != 3 {
			return nil, nil, event.Invalid("near must be LAT,LON,RADIUS_M")
		}
		var n [3]float64
		for i, p := range parts {
			x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				return nil, nil, event.Invalid("near must be LAT,LON,RADIUS_M (numbers), not %q", s)
			}
			n[i] = x
		}
		q.Near = &Circle{Lat: n[0], Lon: n[1], RadiusM: n[2]}
		given = true
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		path, ok := strings.CutPrefix(k, "where.")
		if !ok {
			continue
		}
		s, _, err := single(v, k)
		if err != nil {
			return nil, nil, err
		}
		if q.Where == nil {
			q.Where = make(map[string]any)
		}
		if len(q.Where) >= MaxWhere {
			return nil, nil, event.Invalid("more than %d where fields", MaxWhere)
		}
		q.Where[path] = queryValue(s)
		given = true
	}
	if s, ok, err := single(v, "q"); err != nil {
		return nil, nil, err
	} else if ok && s != "" {
		q.Contains = s
		given = true
	}
	if s, ok, err := single(v, "filter"); err != nil {
		return nil, nil, err
	} else if ok {
		j, err := parseJSONParts([]byte(s))
		if err != nil {
			return nil, nil, err
		}
		if err := merge(&q, j); err != nil {
			return nil, nil, err
		}
		given = true
	}
	var f *Filter
	if given {
		var err error
		if f, err = New(q); err != nil {
			return nil, nil, err
		}
	}
	var fields []string
	for _, s := range v["fields"] {
		if strings.TrimSpace(s) == "" {
			continue
		}
		for p := range strings.SplitSeq(s, ",") {
			fields = append(fields, strings.TrimSpace(p))
		}
	}
	p, err := ParseFields(fields)
	if err != nil {
		return nil, nil, err
	}
	return f, p, nil
}

// single returns the one value of a parameter; repeating it with different
// values is an error.
func single(v url.Values, name string) (string, bool, error) {
	vals := v[name]
	if len(vals) == 0 {
		return "", false, nil
	}
	for _, s := range vals[1:] {
		if s != vals[0] {
			return "", false, event.Invalid("%s= is given more than once with different values", name)
		}
	}
	return vals[0], true, nil
}

// queryValue reads a where value from a query: JSON number, true, false
// and null stand for themselves; anything else is a string.
func queryValue(s string) any {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if _, ok := canonNumber(s); ok {
		return json.Number(s)
	}
	return s
}

// merge adds the JSON form j to the query form q; a part set in both must
// mean the same.
func merge(q *Filter, j Filter) error {
	if j.Tags != nil {
		if q.Tags == nil {
			q.Tags = &Tags{}
		}
		var err error
		if q.Tags.Any, err = mergeTags("tag=", "tags.any", q.Tags.Any, j.Tags.Any); err != nil {
			return err
		}
		if q.Tags.All, err = mergeTags("tags_all=", "tags.all", q.Tags.All, j.Tags.All); err != nil {
			return err
		}
	}
	if j.Near != nil {
		if q.Near != nil {
			a, errA := normCircle(*q.Near)
			b, errB := normCircle(*j.Near)
			if errA != nil || errB != nil || a != b {
				return event.Invalid("near= and filter's near disagree")
			}
		}
		q.Near = j.Near
	}
	for p, v := range j.Where {
		if old, ok := q.Where[p]; ok {
			a, _, errA := normValue(p, old)
			b, _, errB := normValue(p, v)
			if errA != nil || errB != nil || a.kind != b.kind || a.str != b.str || a.b != b.b {
				return event.Invalid("where.%s= and filter's where %q disagree", p, p)
			}
			continue
		}
		if q.Where == nil {
			q.Where = make(map[string]any)
		}
		if len(q.Where) >= MaxWhere {
			return event.Invalid("more than %d where fields", MaxWhere)
		}
		q.Where[p] = v
	}
	if j.Contains != "" {
		if q.Contains != "" && fold(q.Contains) != fold(j.Contains) {
			return event.Invalid("q= and filter's contains disagree")
		}
		q.Contains = j.Contains
	}
	return nil
}

func mergeTags(param, member string, q, j []string) ([]string, error) {
	if len(j) == 0 {
		return q, nil
	}
	if len(q) == 0 {
		return j, nil
	}
	a, errA := normTags(param, q)
	b, errB := normTags(member, j)
	if errA != nil {
		return nil, errA
	}
	if errB != nil {
		return nil, errB
	}
	if !slices.Equal(a, b) {
		return nil, event.Invalid("%s and filter's %s disagree", param, member)
	}
	return q, nil
}
