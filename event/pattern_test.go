package event

import (
	"strings"
	"testing"
)

// refMatch is the reference for Pattern.Match: the rules written as plain
// recursion over segment lists. It is exponential in the number of "**" and
// used only on small inputs.
func refMatch(pattern, topic string) bool {
	ps, ts := strings.Split(pattern, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$sys/") && ps[0] != "$sys" {
		return false
	}
	var rec func(ps, ts []string) bool
	rec = func(ps, ts []string) bool {
		if len(ps) == 0 {
			return len(ts) == 0
		}
		switch ps[0] {
		case "**":
			min := 0
			if len(ps) == 1 {
				min = 1 // a trailing ** takes at least one segment
			}
			for k := min; k <= len(ts); k++ {
				if rec(ps[1:], ts[k:]) {
					return true
				}
			}
			return false
		case "*":
			return len(ts) > 0 && rec(ps[1:], ts[1:])
		default:
			return len(ts) > 0 && ts[0] == ps[0] && rec(ps[1:], ts[1:])
		}
	}
	return rec(ps, ts)
}

var patternCases = []struct {
	pattern, topic string
	want           bool
}{
	{"photos/tag/*", "photos/tag/kitten", true},
	{"photos/tag/*", "photos/tag/kitten/big", false},
	{"photos/tag/*", "photos/tag", false},
	{"photos/tag/*", "photos/tag/", true}, // an empty last segment
	{"photos/**", "photos/a", true},
	{"photos/**", "photos/a/b/c", true},
	{"photos/**", "photos", false}, // a trailing ** takes at least one
	{"photos/**", "photos/", true},
	{"photos/**", "photosx/a", false},
	{"photos/**/raw", "photos/raw", true}, // an inner ** may take none
	{"photos/**/raw", "photos/a/b/raw", true},
	{"photos/**/raw", "photos/a/b/raw/x", false},
	{"photos/**/raw", "photos/raw/raw", true},
	{"**", "anything/at/all", true},
	{"**", "x", true},
	{"**/x", "x", true},
	{"**/x", "a/x", true},
	{"**/x", "a/y", false},
	{"a/**/b/**", "a/b", false},
	{"a/**/b/**", "a/b/c", true},
	{"a/**/b/**", "a/x/b/y/z", true},
	{"*/b", "a/b", true},
	{"*/b", "a/c", false},
	{"*/b", "/b", true}, // an empty first segment
	{"*", "a", true},
	{"*", "a/b", false},
	{"a/*b", "a/*b", true}, // "*b" is literal
	{"a/*b", "a/xb", false},
	{"a/b*", "a/b*", true},
	{"a//*", "a//x", true}, // empty segments count
	{"a//*", "a/x", false},
	{"a/", "a/", true}, // a plain topic matches only itself
	{"a/", "a", false},
	{"chat/room-1", "chat/room-1", true},
	{"chat/room-1", "chat/room-2", false},
	{"https://example.com/*", "https://example.com/feed.atom", true},
	{"**", "$sys/stats", false}, // reserved topics only match $sys/ patterns
	{"*/stats", "$sys/stats", false},
	{"$sys/**", "$sys/stats", true},
	{"$sys/*", "$sys/stats", true},
	{"**/a/**/a/**/a/**/b", strings.Repeat("a/", 499) + "a", false},
	{"**/a/**/a/**/a/**/b", strings.Repeat("a/", 499) + "b", true},
}

func TestPatternMatch(t *testing.T) {
	for _, c := range patternCases {
		p, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("compile %q: %v", c.pattern, err)
		}
		if got := p.Match(c.topic); got != c.want {
			t.Errorf("%q match %q = %v, want %v", c.pattern, c.topic, got, c.want)
		}
		if len(c.topic) < 100 {
			if ref := refMatch(c.pattern, c.topic); ref != c.want {
				t.Errorf("reference: %q match %q = %v, want %v", c.pattern, c.topic, ref, c.want)
			}
		}
	}
}

func TestCompilePatternLimits(t *testing.T) {
	cases := []struct {
		pattern string
		err     string // "" when valid
	}{
		{"**/a/**/b/**/c/**", ""},
		{"**/a/**/b/**/c/**/d/**", "5 '**' segments; the limit is 4"},
		{"a/**/**", "two '**' in a row"},
		{strings.Repeat("x/", 31) + "*", ""},
		{strings.Repeat("x/", 32) + "*", "33 segments; the limit is 32"},
		{strings.Repeat("x/", 40) + "x", ""}, // a plain topic is not limited
		{"", "empty"},
		{strings.Repeat("x", MaxTopicLen+1), "longer than"},
	}
	for _, c := range cases {
		_, err := CompilePattern(c.pattern)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.pattern, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: got %v, want an error with %q", c.pattern, err, c.err)
		case err != nil:
			if !IsValidation(err) {
				t.Errorf("%q: %v is not a ValidationError", c.pattern, err)
			}
		}
	}
}

// TestPatternMatchWorstCase is the regression test for finding 1: the most
// "**" a pattern may have, against a long topic that almost matches. The
// old backtracking matcher took O(n^4) steps here; this one is linear in
// the topic, so the loop below finishes at once (it would not end in the
// test's time before).
func TestPatternMatchWorstCase(t *testing.T) {
	p, err := CompilePattern("**/a/**/a/**/a/**/b")
	if err != nil {
		t.Fatal(err)
	}
	topic := strings.Repeat("a/", 499) + "a" // 500 segments, no b
	for range 1000 {
		if p.Match(topic) {
			t.Fatal("matched a topic without b")
		}
	}
	if !p.Match(topic + "/b") {
		t.Fatal("did not match the topic ending in b")
	}
}

// BenchmarkMatchWorstCase is the audit's finding 1 at the caps: four '**'
// against a 500-segment topic that almost matches. The old backtracking
// matcher took about 50 ms at 80 segments; this one is linear.
func BenchmarkMatchWorstCase(b *testing.B) {
	p, err := CompilePattern("**/a/**/a/**/a/**/b")
	if err != nil {
		b.Fatal(err)
	}
	topic := strings.Repeat("a/", 499) + "a"
	for b.Loop() {
		if p.Match(topic) {
			b.Fatal("matched")
		}
	}
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	p, _ := CompilePattern("photos/**/raw")
	if n := testing.AllocsPerRun(100, func() { p.Match("photos/a/b/c/raw") }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

// FuzzPatternMatch checks Match against the reference on patterns and
// topics built from a small alphabet, so that matches are common.
func FuzzPatternMatch(f *testing.F) {
	for _, c := range patternCases {
		if len(c.topic) < 100 {
			f.Add(c.pattern, c.topic)
		}
	}
	f.Add("**/a/**/a/**", "a/a/b/a")
	f.Add("a/**/*/**/b", "a/x/b")
	f.Add("*/**/*", "a/b")
	f.Add("$sys/**", "$sys/")
	f.Add("**", "")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		if len(pattern) > 64 || len(topic) > 64 {
			return
		}
		p, err := CompilePattern(pattern)
		if err != nil {
			return
		}
		if got, want := p.Match(topic), refMatch(pattern, topic); got != want {
			t.Fatalf("%q match %q = %v, reference says %v", pattern, topic, got, want)
		}
	})
}

func TestIsPattern(t *testing.T) {
	for s, want := range map[string]bool{"a/*": true, "**": true, "a/b": false, "a*/b": false, "*x": false} {
		if IsPattern(s) != want {
			t.Errorf("IsPattern(%q) != %v", s, want)
		}
	}
	if err := ValidateTopic("a/*"); err == nil {
		t.Error("publishing to a pattern must be refused")
	}
}
