package event

import "strings"

// Topic patterns select topics by '/'-separated segments:
//
//	*   exactly one segment          photos/tag/*  matches photos/tag/kitten
//	**  zero or more segments        photos/**/raw matches photos/raw and photos/a/b/raw
//
// A trailing "/**" needs at least one segment, so photos/** matches
// everything below photos but not photos itself. Other characters match
// themselves; a segment like "a*" is literal.

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
}

// CompilePattern checks and compiles a pattern (or a plain topic, which
// then matches only itself).
func CompilePattern(s string) (*Pattern, error) {
	if s == "" {
		return nil, Invalid("topic is empty")
	}
	if len(s) > MaxTopicLen {
		return nil, Invalid("topic is longer than %d bytes", MaxTopicLen)
	}
	segs := strings.Split(s, "/")
	for i := 1; i < len(segs); i++ {
		if segs[i] == "**" && segs[i-1] == "**" {
			return nil, Invalid("pattern %q has two '**' in a row", s)
		}
	}
	return &Pattern{raw: s, segs: segs}, nil
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

// Match reports whether topic matches. It does not allocate. Reserved
// topics ($sys/...) match only patterns that start with "$sys/" themselves,
// so a catch-all like "**" never shows the hub's own topics.
func (p *Pattern) Match(topic string) bool {
	if IsReserved(topic) && p.segs[0] != SysPrefix[:len(SysPrefix)-1] {
		return false
	}
	return match(p.segs, topic, true)
}

// match reports whether segs match the rest of a topic: rem is what is left
// of it and more says whether any segment is left at all (rem == "" with more
// set is one empty segment, as in "a/").
func match(segs []string, rem string, more bool) bool {
	for i, s := range segs {
		if s == "**" {
			rest := segs[i+1:]
			if len(rest) == 0 {
				return more // a trailing ** needs at least one segment
			}
			for {
				if match(rest, rem, more) {
					return true
				}
				if !more {
					return false
				}
				rem, more = next(rem)
			}
		}
		if !more {
			return false
		}
		seg := rem
		if j := strings.IndexByte(rem, '/'); j >= 0 {
			seg = rem[:j]
		}
		rem, more = next(rem)
		if s != "*" && s != seg {
			return false
		}
	}
	return !more
}

// next drops the first segment of rem.
func next(rem string) (string, bool) {
	if j := strings.IndexByte(rem, '/'); j >= 0 {
		return rem[j+1:], true
	}
	return "", false
}

// SysPrefix starts the topics reserved for the hub's own use (statistics
// for the dashboard). Outside clients cannot publish to them.
const SysPrefix = "$sys/"

// IsReserved reports whether topic is one of the hub's own.
func IsReserved(topic string) bool { return strings.HasPrefix(topic, SysPrefix) }
