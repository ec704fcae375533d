package follow

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Links are the WebSub links a feed advertises.
type Links struct {
	Hub  string // the first rel="hub" URL, "" when none
	Self string // the rel="self" URL, "" when none
}

// maxDiscoverTokens bounds the XML tokens Discover reads: hub and self
// links belong to the feed head, before the entries.
const maxDiscoverTokens = 4096

// Discover finds the hub and self links of a fetched feed (WebSub 4):
// first the HTTP Link headers, then the document: <link rel="hub"> and
// <atom:link rel="hub"> of an Atom feed or RSS channel (before the first
// entry or item), or the "hubs" (type WebSub) and "feed_url" of a JSON
// Feed. Relative URLs are resolved against base. Only absolute http(s)
// URLs are returned.
func Discover(h http.Header, body []byte, base *url.URL) Links {
	var l Links
	for _, v := range h.Values("Link") {
		for _, link := range splitLinks(v) {
			target, rels := parseLink(link)
			for _, rel := range rels {
				switch {
				case rel == "hub" && l.Hub == "":
					l.Hub = absolute(base, target)
				case rel == "self" && l.Self == "":
					l.Self = absolute(base, target)
				}
			}
		}
	}
	if l.Hub != "" && l.Self != "" {
		return l
	}
	var d Links
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
		d = discoverJSON(b, base)
	} else {
		d = discoverXML(body, base)
	}
	if l.Hub == "" {
		l.Hub = d.Hub
	}
	if l.Self == "" {
		l.Self = d.Self
	}
	return l
}

func discoverJSON(body []byte, base *url.URL) Links {
	var f struct {
		FeedURL string `json:"feed_url"`
		Hubs    []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"hubs"`
	}
	if json.Unmarshal(body, &f) != nil {
		return Links{}
	}
	l := Links{Self: absolute(base, f.FeedURL)}
	for _, h := range f.Hubs {
		if strings.EqualFold(h.Type, "websub") || strings.EqualFold(h.Type, "pubsubhubbub") {
			if l.Hub = absolute(base, h.URL); l.Hub != "" {
				break
			}
		}
	}
	return l
}

func discoverXML(body []byte, base *url.URL) Links {
	var l Links
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = false
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for range maxDiscoverTokens {
		tok, err := d.Token()
		if err != nil { // the end, or not XML: what was found so far
			return l
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch strings.ToLower(se.Name.Local) {
		case "entry", "item":
			return l
		case "link":
			var rel, href string
			for _, a := range se.Attr {
				switch strings.ToLower(a.Name.Local) {
				case "rel":
					rel = a.Value
				case "href":
					href = a.Value
				}
			}
			for _, r := range strings.Fields(strings.ToLower(rel)) {
				switch {
				case r == "hub" && l.Hub == "":
					l.Hub = absolute(base, href)
				case r == "self" && l.Self == "":
					l.Self = absolute(base, href)
				}
			}
		}
	}
	return l
}

// splitLinks splits a Link header value into its links, at commas
// outside <...> and quotes.
func splitLinks(v string) []string {
	var out []string
	inURL, inQuote, start := false, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '<' && !inQuote:
			inURL = true
		case c == '>' && !inQuote:
			inURL = false
		case c == '"' && !inURL:
			inQuote = !inQuote
		case c == '\\' && inQuote:
			i++
		case c == ',' && !inURL && !inQuote:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// parseLink reads one link: <target>; rel="a b"; ... It returns the
// target and the lower-cased relations.
func parseLink(s string) (target string, rels []string) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "<") {
		return "", nil
	}
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return "", nil
	}
	target = s[1:end]
	for _, p := range strings.Split(s[end+1:], ";") {
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		rels = append(rels, strings.Fields(strings.ToLower(val))...)
	}
	return target, rels
}

// absolute resolves ref against base; "" unless the result is an absolute
// http(s) URL.
func absolute(base *url.URL, ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}
