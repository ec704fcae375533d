package access

import (
	"slices"
	"strings"
)

// Pattern algebra for hubbub's topic patterns (see event.Pattern): a
// topic is a list of segments; "*" is exactly one segment, "**" zero or
// more, and a trailing "**" one or more. Both functions below reason on
// these raw languages and ignore the rule that keeps $sys/ topics out of
// wildcard matches: the access policy handles $sys/ on its own, and
// ignoring the rule only makes Subset say false and Intersects say true
// more often, which is the safe side for both.

// elem is one element of a normalised pattern.
type elem struct {
	kind byte // 'l' literal, 'o' one segment, 'a' any number of segments
	lit  string
}

// normalise turns a pattern into elements: a trailing "**" becomes "one,
// then any", and every run of wildcards is rewritten as its Ones followed
// by at most one Any (the run's language is "at least k segments"), so
// that equal languages of a run have one spelling.
func normalise(pattern string) []elem {
	segs := strings.Split(pattern, "/")
	out := make([]elem, 0, len(segs)+1)
	ones, anyRun := 0, false
	flush := func() {
		for range ones {
			out = append(out, elem{kind: 'o'})
		}
		if anyRun {
			out = append(out, elem{kind: 'a'})
		}
		ones, anyRun = 0, false
	}
	for i, s := range segs {
		switch {
		case s == "*":
			ones++
		case s == "**" && i == len(segs)-1:
			ones++
			anyRun = true
		case s == "**":
			anyRun = true
		default:
			flush()
			out = append(out, elem{kind: 'l', lit: s})
		}
	}
	flush()
	return out
}

// Intersects reports whether some topic matches both patterns (plain
// topics are patterns that match themselves). It runs in O(len(p)·len(q))
// time and space: a search over pairs of positions, the word being built
// as both advance.
func Intersects(p, q string) bool {
	a, b := normalise(p), normalise(q)
	n, m := len(a), len(b)
	seen := make([]bool, (n+1)*(m+1))
	stack := []int{0}
	seen[0] = true
	push := func(i, j int) {
		k := i*(m+1) + j
		if !seen[k] {
			seen[k] = true
			stack = append(stack, k)
		}
	}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		i, j := k/(m+1), k%(m+1)
		if i == n && j == m {
			return true
		}
		if i < n && a[i].kind == 'a' {
			push(i+1, j) // the Any takes no more segments
		}
		if j < m && b[j].kind == 'a' {
			push(i, j+1)
		}
		if i == n || j == m {
			continue
		}
		// One segment more, consumed by both sides.
		x, y := a[i], b[j]
		if x.kind == 'l' && y.kind == 'l' && x.lit != y.lit {
			continue
		}
		ni, nj := i+1, j+1
		if x.kind == 'a' {
			ni = i
		}
		if y.kind == 'a' {
			nj = j
		}
		push(ni, nj)
	}
	return false
}

// maxSubsetWork bounds the search of Subset, in positions visited.
// Patterns of tens of segments stay far below it; past it Subset answers
// false (not proven), so a hostile pattern costs at most this much.
const maxSubsetWork = 1 << 14

// Subset reports whether every topic that p matches is also matched by q.
// It is exact for patterns of realistic size and answers false when the
// search exceeds its bound, so a true answer is always right.
//
// Method: literals that appear in neither pattern all behave alike, so
// topics over the literals of p and q plus one fresh segment decide the
// question. A breadth-first search over that alphabet runs both patterns
// as deterministic sets of positions and looks for a word that p accepts
// and q does not.
func Subset(p, q string) bool {
	ok, _ := subset(p, q)
	return ok
}

// subset is Subset that also says how much work it did.
func subset(p, q string) (bool, int) {
	a, b := normalise(p), normalise(q)
	work := 0
	alphabet := literals(a, b)
	type state struct{ pa, pb string }
	key := func(sa, sb []bool) state { return state{boolKey(sa), boolKey(sb)} }
	sa, sb := closure(a, single(len(a)+1, 0)), closure(b, single(len(b)+1, 0))
	seen := map[state]bool{key(sa, sb): true}
	type item struct{ sa, sb []bool }
	queue := []item{{sa, sb}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if it.sa[len(a)] && !it.sb[len(b)] {
			return false, work // a word p matches and q does not
		}
		for _, seg := range alphabet {
			if work += len(a) + len(b) + 2; work > maxSubsetWork {
				return false, work
			}
			na := step(a, it.sa, seg)
			if !slices.Contains(na, true) {
				continue // p can match nothing that starts this way
			}
			nb := step(b, it.sb, seg)
			k := key(na, nb)
			if seen[k] {
				continue
			}
			seen[k] = true
			queue = append(queue, item{na, nb})
		}
	}
	return true, work
}

// literals lists the literal segments of a and b, and one that is neither.
func literals(a, b []elem) []string {
	set := map[string]bool{}
	for _, e := range slices.Concat(a, b) {
		if e.kind == 'l' {
			set[e.lit] = true
		}
	}
	out := make([]string, 0, len(set)+1)
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	fresh := "\x00"
	for set[fresh] {
		fresh += "\x00"
	}
	return append(out, fresh)
}

func single(n, i int) []bool {
	s := make([]bool, n)
	s[i] = true
	return s
}

// closure adds to s the positions reachable by letting an Any take no
// more segments.
func closure(p []elem, s []bool) []bool {
	for i := range p {
		if s[i] && p[i].kind == 'a' {
			s[i+1] = true
		}
	}
	return s
}

// step is the set of positions after one more segment.
func step(p []elem, s []bool, seg string) []bool {
	out := make([]bool, len(p)+1)
	for i, on := range s[:len(p)] {
		if !on {
			continue
		}
		switch e := p[i]; e.kind {
		case 'a':
			out[i] = true
		case 'o':
			out[i+1] = true
		case 'l':
			if e.lit == seg {
				out[i+1] = true
			}
		}
	}
	return closure(p, out)
}

func boolKey(s []bool) string {
	b := make([]byte, len(s))
	for i, on := range s {
		if on {
			b[i] = 1
		}
	}
	return string(b)
}
