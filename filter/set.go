package filter

import (
	"sync"
	"sync/atomic"

	"github.com/golang/geo/s1"
	"github.com/golang/geo/s2"

	"github.com/hubbub/hubbub/event"
)

// Geo index parameters: each circle is covered by at most coverCells s2
// cells of levels up to coverMaxLevel (about 40 m across), and the cap is
// widened by a hair so rounding can never leave a point of the circle
// outside its covering; the exact haversine test decides.
const (
	coverCells    = 8
	coverMaxLevel = 18
	coverMarginR  = 1e-9 // radians, relative and absolute (~6 mm)
)

// Set is the registry of the distinct filters in use on one broker. Add
// interns a filter by its Key and counts references, so subscribers with
// the same filter share one Handle; Eval decides, once per event, which of
// the distinct filters match, and Result.Matches answers per subscriber in
// O(1).
//
// Filters with Near are indexed by the s2 cells covering their circle: an
// event with geo looks up its own cell and that cell's ancestors, and only
// the circles found there get the exact distance test and then the rest of
// their filter. Other filters are evaluated directly. Whatever is derived
// from the event (its payload kind, decoded JSON, folded text, position) is
// computed at most once per Eval, and only if some filter needs it.
//
// A Set is safe for concurrent use: Add and Release take a write lock, Eval
// only a read lock. The zero Set is not usable; use NewSet.
type Set struct {
	mu     sync.RWMutex
	byKey  map[string]*Handle
	slots  []*Handle // by Handle.slot; nil where free
	free   []int
	plain  []*Handle // valid filters without Near, not match-all
	cells  map[s2.CellID][]*Handle
	nlevel [s2.MaxLevel + 1]int // indexed cells per level
	levels []int                // levels with indexed cells, ascending
	nextID uint64               // id of the next new Handle
	cover  s2.RegionCoverer
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{
		byKey: make(map[string]*Handle),
		cells: make(map[s2.CellID][]*Handle),
		cover: s2.RegionCoverer{MinLevel: 0, MaxLevel: coverMaxLevel, LevelMod: 1, MaxCells: coverCells},
	}
}

// Handle is one distinct filter in a Set, shared by everyone who added an
// equal filter. Its fields never change; Release it once per Add.
type Handle struct {
	set   *Set
	f     *Filter
	c     *compiled // nil: invalid filter, matches nothing
	all   bool      // matches everything
	key   string
	id    uint64
	slot  int
	refs  int // guarded by set.mu
	pidx  int // index in set.plain; guarded by set.mu
	cells []s2.CellID
	dead  atomic.Bool
}

// Filter returns the handle's filter (nil for match-everything).
func (h *Handle) Filter() *Filter { return h.f }

// Key returns the handle's filter key.
func (h *Handle) Key() string { return h.key }

// Len reports how many distinct filters the set holds.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byKey)
}

