package filter

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func TestSetInterning(t *testing.T) {
	s := NewSet()
	a1 := s.Add(mustParse(t, `{"tags":{"any":["b","a"]}}`))
	a2 := s.Add(mustParse(t, `{"tags":{"any":["a","b","a"]}}`))
	b := s.Add(mustParse(t, `{"near":{"lat":0,"lon":0,"radius_m":1000}}`))
	all1 := s.Add(nil)
	all2 := s.Add(mustParse(t, `{}`))
	if a1 != a2 || all1 != all2 || a1 == b {
		t.Fatal("equal filters must share a handle, different ones must not")
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	e := &event.Event{Data: []byte(`{}`), Tags: []string{"a"}, Geo: &event.Geo{Lat: 0.001, Lon: 0}}
	r := s.Eval(e)
	if !r.Matches(a1) || !r.Matches(b) || !r.Matches(all1) || !r.Matches(nil) {
		t.Error("all should match")
	}

	s.Release(a1)
	if s.Len() != 3 || !s.Eval(e).Matches(a2) {
		t.Error("one reference remains: the filter stays")
	}
	s.Release(a2)
	if s.Len() != 2 {
		t.Errorf("Len = %d after last release, want 2", s.Len())
	}
	if s.Eval(e).Matches(a2) || r.Matches(a2) {
		t.Error("a released handle matches nothing")
	}
	s.Release(a2) // extra release: ignored
	if s.Len() != 2 {
		t.Error("extra release changed the set")
	}

	// The freed slot is reused; an old result must not lend the new filter
	// the old filter's answer.
	c := s.Add(mustParse(t, `{"tags":{"any":["zzz"]}}`))
	if c.slot != a1.slot {
		t.Fatalf("slot not reused: %d vs %d", c.slot, a1.slot)
	}
	if r.Matches(c) {
		t.Error("handle added after Eval must be evaluated on its own, not read from a reused slot")
	}
	d := s.Add(mustParse(t, `{"tags":{"all":["a"]}}`))
	if !r.Matches(d) {
		t.Error("handle added after Eval must still get the right answer")
	}
	// A new handle for a released key is a new handle.
	a3 := s.Add(mustParse(t, `{"tags":{"any":["a","b"]}}`))
	if a3 == a1 || !s.Eval(e).Matches(a3) {
		t.Error("re-added filter misbehaves")
	}
	// Handles of another set never match.
	other := NewSet()
	if other.Eval(e).Matches(a3) {
		t.Error("foreign handle matched")
	}
	other.Release(a3) // ignored
	if !s.Eval(e).Matches(a3) {
		t.Error("foreign release changed the set")
	}
	// Invalid literals get a handle that matches nothing.
	bad := s.Add(&Filter{Near: &Circle{RadiusM: -1}})
	if s.Eval(e).Matches(bad) || bad.Key() != "invalid" {
		t.Error("invalid filter matched")
	}
	// Remove everything: the index empties.
	for _, h := range []*Handle{b, all1, all2, c, d, a3, bad} {
		s.Release(h)
	}
	if s.Len() != 0 || len(s.cells) != 0 || len(s.plain) != 0 || len(s.levels) != 0 {
		t.Errorf("set not empty: %d keys, %d cells, %d plain, levels %v", s.Len(), len(s.cells), len(s.plain), s.levels)
	}
}

func TestSetParsesDataOnce(t *testing.T) {
	s := NewSet()
	var hs []*Handle
	for i := range 50 {
		hs = append(hs, s.Add(mustParse(t, fmt.Sprintf(`{"where":{"n":%d}}`, i))))
	}
	e := jsonEvent(`{"n":7}`)
	allocs := testing.AllocsPerRun(20, func() { s.Eval(e) })
	// One decode of the data plus the result; not one decode per filter.
	if allocs > 30 {
		t.Errorf("Eval allocates %v times for 50 where filters: data decoded more than once?", allocs)
	}
	r := s.Eval(e)
	for i, h := range hs {
		if r.Matches(h) != (i == 7) {
			t.Errorf("filter n=%d: Matches = %v", i, r.Matches(h))
		}
	}
	// Only filters that need the data make Eval decode it.
	s2 := NewSet()
	s2.Add(mustParse(t, `{"tags":{"any":["x"]}}`))
	if a := testing.AllocsPerRun(20, func() { s2.Eval(e) }); a > 3 {
		t.Errorf("tag-only Eval allocates %v times", a)
	}
}

func TestSetConcurrent(t *testing.T) {
	s := NewSet()
	filters := []*Filter{
		mustParse(t, `{"tags":{"any":["a"]}}`),
		mustParse(t, `{"near":{"lat":10,"lon":10,"radius_m":50000}}`),
		mustParse(t, `{"near":{"lat":10,"lon":10,"radius_m":5000},"where":{"k":1}}`),
		mustParse(t, `{"contains":"x"}`),
		nil,
	}
	stable := s.Add(filters[1]) // held throughout
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 500 {
				h := s.Add(filters[rng.IntN(len(filters))])
				e := &event.Event{Data: []byte(`{"k":1,"x":1}`), Tags: []string{"a"}, Geo: &event.Geo{Lat: 10.01, Lon: 10}}
				r := s.Eval(e)
				if !r.Matches(h) || !r.Matches(stable) {
					t.Error("held handle did not match an event it must match")
					return
				}
				s.Release(h)
			}
		})
	}
	wg.Go(func() {
		for range 2000 {
			r := s.Eval(geoEvent(10.02, 10))
			if !r.Matches(stable) {
				t.Error("stable handle lost")
				return
			}
		}
	})
	wg.Wait()
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
}

