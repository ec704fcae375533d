package filter

import (
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func TestProjection(t *testing.T) {
	data := `{"id":7, "user":{"id":1,"name":"Ann","geo":{"lat":1,"lon":2}},"text":"hi","list":[1,2],"n":null}`
	tests := []struct {
		fields []string
		data   string
		want   string
	}{
		{[]string{"id"}, data, `{"id":7}`},
		{[]string{"user.id"}, data, `{"user":{"id":1}}`},
		{[]string{"user.geo.lat", "text"}, data, `{"user":{"geo":{"lat":1}},"text":"hi"}`},
		{[]string{"text", "user.name", "user.id"}, data, `{"text":"hi","user":{"name":"Ann","id":1}}`},
		{[]string{"user", "user.id"}, data, `{"user":{"id":1,"name":"Ann","geo":{"lat":1,"lon":2}}}`},
		{[]string{"user.id", "user"}, data, `{"user":{"id":1,"name":"Ann","geo":{"lat":1,"lon":2}}}`},
		{[]string{"missing"}, data, `{}`},
		{[]string{"user.missing", "id"}, data, `{"id":7}`},
		{[]string{"user.missing"}, data, `{}`},
		{[]string{"text.length"}, data, `{}`}, // through a string
		{[]string{"list.0"}, data, `{}`},      // arrays are not walked
		{[]string{"list", "n"}, data, `{"list":[1,2],"n":null}`},
		{[]string{"id", "id"}, data, `{"id":7}`},
		{[]string{"a<b"}, `{"a<b":"<&>"}`, `{"a<b":"<&>"}`},
		{[]string{"x"}, "  {\n\"x\" : [ 1 , 2 ] }\n", `{"x":[1,2]}`},
		// not objects: unchanged
		{[]string{"id"}, `[{"id":1}]`, `[{"id":1}]`},
		{[]string{"id"}, `"text"`, `"text"`},
		{[]string{"id"}, `42`, `42`},
		{[]string{"id"}, ``, ``},
		{[]string{"id"}, `plain text`, `plain text`},
	}
	for _, tt := range tests {
		p, err := ParseFields(tt.fields)
		if err != nil {
			t.Fatalf("ParseFields(%v): %v", tt.fields, err)
		}
		got, err := p.Apply([]byte(tt.data))
		if err != nil {
			t.Errorf("Apply(%v, %s): %v", tt.fields, tt.data, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Apply(%v, %s) = %s, want %s", tt.fields, tt.data, got, tt.want)
		}
	}
	p, _ := ParseFields([]string{"a"})
	if _, err := p.Apply([]byte(`{"a":`)); err == nil {
		t.Error("broken JSON object: no error")
	}
	var nilP *Projection
	if got, _ := nilP.Apply([]byte(`{"a":1}`)); string(got) != `{"a":1}` {
		t.Error("nil projection must keep everything")
	}
	if p, err := ParseFields(nil); p != nil || err != nil {
		t.Error("empty field list must give nil")
	}
	p, _ = ParseFields([]string{"user.id", "b", "user"})
	if p.Key() != "user,b" {
		t.Errorf("Key = %q", p.Key())
	}
}

func TestProjectionEvent(t *testing.T) {
	p, _ := ParseFields([]string{"a"})
	for _, tt := range []struct {
		e    *event.Event
		want string
	}{
		{jsonEvent(`{"a":1,"b":2}`), `{"a":1}`},
		{textEvent("text/plain", `{"a":1,"b":2}`), `{"a":1,"b":2}`},
		{textEvent("application/octet-stream", `{"a":1,"b":2}`), `{"a":1,"b":2}`},
	} {
		got, err := p.ApplyEvent(tt.e)
		if err != nil || string(got) != tt.want {
			t.Errorf("ApplyEvent(%s) = %s, %v; want %s", tt.e.ContentType, got, err, tt.want)
		}
	}
}

func TestParseFieldsErrors(t *testing.T) {
	tooMany := make([]string, MaxFields+1)
	for i := range tooMany {
		tooMany[i] = "f" + strings.Repeat("x", i)
	}
	tests := []struct {
		fields []string
		msg    string
	}{
		{[]string{""}, "fields: empty path"},
		{[]string{"a..b"}, "empty segment"},
		{[]string{"a."}, "empty segment"},
		{[]string{strings.Repeat("a.", MaxPathDepth) + "a"}, "more than 16 segments"},
		{[]string{strings.Repeat("a", MaxPathLen+1)}, "longer than 256 bytes"},
		{[]string{"\xff"}, "not valid UTF-8"},
		{tooMany, "more than 64 fields"},
	}
	for _, tt := range tests {
		_, err := ParseFields(tt.fields)
		if err == nil || !event.IsValidation(err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseFields(%.40q) error %v, want %q", tt.fields, err, tt.msg)
		}
	}
}
