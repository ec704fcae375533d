package event

import "strings"

// Topic patterns select topics by '/'-separated segments:
//
//	*   exactly one segment          photos/tag/*  matches photos/tag/kitten
//	**  zero or more segments        photos/**/raw matches photos/raw and photos/a/b/raw
//
// A trailing "/**" needs at least one segment, so photos/** matches
// everything below photos but not photos itself. Other characters match
// themselves; a segment like "a*" is literal. A pattern has at most
// MaxPatternSegments segments and MaxPatternDoubleStars "**" segments, so
// matching one costs at most a small constant per topic segment.

// Pattern limits, checked by CompilePattern.
const (
	MaxPatternSegments    = 32 // segments of a pattern (a plain topic has no limit)
	MaxPatternDoubleStars = 4  // "**" segments of a pattern
)

// IsPattern reports whether s has a wildcard segment.
func IsPattern(s string) bool {
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "*" || seg == "**" {
			return true
		}
	}
	return false
}

// Pattern is a compiled topic pattern. It is immutable and safe to share.
type Pattern struct {
	raw  string
	segs []string
	wild bool // has a wildcard segment; else it matches only raw
}

// CompilePattern checks and compiles a pattern (or a plain topic, which
// then matches only itself). It is the one place the pattern limits are
// enforced; errors are event.Invalid.
func CompilePattern(s string) (*Pattern, error) {
	if s == "" {
		return nil, Invalid("topic is empty")
	}
	if len(s) > MaxTopicLen {
		return nil, Invalid("topic is longer than %d bytes", MaxTopicLen)
	}
	segs := strings.Split(s, "/")
	wild, stars := false, 0
	for i, seg := range segs {
		switch seg {
		case "*":
			wild = true
		case "**":
			wild = true
			stars++
			if i > 0 && segs[i-1] == "**" {
				return nil, Invalid("pattern %q has two '**' in a row", s)
			}
		}
	}
	if wild && len(segs) > MaxPatternSegments {
		return nil, Invalid("pattern has %d segments; the limit is %d", len(segs), MaxPatternSegments)
	}
	if stars > MaxPatternDoubleStars {
		return nil, Invalid("pattern has %d '**' segments; the limit is %d", stars, MaxPatternDoubleStars)
	}
	return &Pattern{raw: s, segs: segs, wild: wild}, nil
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.raw }

// Prefix returns the literal segments before the first wildcard, joined by
// '/', for indexing. It is "" when the pattern starts with a wildcard.
func (p *Pattern) Prefix() string {
	for i, s := range p.segs {
		if s == "*" || s == "**" {
			return strings.Join(p.segs[:i], "/")
		}
	}
	return p.raw
}

// Match reports whether topic matches. It does not allocate, and it costs
// O(topic segments × pattern segments) whatever the input: it runs the
// pattern as a set of positions (a bit set, as the pattern has at most
// MaxPatternSegments segments), advancing all of them one topic segment at a
// time, never backtracking. Reserved topics ($sys/...) match only patterns
// that start with "$sys/" themselves, so a catch-all like "**" never shows
// the hub's own topics.
func (p *Pattern) Match(topic string) bool {
	if IsReserved(topic) && p.segs[0] != SysPrefix[:len(SysPrefix)-1] {
		return false
	}
	if !p.wild {
		return topic == p.raw
	}
	segs := p.segs
	last := len(segs) - 1
	// Bit j of at: the first j pattern segments match the topic so far.
	at := p.close(1)
	rem, more := topic, true
	for more && at != 0 {
		seg := rem
		if j := strings.IndexByte(rem, '/'); j >= 0 {
			seg, rem = rem[:j], rem[j+1:]
		} else {
			rem, more = "", false
		}
		var to uint64
		for j, s := range segs {
			if at&(1<<j) == 0 {
				continue
			}
			switch {
			case s == "**":
				to |= 1<<j | 1<<(j+1) // it takes seg, and may take more
			case s == "*" || s == seg:
				to |= 1 << (j + 1)
			}
		}
		at = p.close(to)
	}
	return at&(1<<(last+1)) != 0
}

// close adds to at the positions reachable by letting a "**" take no
// segment. A trailing "**" must take one, so it is not skipped.
func (p *Pattern) close(at uint64) uint64 {
	for j := 0; j < len(p.segs)-1; j++ {
		if at&(1<<j) != 0 && p.segs[j] == "**" {
			at |= 1 << (j + 1)
		}
	}
	return at
}

// SysPrefix starts the topics reserved for the hub's own use (statistics
// for the dashboard). Outside clients cannot publish to them.
const SysPrefix = "$sys/"

// IsReserved reports whether topic is one of the hub's own.
func IsReserved(topic string) bool { return strings.HasPrefix(topic, SysPrefix) }
