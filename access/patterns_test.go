package access

import (
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func TestSubsetAndIntersects(t *testing.T) {
	for _, c := range []struct {
		p, q              string
		subset, intersect bool
	}{
		{"a/b", "a/b", true, true},
		{"a/b", "a/c", false, false},
		{"a/b", "a/*", true, true},
		{"a/*", "a/b", false, true},
		{"a/*", "a/*", true, true},
		{"a/*", "a/**", true, true},
		{"a/**", "a/*", false, true},
		{"a/**", "**", true, true},
		{"**", "a/**", false, true},
		{"a", "a/**", false, false}, // a trailing ** needs one segment
		{"a", "a/**/x", false, false},
		{"a/x", "a/**/x", true, true}, // an inner ** may take none
		{"a/b/c/x", "a/**/x", true, true},
		{"a/*/x", "a/**/x", true, true},
		{"a/**/x", "a/*/x", false, true},
		{"*/**", "**/*", true, true}, // both: at least one segment... and two
		{"**/*", "*/**", false, true},
		{"*/*/**", "**/*/*", true, true},
		{"user/42/**", "user/*/**", true, true},
		{"user/*/**", "user/42/**", false, true},
		{"user/42/**", "chat/**", false, false},
		{"**/a/**/a/**", "**/a/*/**", true, true}, // beyond a syntactic check
		{"x/**/y", "x/**", true, true},
		{"x/**", "x/**/y", false, true},
		{"*", "**", true, true},
		{"**", "*", false, true},
	} {
		if got := Subset(c.p, c.q); got != c.subset {
			t.Errorf("Subset(%q, %q) = %v, want %v", c.p, c.q, got, c.subset)
		}
		if got := Intersects(c.p, c.q); got != c.intersect {
			t.Errorf("Intersects(%q, %q) = %v, want %v", c.p, c.q, got, c.intersect)
		}
		if got := Intersects(c.q, c.p); got != c.intersect {
			t.Errorf("Intersects(%q, %q) = %v, want %v (symmetric)", c.q, c.p, got, c.intersect)
		}
	}
}

// TestSubsetBounded shows that a hostile pair of patterns costs a bounded
// search, and that the answer past the bound is the safe one.
func TestSubsetBounded(t *testing.T) {
	segs := make([]string, 0, 200)
	for i := range 100 {
		segs = append(segs, "**", string(rune('a'+i%3)))
	}
	p := strings.Join(segs, "/")
	for _, q := range []string{"**/a/*/b/**", p, "**"} {
		_, work := subset(p, q)
		if work > maxSubsetWork+2*len(p) {
			t.Fatalf("subset(%.20q..., %.20q) did %d units of work, more than its bound %d", p, q, work, maxSubsetWork)
		}
	}
	if ok, work := subset("user/42/**", "user/*/**"); !ok || work > 1000 {
		t.Fatalf("a realistic pair: ok=%v after %d units of work", ok, work)
	}
	if !Intersects(p, p) {
		t.Fatal("a pattern intersects itself")
	}
}

// patternFrom builds a small pattern from fuzz bytes: each byte picks a
// segment from a, b, * and **.
func patternFrom(b []byte) string {
	if len(b) == 0 || len(b) > 3 {
		return ""
	}
	segs := make([]string, len(b))
	for i, c := range b {
		segs[i] = [...]string{"a", "b", "*", "**"}[c%4]
	}
	return strings.Join(segs, "/")
}

// topicsUpTo lists every topic over {a, b, c} of 1 to n segments.
func topicsUpTo(n int) []string {
	var out []string
	level := []string{""}
	for range n {
		var next []string
		for _, pre := range level {
			for _, s := range []string{"a", "b", "c"} {
				t := s
				if pre != "" {
					t = pre + "/" + s
				}
				next = append(next, t)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// FuzzPatternAlgebra checks Subset and Intersects against brute force:
// every topic of up to len(p)+len(q)+2 segments over {a, b, c}, where c
// stands for every literal the patterns do not name.
func FuzzPatternAlgebra(f *testing.F) {
	f.Add([]byte{0, 3}, []byte{3})
	f.Add([]byte{3, 0, 3}, []byte{3, 2, 3})
	f.Add([]byte{2, 3}, []byte{3, 2})
	f.Add([]byte{0, 1}, []byte{0, 2})
	f.Fuzz(func(t *testing.T, pb, qb []byte) {
		p, q := patternFrom(pb), patternFrom(qb)
		if p == "" || q == "" {
			return
		}
		pp, err1 := event.CompilePattern(p)
		qp, err2 := event.CompilePattern(q)
		if err1 != nil || err2 != nil {
			return
		}
		subset, meet := true, false
		for _, topic := range topicsUpTo(len(pb) + len(qb) + 2) {
			inP, inQ := pp.Match(topic), qp.Match(topic)
			if inP && !inQ {
				subset = false
			}
			if inP && inQ {
				meet = true
			}
		}
		if got := Subset(p, q); got != subset {
			t.Fatalf("Subset(%q, %q) = %v, brute force says %v", p, q, got, subset)
		}
		if got := Intersects(p, q); got != meet {
			t.Fatalf("Intersects(%q, %q) = %v, brute force says %v", p, q, got, meet)
		}
	})
}
