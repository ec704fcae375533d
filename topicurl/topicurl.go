// Package topicurl knows the URLs under which hubbub serves a topic's
// history: BASE/topics/NAME and BASE/events?topic=NAME, each with an
// optional format (atom, rss) and filter parameters (tag=, near=, ...).
//
// Transports build the canonical URL of an answer with Self (its
// rel="self", in the Link header and in a feed's body alike) and the hub's
// WebSub endpoint with Hub. The WebSub hub maps a topic URL a subscriber
// names back to the topic, format and filter it serves with Parse, so a
// feed reader that subscribes to the rel="self" it found gets that topic.
package topicurl

import (
	"net"
	"net/url"
	"strings"

	"github.com/hubbub/hubbub/event"
)

// Formats of a topic URL besides JSON (the default).
const (
	FormatAtom = "atom"
	FormatRSS  = "rss"
)

// Hub returns the WebSub endpoint of the hub at base: base + "/hub".
func Hub(base string) string { return strings.TrimRight(base, "/") + "/hub" }

// Self returns the canonical URL of an answer holding the events of topics
// in format ("atom", "rss"; anything else is JSON), under base (the hub's
// external URL, without a trailing slash). One topic whose name fits a
// URL path gets BASE/topics/NAME; others BASE/events?topic=...; the
// filter and projection parameters of v are kept (so the URL shows what
// the answer shows), everything else in v (cursors, count, tokens) is
// dropped. The result does not depend on the order of v.
func Self(base string, topics []string, format string, v url.Values) string {
	base = strings.TrimRight(base, "/")
	q := url.Values{}
	var u string
	if len(topics) == 1 && pathSafe(topics[0]) {
		u = base + "/topics/" + EscapePath(topics[0])
	} else {
		u = base + "/events"
		q["topic"] = topics
	}
	if format == FormatAtom || format == FormatRSS {
		q.Set("format", format)
	}
	for k, vals := range v {
		if isFilterParam(k) {
			q[k] = vals
		}
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// isFilterParam reports whether the query parameter k chooses or shapes
// the events of an answer (see filter.FromQuery).
func isFilterParam(k string) bool {
	switch k {
	case "tag", "tags_all", "near", "q", "filter", "fields":
		return true
	}
	return strings.HasPrefix(k, "where.")
}

// EscapePath escapes a topic for a URL path, keeping its slashes.
func EscapePath(topic string) string {
	parts := strings.Split(topic, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// pathSafe reports whether BASE/topics/NAME serves topic: a path with an
// empty, "." or ".." segment is cleaned (redirected) by the router, so
// such a topic is named in the query instead.
func pathSafe(topic string) bool {
	for s := range strings.SplitSeq(topic, "/") {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// Ref is what a topic URL of this hub serves.
type Ref struct {
	Topic  string     // the local topic
	Format string     // "", FormatAtom or FormatRSS
	Filter url.Values // its filter parameters (for filter.FromQuery); nil when none
}

// Parse reports whether raw is a URL under one of bases (the hub's
// external URLs) at which hubbub serves a topic's history: BASE/topics/NAME
// or BASE/events naming topics, with any query. The scheme (http or
// https), the case of the host and a default port do not matter, since a
// proxy in front may change them. ok is false for any other string, which
// the caller takes for a topic of its own. A URL of this hub that cannot
// name exactly one topic (several topics, a pattern, a bad name, a query
// that does not parse, an unknown format) gives an error
// (event.ValidationError) with a reason fit for the client.
func Parse(raw string, bases ...string) (ref Ref, ok bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return Ref{}, false, nil
	}
	var rest string
	for _, b := range bases {
		if r, match := under(u, b); match {
			rest, ok = r, true
			break
		}
	}
	if !ok {
		return Ref{}, false, nil
	}
	v, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Ref{}, true, event.Invalid("the topic URL's query does not parse: %v", err)
	}
	var topics []string
	switch {
	case rest == "/events":
		if m := v.Get("hub.mode"); m != "" && m != "retrieve" {
			return Ref{}, true, event.Invalid("the topic URL's hub.mode=%q serves no topic", m)
		}
		topics = append(append(topics, v["topic"]...), v["hub.topic"]...)
	case strings.HasPrefix(rest, "/topics/"):
		name, err := url.PathUnescape(strings.TrimPrefix(rest, "/topics/"))
		if err != nil {
			return Ref{}, true, event.Invalid("the topic URL's path does not unescape: %v", err)
		}
		topics = []string{name}
	default:
		return Ref{}, false, nil // another page of this hub: not a topic URL
	}
	switch {
	case len(topics) == 0:
		return Ref{}, true, event.Invalid("the topic URL names no topic")
	case len(topics) > 1:
		return Ref{}, true, event.Invalid("the topic URL names %d topics; a subscription reads one (subscribe to each)", len(topics))
	case event.IsPattern(topics[0]):
		return Ref{}, true, event.Invalid("the topic URL names the pattern %q; a subscription reads one topic", topics[0])
	}
	if err := event.ValidateTopic(topics[0]); err != nil {
		return Ref{}, true, err
	}
	ref = Ref{Topic: topics[0]}
	switch f := strings.ToLower(v.Get("format")); f {
	case FormatAtom, FormatRSS:
		ref.Format = f
	case "", "json", "sse":
	default:
		return Ref{}, true, event.Invalid("the topic URL's format=%q is not json, atom or rss", f)
	}
	for k, vals := range v {
		if isFilterParam(k) && k != "fields" {
			if ref.Filter == nil {
				ref.Filter = url.Values{}
			}
			ref.Filter[k] = vals
		}
	}
	return ref, true, nil
}

// under reports whether u lies under base, and returns u's escaped path
// after base's path.
func under(u *url.URL, base string) (string, bool) {
	b, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || b.Host == "" || (b.Scheme != "http" && b.Scheme != "https") {
		return "", false
	}
	if !strings.EqualFold(hostPort(u), hostPort(b)) {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), strings.TrimRight(b.EscapedPath(), "/"))
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// hostPort is u's host and port, the port of its scheme left out.
func hostPort(u *url.URL) string {
	host, port := u.Hostname(), u.Port()
	if port == "" || (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		return strings.Trim(host, "[]")
	}
	return net.JoinHostPort(host, port)
}