// randomCircle draws centres over the whole sphere, with extra weight on
// the poles and the antimeridian, and radii log-uniform from 1 m to 20,000 km.
func randomCircle(rng *rand.Rand) Circle {
	lat := math.Asin(2*rng.Float64()-1) * 180 / math.Pi
	lon := rng.Float64()*360 - 180
	switch rng.IntN(10) {
	case 0:
		lat = math.Copysign(90-rng.Float64()*rng.Float64(), lat)
	case 1:
		lon = math.Copysign(180-rng.Float64()*rng.Float64(), lon)
	}
	r := math.Exp(rng.Float64() * math.Log(MaxRadiusM))
	return Circle{Lat: lat, Lon: lon, RadiusM: max(r, 1)}
}

func TestGeoIndexAgreesWithBruteForce(t *testing.T) {
	nCircles, nPoints := 10_000, 1_000
	if testing.Short() {
		nCircles, nPoints = 2_000, 300
	}
	rng := rand.New(rand.NewPCG(20240607, 4))
	s := NewSet()
	filters := make([]*Filter, nCircles)
	handles := make([]*Handle, nCircles)
	for i := range filters {
		c := randomCircle(rng)
		f, err := New(Filter{Near: &c})
		if err != nil {
			t.Fatal(err)
		}
		filters[i], handles[i] = f, s.Add(f)
	}
	matches, checked := 0, 0
	for i := range nPoints {
		var g event.Geo
		if i%2 == 0 {
			g = event.Geo{Lat: math.Asin(2*rng.Float64()-1) * 180 / math.Pi, Lon: rng.Float64()*360 - 180}
		} else {
			// On, just inside or just outside some circle's edge.
			c := filters[rng.IntN(nCircles)].Near
			d := c.RadiusM * (1 + (2*rng.Float64()-1)*math.Pow(10, -1-8*rng.Float64()))
			if rng.IntN(4) == 0 {
				d = c.RadiusM
			}
			g = destination(c.Lat, c.Lon, rng.Float64()*360, d)
		}
		e := geoEvent(g.Lat, g.Lon)
		r := s.Eval(e)
		checked += r.Checked
		for j, f := range filters {
			want := f.Match(e)
			if got := r.Matches(handles[j]); got != want {
				t.Fatalf("point %v, circle %+v: index says %v, haversine %v (distance %.6f m)",
					g, *f.Near, got, want, DistanceM(g, event.Geo{Lat: f.Near.Lat, Lon: f.Near.Lon}))
			}
			if want {
				matches++
			}
		}
	}
	t.Logf("%d circles x %d points: %d matches, %.1f exact checks per point", nCircles, nPoints, matches, float64(checked)/float64(nPoints))
	if matches < nPoints {
		t.Errorf("only %d matches: the test is not exercising the index", matches)
	}
}
