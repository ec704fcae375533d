package access

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkIdentifyHS256 is the cost of verifying a token per request.
func BenchmarkIdentifyHS256(b *testing.B) {
	p, err := New(b.Context(), Options{JWTSecret: testSecret, Private: []string{"user/**"}})
	if err != nil {
		b.Fatal(err)
	}
	r := bearer(mint(b, HubbubClaim{Subscribe: []string{"user/42/**"}, Publish: []string{"chat/*"}}, time.Hour))
	for b.Loop() {
		if p.Identify(r).Kind != Token {
			b.Fatal("refused")
		}
	}
}

// BenchmarkReadPattern is the coverage decision for a pattern
// subscription against a private pattern and a token of four patterns.
func BenchmarkReadPattern(b *testing.B) {
	p, err := New(b.Context(), Options{JWTSecret: testSecret, Private: []string{"user/**", "team/*/private/**"}})
	if err != nil {
		b.Fatal(err)
	}
	id := p.Identify(bearer(mint(b, HubbubClaim{Subscribe: []string{"news/**", "team/7/**", "chat/*", "user/42/**"}}, time.Hour)))
	for b.Loop() {
		if d := p.Read(id, []string{"user/42/*/photos/**"}); !d.Allowed() {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkSubsetHostile is the worst a subscriber can make one Subset
// cost: a pattern of 100 '**' and literals against a token pattern.
func BenchmarkSubsetHostile(b *testing.B) {
	segs := make([]string, 0, 200)
	for i := range 100 {
		segs = append(segs, "**", string(rune('a'+i%7)))
	}
	hostile := strings.Join(segs, "/")
	for b.Loop() {
		Subset(hostile, "**/a/*/b/**")
	}
}
