package filter

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hubbub/hubbub/event"
)

var cities = []event.Geo{
	{Lat: 51.5074, Lon: -0.1278},   // London
	{Lat: 40.7128, Lon: -74.0060},  // New York
	{Lat: 35.6762, Lon: 139.6503},  // Tokyo
	{Lat: -33.8688, Lon: 151.2093}, // Sydney
	{Lat: 37.7749, Lon: -122.4194}, // San Francisco
}

// nearCity is a random point within maxM metres of a random city.
func nearCity(rng *rand.Rand, maxM float64) event.Geo {
	c := cities[rng.IntN(len(cities))]
	return destination(c.Lat, c.Lon, rng.Float64()*360, maxM*math.Sqrt(rng.Float64()))
}

// geoSubs builds n circles of 100 m to 5 km within 20 km of the cities.
func geoSubs(n int) []*Filter {
	rng := rand.New(rand.NewPCG(1, 2))
	fs := make([]*Filter, n)
	for i := range fs {
		g := nearCity(rng, 20_000)
		f, err := New(Filter{Near: &Circle{Lat: g.Lat, Lon: g.Lon, RadiusM: 100 + rng.Float64()*4900}})
		if err != nil {
			panic(err)
		}
		fs[i] = f
	}
	return fs
}

// firehose is a stream of events at random points: near the cities (where
// the subscriptions are) or anywhere on Earth.
func firehose(n int, local bool) []*event.Event {
	rng := rand.New(rand.NewPCG(3, 4))
	es := make([]*event.Event, n)
	for i := range es {
		var g event.Geo
		if local {
			g = nearCity(rng, 25_000)
		} else {
			g = event.Geo{Lat: math.Asin(2*rng.Float64()-1) * 180 / math.Pi, Lon: rng.Float64()*360 - 180}
		}
		es[i] = &event.Event{Data: []byte(`{"msg":"hi"}`), Geo: &g}
	}
	return es
}

func BenchmarkSetEval(b *testing.B) {
	for _, local := range []bool{true, false} {
		b.Run(fmt.Sprintf("geo10k/local=%v", local), func(b *testing.B) {
			s := NewSet()
			for _, f := range geoSubs(10_000) {
				s.Add(f)
			}
			es := firehose(4096, local)
			checked := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				checked += s.Eval(es[i%len(es)]).Checked
			}
			b.ReportMetric(float64(checked)/float64(b.N), "checks/event")
		})
	}
	b.Run("tags10k_10distinct", func(b *testing.B) {
		s := NewSet()
		hs := make([]*Handle, 10_000)
		for i := range hs {
			hs[i] = s.Add(mustParse(b, fmt.Sprintf(`{"tags":{"any":["tag%d"]}}`, i%10)))
		}
		if s.Len() != 10 {
			b.Fatal(s.Len())
		}
		es := make([]*event.Event, 64)
		for i := range es {
			es[i] = jsonEvent(`{}`, fmt.Sprintf("tag%d", i%20), "other")
		}
		b.Run("eval", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.Eval(es[i%len(es)])
			}
		})
		// Eval plus one Matches per subscriber: the whole fan-out decision.
		b.Run("eval+10k_matches", func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				r := s.Eval(es[i%len(es)])
				for _, h := range hs {
					if r.Matches(h) {
						n++
					}
				}
			}
			_ = n
		})
		// For comparison: every subscriber evaluating its own filter.
		b.Run("naive_10k_match", func(b *testing.B) {
			fs := make([]*Filter, len(hs))
			for i, h := range hs {
				fs[i] = h.Filter()
			}
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				e := es[i%len(es)]
				for _, f := range fs {
					if f.Match(e) {
						n++
					}
				}
			}
			_ = n
		})
	})
}

func BenchmarkBruteForce(b *testing.B) {
	for _, local := range []bool{true, false} {
		b.Run(fmt.Sprintf("geo10k/local=%v", local), func(b *testing.B) {
			cs := make([]*circle, 0, 10_000)
			for _, f := range geoSubs(10_000) {
				cs = append(cs, f.c.near)
			}
			es := firehose(4096, local)
			n := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := newPoint(*es[i%len(es)].Geo)
				for _, c := range cs {
					if c.contains(p) {
						n++
					}
				}
			}
			_ = n
		})
	}
}

func BenchmarkParseJSON(b *testing.B) {
	in := []byte(`{"tags":{"any":["a","b"]},"near":{"lat":51.5,"lon":-0.1,"radius_m":500},"where":{"user.id":42},"contains":"nfl"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetAdd10kGeo(b *testing.B) {
	fs := geoSubs(10_000)
	b.ReportAllocs()
	for b.Loop() {
		s := NewSet()
		for _, f := range fs {
			s.Add(f)
		}
	}
}
