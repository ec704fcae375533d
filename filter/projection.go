package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/hubbub/hubbub/event"
)

// Projection cuts JSON data down to a list of dotted paths. The nil
// *Projection keeps everything. A Projection is immutable and safe to share.
type Projection struct {
	fields []string
	root   *pnode
}

// pnode is one level of the path tree: keys in the order first asked for.
type pnode struct {
	keys []string
	kids map[string]*pnode // nil child: keep the whole value
}

// ParseFields builds a projection from dotted paths ("id", "user.name").
// A path that extends another ("user" and "user.id") adds nothing: the
// shorter one keeps the whole value. An empty list gives nil (keep
// everything). Errors are event.ValidationErrors.
func ParseFields(list []string) (*Projection, error) {
	if len(list) == 0 {
		return nil, nil
	}
	if len(list) > MaxFields {
		return nil, event.Invalid("more than %d fields", MaxFields)
	}
	p := &Projection{root: &pnode{kids: map[string]*pnode{}}}
	for _, f := range list {
		segs, err := splitPath("fields", f)
		if err != nil {
			return nil, err
		}
		n := p.root
		for i, s := range segs {
			child, seen := n.kids[s]
			if !seen {
				n.keys = append(n.keys, s)
			}
			if i == len(segs)-1 {
				n.kids[s] = nil // whole value, overriding any deeper paths
				break
			}
			if seen && child == nil {
				break // a shorter path already keeps the whole value
			}
			if child == nil {
				child = &pnode{kids: map[string]*pnode{}}
				n.kids[s] = child
			}
			n = child
		}
	}
	p.fields = p.root.paths("", nil)
	return p, nil
}

func (n *pnode) paths(prefix string, out []string) []string {
	for _, k := range n.keys {
		if c := n.kids[k]; c == nil {
			out = append(out, prefix+k)
		} else {
			out = c.paths(prefix+k+".", out)
		}
	}
	return out
}

// Fields returns the projection's paths after simplification, in the order
// first given; nil for the nil projection.
func (p *Projection) Fields() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.fields...)
}

// Key is the projection's canonical text (its simplified paths, comma
// separated); "" for the nil projection.
func (p *Projection) Key() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.fields, ",")
}

// Apply projects JSON data. For a JSON object it returns a new, compact
// object holding only the listed paths, nesting kept ({"user":{"id":1}} for
// "user.id"), keys in the order the paths were given; paths that are
// absent, or that pass through something other than an object, are left
// out. Data that is not a JSON object (an array, a scalar, text, empty) is
// returned unchanged, as is everything for the nil projection. The error is
// for data that starts as an object but is not valid JSON.
func (p *Projection) Apply(data []byte) ([]byte, error) {
	if p == nil || !isKind(data, '{') {
		return data, nil
	}
	var buf bytes.Buffer
	wrote, err := p.root.project(&buf, data)
	if err != nil {
		return nil, err
	}
	if !wrote {
		return []byte("{}"), nil
	}
	return buf.Bytes(), nil
}

// ApplyEvent projects the event's data when it is a JSON payload and
// returns it unchanged otherwise.
func (p *Projection) ApplyEvent(e *event.Event) ([]byte, error) {
	if p == nil || e.Kind() != event.PayloadJSON {
		return e.Data, nil
	}
	return p.Apply(e.Data)
}

var errNotJSON = errors.New("data is not valid JSON")

// project writes the projection of the object obj; wrote is false when
// nothing was kept (the caller then omits the key).
func (n *pnode) project(buf *bytes.Buffer, obj []byte) (wrote bool, err error) {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return false, errNotJSON
	}
	start := buf.Len()
	buf.WriteByte('{')
	count := 0
	for _, k := range n.keys {
		v, ok := m[k]
		if !ok {
			continue
		}
		mark := buf.Len()
		if count > 0 {
			buf.WriteByte(',')
		}
		buf.Write(appendString(nil, k))
		buf.WriteByte(':')
		child := n.kids[k]
		if child == nil {
			if err := json.Compact(buf, v); err != nil {
				return false, errNotJSON
			}
			count++
			continue
		}
		if !isKind(v, '{') {
			buf.Truncate(mark)
			continue
		}
		ok, err := child.project(buf, v)
		if err != nil {
			return false, err
		}
		if !ok {
			buf.Truncate(mark)
			continue
		}
		count++
	}
	buf.WriteByte('}')
	if count == 0 {
		buf.Truncate(start)
		return false, nil
	}
	return true, nil
}
