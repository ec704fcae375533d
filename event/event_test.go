package event

import "testing"

// Audit finding 13 (info): NUL, CR, LF and the other controls are refused in
// topics and event keys by the same rule.
func TestValidateNames(t *testing.T) {
	cases := []struct {
		name  string
		draft Draft
		ok    bool
	}{
		{"plain", Draft{Topics: []string{"a/b"}, Key: "k-1 é"}, true},
		{"NUL in topic", Draft{Topics: []string{"a\x00b"}}, false},
		{"LF in topic", Draft{Topics: []string{"a\nb"}}, false},
		{"CR in topic", Draft{Topics: []string{"a\rb"}}, false},
		{"tab in topic", Draft{Topics: []string{"a\tb"}}, false},
		{"DEL in topic", Draft{Topics: []string{"a\x7fb"}}, false},
		{"bad UTF-8 in topic", Draft{Topics: []string{"a\xffb"}}, false},
		{"NUL in key", Draft{Topics: []string{"a"}, Key: "k\x00"}, false},
		{"LF in key", Draft{Topics: []string{"a"}, Key: "k\n"}, false},
		{"CR in key", Draft{Topics: []string{"a"}, Key: "\rk"}, false},
		{"ESC in key", Draft{Topics: []string{"a"}, Key: "k\x1b[0m"}, false},
		{"bad UTF-8 in key", Draft{Topics: []string{"a"}, Key: "k\xc3"}, false},
	}
	for _, c := range cases {
		err := c.draft.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !IsValidation(err) {
			t.Errorf("%s: %v is not a ValidationError", c.name, err)
		}
	}
}
