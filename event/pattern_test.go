package event

import "testing"

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"photos/tag/*", "photos/tag/kitten", true},
		{"photos/tag/*", "photos/tag/kitten/big", false},
		{"photos/tag/*", "photos/tag", false},
		{"photos/tag/*", "photos/tag/", true},
		{"photos/**", "photos/a", true},
		{"photos/**", "photos/a/b/c", true},
		{"photos/**", "photos", false},
		{"photos/**", "photosx/a", false},
		{"photos/**/raw", "photos/raw", true},
		{"photos/**/raw", "photos/a/b/raw", true},
		{"photos/**/raw", "photos/a/b/raw/x", false},
		{"**", "anything/at/all", true},
		{"**", "x", true},
		{"*/b", "a/b", true},
		{"*/b", "a/c", false},
		{"*", "a", true},
		{"*", "a/b", false},
		{"a/*b", "a/*b", true},
		{"a/*b", "a/xb", false},
		{"chat/room-1", "chat/room-1", true},
		{"chat/room-1", "chat/room-2", false},
		{"https://example.com/*", "https://example.com/feed.atom", true},
		{"**", "$sys/stats", false},
		{"*/stats", "$sys/stats", false},
		{"$sys/**", "$sys/stats", true},
	}
	for _, c := range cases {
		p, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("compile %q: %v", c.pattern, err)
		}
		if got := p.Match(c.topic); got != c.want {
			t.Errorf("%q match %q = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	p, _ := CompilePattern("photos/**/raw")
	if n := testing.AllocsPerRun(100, func() { p.Match("photos/a/b/c/raw") }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
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
