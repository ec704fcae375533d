package follow

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	s := Schedule{Min: time.Minute, Max: time.Hour}
	for _, tc := range []struct {
		name string
		prev time.Duration
		o    Outcome
		want time.Duration
	}{
		{"first fetch", 0, Outcome{Changed: true}, time.Minute},
		{"change halves", 20 * time.Minute, Outcome{Changed: true}, 10 * time.Minute},
		{"change never below min", time.Minute, Outcome{Changed: true}, time.Minute},
		{"no change backs off", 10 * time.Minute, Outcome{}, 15 * time.Minute},
		{"no change up to max", 50 * time.Minute, Outcome{}, time.Hour},
		{"failure doubles", 10 * time.Minute, Outcome{Failed: true}, 20 * time.Minute},
		{"failure up to max", 40 * time.Minute, Outcome{Failed: true}, time.Hour},
		{"max-age raises", 2 * time.Minute, Outcome{MaxAge: 30 * time.Minute}, 30 * time.Minute},
		{"max-age capped at max", 2 * time.Minute, Outcome{MaxAge: 5 * time.Hour}, time.Hour},
		{"short max-age ignored", 20 * time.Minute, Outcome{MaxAge: time.Minute}, 30 * time.Minute},
		{"retry-after beyond max", 2 * time.Minute, Outcome{Failed: true, RetryAfter: 3 * time.Hour}, 3 * time.Hour},
		{"retry-after capped", 2 * time.Minute, Outcome{Failed: true, RetryAfter: 100 * time.Hour}, RetryAfterCap},
		{"pushed polls at max", time.Minute, Outcome{Pushed: true, Changed: true}, time.Hour},
		{"pushed first fetch", 0, Outcome{Pushed: true}, time.Hour},
	} {
		if got := s.Next(tc.prev, tc.o); got != tc.want {
			t.Errorf("%s: Next(%s, %+v) = %s, want %s", tc.name, tc.prev, tc.o, got, tc.want)
		}
	}
}

func TestParseMaxAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":                          0,
		"max-age=60":                time.Minute,
		"public, max-age=300":       5 * time.Minute,
		"max-age=\"120\"":           2 * time.Minute,
		"MAX-AGE=10, s-maxage=9999": 10 * time.Second,
		"no-cache, max-age=60":      0,
		"max-age=60, no-store":      0,
		"max-age=-5":                0,
		"max-age=abc":               0,
		"max-age=99999999999999999": 365 * 24 * time.Hour,
	} {
		if got := ParseMaxAge(in); got != want {
			t.Errorf("ParseMaxAge(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, u string
		want       bool
	}{
		{"*", "https://blog.example.com/feed.atom", true},
		{"*", "http://x/y", true},
		{"*", "ftp://x/y", false},
		{"https://*.example.com/**", "https://blog.example.com/feed.atom", true},
		{"https://*.example.com/**", "https://a.b.example.com/x/y/z.xml", true},
		{"https://*.example.com/**", "https://example.com/feed", false},
		{"https://*.example.com/**", "http://blog.example.com/feed", false},
		{"https://*.example.com/**", "https://blog.example.org/feed", false},
		{"https://blog.example.com/feeds/*.xml", "https://blog.example.com/feeds/a.xml", true},
		{"https://blog.example.com/feeds/*.xml", "https://blog.example.com/feeds/x/a.xml", false},
		{"https://blog.example.com/**/atom", "https://blog.example.com/atom", true},
		{"https://blog.example.com/**/atom", "https://blog.example.com/a/b/atom", true},
		{"https://blog.example.com/**/atom", "https://blog.example.com/a/b/rss", false},
		{"https://blog.example.com", "https://blog.example.com/any/path?q=1", true},
		{"https://BLOG.example.com/**", "https://blog.EXAMPLE.com/x", true},
		{"http://127.0.0.1:*/**", "http://127.0.0.1:8080/feed", true},
		{"http://127.0.0.1:8080/**", "http://127.0.0.1:8081/feed", false},
		{"http://example.com:80/**", "http://example.com/feed", true},
	} {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		u, err := url.Parse(tc.u)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(u); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.u, got, tc.want)
		}
	}
	for _, bad := range []string{"", "example.com/**", "ftp://x/**", "https:///x", "https://[/**"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func TestDiscover(t *testing.T) {
	base, _ := url.Parse("https://blog.example.com/feed")
	for _, tc := range []struct {
		name   string
		header string
		body   string
		want   Links
	}{
		{"link header", `<https://hub.example/>; rel="hub", </feed>; rel="self"`, "", Links{Hub: "https://hub.example/", Self: "https://blog.example.com/feed"}},
		{"link header, several rels", `<https://hub.example/>; rel="hub other"`, "", Links{Hub: "https://hub.example/"}},
		{"atom", "", `<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://hub.example/h"/><link rel="self" href="https://blog.example.com/feed"/><entry><link rel="hub" href="https://wrong/"/></entry></feed>`,
			Links{Hub: "https://hub.example/h", Self: "https://blog.example.com/feed"}},
		{"rss atom:link", "", `<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><atom:link rel="hub" href="https://hub.example/r"/><item><title>x</title></item></channel></rss>`,
			Links{Hub: "https://hub.example/r"}},
		{"entry links ignored", "", `<feed xmlns="http://www.w3.org/2005/Atom"><entry><link rel="hub" href="https://wrong/"/></entry></feed>`, Links{}},
		{"json feed", "", `{"version":"https://jsonfeed.org/version/1.1","feed_url":"https://blog.example.com/feed.json","hubs":[{"type":"rssCloud","url":"https://no/"},{"type":"WebSub","url":"https://hub.example/j"}],"items":[]}`,
			Links{Hub: "https://hub.example/j", Self: "https://blog.example.com/feed.json"}},
		{"header wins", `<https://hub.example/a>; rel=hub`, `<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://hub.example/b"/></feed>`, Links{Hub: "https://hub.example/a"}},
		{"not http", `<mailto:x@example.com>; rel="hub"`, "", Links{}},
		{"no hub", "", `<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>`, Links{}},
		{"garbage", "<<<", "\x00\x01<", Links{}},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Link", tc.header)
		}
		if got := Discover(h, []byte(tc.body), base); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func FuzzDiscover(f *testing.F) {
	f.Add(`<https://hub.example/>; rel="hub"`, `<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="/h"/></feed>`)
	f.Add(`<a,b>; rel="x,y", <c>; rel=self`, `{"hubs":[{"type":"WebSub","url":"https://h/"}]}`)
	f.Add(`"<`, `<rss><channel><atom:link rel="hub" href="https://h/"/></channel></rss>`)
	base, _ := url.Parse("https://blog.example.com/feed")
	f.Fuzz(func(t *testing.T, header, body string) {
		h := http.Header{"Link": {header}}
		l := Discover(h, []byte(body), base)
		for _, s := range []string{l.Hub, l.Self} {
			if s == "" {
				continue
			}
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("Discover returned %q, not an absolute http(s) URL", s)
			}
		}
	})
}

func FuzzParseMaxAge(f *testing.F) {
	f.Add("public, max-age=300")
	f.Add("no-cache")
	f.Add(`max-age="12"`)
	f.Fuzz(func(t *testing.T, v string) {
		if d := ParseMaxAge(v); d < 0 || d > maxMaxAge {
			t.Fatalf("ParseMaxAge(%q) = %s", v, d)
		}
	})
}

func FuzzPatternMatch(f *testing.F) {
	f.Add("https://*.example.com/**/x/*.xml", "https://a.example.com/1/2/x/f.xml")
	f.Add("*", "http://h/")
	f.Fuzz(func(t *testing.T, pattern, raw string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		_ = p.Match(u) // must not panic, and ends: bounded work
	})
}
