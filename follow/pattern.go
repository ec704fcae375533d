package follow

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Pattern is one --feeds pattern: which outside URLs hubbub may follow.
//
// "*" matches every http and https URL. Any other pattern is a URL
// SCHEME://HOST[:PORT]/PATH whose HOST and PATH may hold wildcards:
//
//   - in HOST, "*" matches any run of characters (so *.example.com is
//     every subdomain of example.com at any depth, not example.com
//     itself); without a port the pattern matches any port, with one
//     (which may be "*") only that port;
//   - in PATH, a segment "**" matches any number of segments (none
//     included), and "*" within a segment any run of characters but "/".
//
// The query and fragment of a URL are not looked at. Host and scheme
// compare without regard to case.
type Pattern struct {
	raw    string
	any    bool
	scheme string
	host   string // lower-case, may hold *
	port   string // "" for any
	segs   []string
}

// ParsePattern reads one --feeds pattern.
func ParsePattern(s string) (Pattern, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return Pattern{raw: s, any: true}, nil
	}
	i := strings.Index(s, "://")
	if i < 0 {
		return Pattern{}, fmt.Errorf("feeds pattern %q: want * or SCHEME://HOST/PATH, e.g. https://*.example.com/**", s)
	}
	p := Pattern{raw: s, scheme: strings.ToLower(s[:i])}
	if p.scheme != "http" && p.scheme != "https" {
		return Pattern{}, fmt.Errorf("feeds pattern %q: the scheme must be http or https", s)
	}
	rest := s[i+3:]
	hostport, pth, _ := strings.Cut(rest, "/")
	if hostport == "" {
		return Pattern{}, fmt.Errorf("feeds pattern %q: no host", s)
	}
	p.host = strings.ToLower(hostport)
	if h, port, ok := strings.Cut(hostport, ":"); ok && !strings.HasPrefix(hostport, "[") {
		p.host, p.port = strings.ToLower(h), port
	}
	if _, err := path.Match(p.host, ""); err != nil {
		return Pattern{}, fmt.Errorf("feeds pattern %q: bad host: %w", s, err)
	}
	if pth == "" {
		pth = "**"
	}
	p.segs = strings.Split(pth, "/")
	for _, g := range p.segs {
		if _, err := path.Match(g, ""); err != nil {
			return Pattern{}, fmt.Errorf("feeds pattern %q: bad path: %w", s, err)
		}
	}
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether u (absolute) is covered by p.
func (p Pattern) Match(u *url.URL) bool {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" || u.Host == "" {
		return false
	}
	if p.any {
		return true
	}
	if scheme != p.scheme {
		return false
	}
	if ok, _ := path.Match(p.host, strings.ToLower(u.Hostname())); !ok {
		return false
	}
	if p.port != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		if ok, _ := path.Match(p.port, port); !ok {
			return false
		}
	}
	return matchSegs(p.segs, strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/"))
}

// matchSegs matches path segments against pattern segments, "**"
// standing for any number of them. Each "**" tries each remaining suffix:
// patterns come from the configuration, few and with few "**".
func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := range segs {
				if matchSegs(pat, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