// Add registers a use of f and returns the shared handle for its key. A
// nil or zero f matches everything. A filter that did not come from New,
// ParseJSON or FromQuery is validated here; an invalid one gets a handle
// that matches nothing.
func (s *Set) Add(f *Filter) *Handle {
	var c *compiled
	key := "{}"
	if f != nil && f.c == nil {
		if g, err := New(*f); err == nil {
			f = g
		}
	}
	if f != nil {
		if c = f.c; c != nil {
			key = c.key
		} else {
			key = "invalid"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.byKey[key]; h != nil {
		h.refs++
		return h
	}
	h := &Handle{set: s, f: f, c: c, key: key, id: s.nextID, refs: 1, pidx: -1}
	s.nextID++
	if n := len(s.free); n > 0 {
		h.slot = s.free[n-1]
		s.free = s.free[:n-1]
		s.slots[h.slot] = h
	} else {
		h.slot = len(s.slots)
		s.slots = append(s.slots, h)
	}
	s.byKey[key] = h
	switch {
	case key == "{}":
		h.all = true
	case c == nil:
		// invalid: never evaluated, never matches
	case c.near != nil:
		s.index(h)
	default:
		h.pidx = len(s.plain)
		s.plain = append(s.plain, h)
	}
	return h
}

// index adds h's circle to the cell index. Caller holds s.mu.
func (s *Set) index(h *Handle) {
	n := h.f.Near
	center := s2.PointFromLatLng(s2.LatLngFromDegrees(n.Lat, n.Lon))
	angle := n.RadiusM / EarthRadiusM
	angle += angle*coverMarginR + coverMarginR
	cu := s.cover.Covering(s2.CapFromCenterAngle(center, s1.Angle(angle)))
	cu.Normalize()
	h.cells = cu
	changed := false
	for _, id := range cu {
		s.cells[id] = append(s.cells[id], h)
		lv := id.Level()
		s.nlevel[lv]++
		changed = changed || s.nlevel[lv] == 1
	}
	if changed {
		s.relevel()
	}
}

func (s *Set) relevel() {
	lv := make([]int, 0, len(s.nlevel))
	for l, n := range s.nlevel {
		if n > 0 {
			lv = append(lv, l)
		}
	}
	s.levels = lv
}

// Release drops one use of h; when the last use goes the filter leaves the
// set. Releasing a handle more often than it was added, or a handle of
// another set, does nothing.
func (s *Set) Release(h *Handle) {
	if h == nil || h.set != s {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.refs == 0 {
		return
	}
	h.refs--
	if h.refs > 0 {
		return
	}
	h.dead.Store(true)
	delete(s.byKey, h.key)
	s.slots[h.slot] = nil
	s.free = append(s.free, h.slot)
	if h.pidx >= 0 {
		last := s.plain[len(s.plain)-1]
		s.plain[h.pidx] = last
		last.pidx = h.pidx
		s.plain = s.plain[:len(s.plain)-1]
		h.pidx = -1
	}
	changed := false
	for _, id := range h.cells {
		list := s.cells[id]
		for i, x := range list {
			if x == h {
				list[i] = list[len(list)-1]
				list[len(list)-1] = nil
				list = list[:len(list)-1]
				break
			}
		}
		if len(list) == 0 {
			delete(s.cells, id)
		} else {
			s.cells[id] = list
		}
		lv := id.Level()
		s.nlevel[lv]--
		changed = changed || s.nlevel[lv] == 0
	}
	if changed {
		s.relevel()
	}
}

// Result says which of a Set's filters matched one event.
type Result struct {
	set  *Set
	e    *event.Event
	gen  uint64 // handles with id >= gen were added after Eval
	bits []uint64

	// Checked counts the filters evaluated (geo candidates and direct
	// filters); it is for tests and metrics.
	Checked int
}

// Eval evaluates every distinct filter in the set against e, once.
func (s *Set) Eval(e *event.Event) *Result {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := &Result{set: s, e: e, gen: s.nextID, bits: make([]uint64, (len(s.slots)+63)/64)}
	x := evalCtx{e: e}
	for _, h := range s.plain {
		r.Checked++
		if h.c.matchRest(&x) {
			r.bits[h.slot>>6] |= 1 << (h.slot & 63)
		}
	}
	if len(s.levels) == 0 {
		return r
	}
	p, ok := x.point()
	if !ok {
		return r
	}
	leaf := s2.CellIDFromLatLng(s2.LatLngFromDegrees(e.Geo.Lat, e.Geo.Lon))
	for _, lv := range s.levels {
		for _, h := range s.cells[leaf.Parent(lv)] {
			r.Checked++
			if h.c.near.contains(p) && h.c.matchRest(&x) {
				r.bits[h.slot>>6] |= 1 << (h.slot & 63)
			}
		}
	}
	return r
}

// Matches reports whether the event passed h's filter. It is O(1) for
// handles that were in the set when Eval ran; a handle added since is
// evaluated on the spot. A nil handle matches; a released handle, or one
// from another set, does not.
func (r *Result) Matches(h *Handle) bool {
	if h == nil {
		return true
	}
	if h.set != r.set || h.dead.Load() {
		return false
	}
	if h.all {
		return true
	}
	if h.id >= r.gen {
		return h.c != nil && h.f.Match(r.e)
	}
	return r.bits[h.slot>>6]&(1<<(h.slot&63)) != 0
}
