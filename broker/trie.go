package broker

import (
	"strings"

	"github.com/hubbub/hubbub/event"
)

// trie indexes pattern subscriptions by segment, as MQTT brokers do, so a
// topic is matched by walking only the nodes whose pattern prefix matches
// a prefix of it: the cost of a walk follows the patterns that (nearly)
// match, not all of them. It is guarded by Broker.mu (changes) and
// Broker.walkMu (the scratch state of a walk).
type trie struct {
	root  node
	step  uint64  // walk step counter; a node stamped with it is in next
	cur   []*node // scratch: the nodes active before a segment
	next  []*node // scratch: after it
	visit uint64  // nodes added to an active set, ever (for tests)
}

// node is one pattern prefix. Subscribers whose pattern ends here are in
// subs. A node reached by a "**" edge (dstar) stays active while the "**"
// takes more segments.
type node struct {
	parent *node
	seg    string // the edge from parent: a literal, "*" or "**"
	lit    map[string]*node
	star   *node
	dstar  *node
	subs   map[*Sub]struct{}
	stamp  uint64
}

func (n *node) child(seg string) *node {
	switch seg {
	case "*":
		return n.star
	case "**":
		return n.dstar
	}
	return n.lit[seg]
}

// add registers s under pattern p.
func (t *trie) add(p *event.Pattern, s *Sub) {
	n := &t.root
	for seg := range strings.SplitSeq(p.String(), "/") {
		c := n.child(seg)
		if c == nil {
			c = &node{parent: n, seg: seg}
			switch seg {
			case "*":
				n.star = c
			case "**":
				n.dstar = c
			default:
				if n.lit == nil {
					n.lit = make(map[string]*node)
				}
				n.lit[seg] = c
			}
		}
		n = c
	}
	if n.subs == nil {
		n.subs = make(map[*Sub]struct{})
	}
	n.subs[s] = struct{}{}
}

// remove unregisters s from pattern p and prunes the nodes left empty.
func (t *trie) remove(p *event.Pattern, s *Sub) {
	n := &t.root
	for seg := range strings.SplitSeq(p.String(), "/") {
		if n = n.child(seg); n == nil {
			return
		}
	}
	delete(n.subs, s)
	for n != &t.root && len(n.subs) == 0 && len(n.lit) == 0 && n.star == nil && n.dstar == nil {
		up := n.parent
		switch n.seg {
		case "*":
			up.star = nil
		case "**":
			up.dstar = nil
		default:
			delete(up.lit, n.seg)
		}
		n = up
	}
}

// empty reports whether no pattern is registered.
func (t *trie) empty() bool {
	r := &t.root
	return len(r.lit) == 0 && r.star == nil && r.dstar == nil && len(r.subs) == 0
}

// walk returns the nodes whose pattern matches topic (some may have no
// subscribers); the slice is valid until the next walk. It does not
// allocate once the scratch slices have grown. Each node is active at
// most once per topic segment, so a walk costs O(segments × active
// nodes), and the active nodes are the pattern prefixes matching a
// prefix of topic.
func (t *trie) walk(topic string) []*node {
	cur := append(t.cur[:0], &t.root)
	next := t.next[:0]
	reserved := event.IsReserved(topic)
	rem, more := topic, true
	for more && len(cur) > 0 {
		seg := rem
		if j := strings.IndexByte(rem, '/'); j >= 0 {
			seg, rem = rem[:j], rem[j+1:]
		} else {
			rem, more = "", false
		}
		t.step++
		next = next[:0]
		add := func(n *node) {
			if n != nil && n.stamp != t.step {
				n.stamp = t.step
				next = append(next, n)
				t.visit++
			}
		}
		if reserved {
			// Reserved topics match only patterns that start with "$sys".
			add(t.root.lit[seg])
			reserved = false
		} else {
			for _, n := range cur {
				if n.seg == "**" {
					add(n) // the ** takes this segment too
				}
				add(n.lit[seg])
				add(n.star)
				if d := n.dstar; d != nil {
					add(d)          // a ** takes this segment
					add(d.lit[seg]) // or takes none
					add(d.star)
				}
			}
		}
		cur, next = next, cur
	}
	t.cur, t.next = cur, next
	return cur
}
