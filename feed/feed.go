// Package feed renders a list of events as an Atom 1.0 feed or an RSS 2.0
// channel, using encoding/xml only.
//
// Output is always well-formed XML 1.0 whatever the input: every string
// written (from events and from Meta) first loses the characters XML 1.0
// does not allow (controls other than tab, LF and CR; invalid UTF-8;
// U+FFFE, U+FFFF), and the encoder escapes the rest.
//
// Both formats carry rel="self" and rel="hub" links (Atom links; atom:link
// in RSS) so the feeds can be announced for WebSub.
package feed

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubbub/hubbub/event"
)

// Content types to serve the two formats with.
const (
	AtomType = "application/atom+xml; charset=utf-8"
	RSSType  = "application/rss+xml; charset=utf-8"
)

const (
	atomNS    = "http://www.w3.org/2005/Atom"
	generator = "hubbub"
)

// Meta describes the feed as a whole.
type Meta struct {
	Title   string    // feed title, e.g. the topic name; Topic is used when empty
	Topic   string    // the topic (or pattern) the feed shows; names the feed id
	SelfURL string    // absolute URL of this feed (rel="self"); may be ""
	HubURL  string    // the WebSub hub URL (rel="hub"); may be ""
	Updated time.Time // feed time when there are no events; callers should set it
}

// WriteAtom writes one Atom 1.0 feed to w with one <entry> per event, in the
// order given; nil events are skipped.
//
// The feed id is "urn:hubbub:" + escaped topic; its updated time is the
// newest event time, or m.Updated when there are no events. Each entry has:
//   - id "urn:hubbub:" + escaped event topic + ":" + event id (Position), stable
//     and unique per event (':' in the topic is escaped, so the split is
//     unambiguous);
//   - updated = event time, RFC 3339 UTC;
//   - title = the "title" string of a JSON object payload, else "TYPE #SEQ";
//   - link rel="alternate" from a JSON "url" (or "link") string and
//     rel="enclosure" from "image" or "photo":{"url"}, http(s) URLs only;
//   - one category per tag;
//   - content: JSON and text as type="text", text/html as type="html", binary
//     as base64 with type set to its media type (application/octet-stream
//     when that is missing, malformed, composite, text or XML);
//   - summary, for binary content only (RFC 4287 4.1.1.3 requires one when
//     content is base64): "N bytes of MEDIA/TYPE", as the RSS description.
func WriteAtom(w io.Writer, m Meta, events []*event.Event) error {
	f := atomFeed{
		ID:        feedID(m.Topic),
		Title:     clean(feedTitle(m)),
		Updated:   atomTime(feedUpdated(m, events)),
		Author:    atomPerson{Name: generator},
		Generator: generator,
	}
	if m.SelfURL != "" {
		f.Links = append(f.Links, atomLink{Rel: "self", Href: clean(m.SelfURL), Type: "application/atom+xml"})
	}
	if m.HubURL != "" {
		f.Links = append(f.Links, atomLink{Rel: "hub", Href: clean(m.HubURL)})
	}
	for _, e := range events {
		if e == nil {
			continue
		}
		it := describe(m.Topic, e)
		en := atomEntry{ID: it.id, Title: it.title, Updated: atomTime(e.Time)}
		if it.link != "" {
			en.Links = append(en.Links, atomLink{Rel: "alternate", Href: it.link})
		}
		if it.image != "" {
			en.Links = append(en.Links, atomLink{Rel: "enclosure", Href: it.image, Type: imageType(it.image)})
		}
		for _, t := range it.tags {
			en.Categories = append(en.Categories, atomCategory{Term: t})
		}
		switch it.kind {
		case event.PayloadBinary:
			en.Summary = &atomContent{Type: "text", Body: binarySummary(e, it)}
			en.Content = atomContent{Type: it.mediaType, Body: base64.StdEncoding.EncodeToString(e.Data)}
		case event.PayloadText:
			en.Content = atomContent{Type: "text", Body: it.text}
			if it.mediaType == "text/html" {
				en.Content.Type = "html"
			}
		default:
			en.Content = atomContent{Type: "text", Body: it.text}
		}
		f.Entries = append(f.Entries, en)
	}
	return encode(w, f)
}

// WriteRSS writes one RSS 2.0 channel to w with one <item> per event, in the
// order given; nil events are skipped.
//
// The channel has title, link (m.SelfURL, omitted when empty), description,
// atom:link rel="self"/"hub" when set, lastBuildDate and generator. Each
// item has the same title, alternate link, categories and image (as an
// <enclosure> with a type guessed from the extension and length="0") as the
// Atom entry, the Atom entry id as <guid isPermaLink="false">, pubDate in
// RFC 1123 form and a description. Since readers treat the description as
// HTML, JSON and text payloads are HTML-escaped first (they show as typed);
// text/html is passed as is; binary payloads are summarised, not included.
func WriteRSS(w io.Writer, m Meta, events []*event.Event) error {
	d := rssDoc{
		Version: "2.0",
		AtomNS:  atomNS,
		Channel: rssChannel{
			Title:         clean(feedTitle(m)),
			Link:          clean(m.SelfURL),
			Description:   clean("Events published to " + cmp.Or(m.Topic, "hubbub")),
			LastBuildDate: rssTime(feedUpdated(m, events)),
			Generator:     generator,
		},
	}
	if m.SelfURL != "" {
		d.Channel.Links = append(d.Channel.Links, atomLink{Rel: "self", Href: clean(m.SelfURL), Type: "application/rss+xml"})
	}
	if m.HubURL != "" {
		d.Channel.Links = append(d.Channel.Links, atomLink{Rel: "hub", Href: clean(m.HubURL)})
	}
	for _, e := range events {
		if e == nil {
			continue
		}
		it := describe(m.Topic, e)
		ri := rssItem{
			Title:      it.title,
			Link:       it.link,
			GUID:       rssGUID{IsPermaLink: "false", ID: it.id},
			PubDate:    rssTime(e.Time),
			Categories: it.tags,
		}
		switch {
		case it.kind == event.PayloadBinary:
			ri.Description = escapeHTML(binarySummary(e, it))
		case it.kind == event.PayloadText && it.mediaType == "text/html":
			ri.Description = it.text
		default:
			ri.Description = escapeHTML(it.text)
		}
		if it.image != "" {
			ri.Enclosure = &rssEnclosure{URL: it.image, Length: "0", Type: imageType(it.image)}
		}
		d.Channel.Items = append(d.Channel.Items, ri)
	}
	return encode(w, d)
}

func encode(w io.Writer, v any) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// binarySummary says what a binary payload is, for readers that do not
// show it: "N bytes of MEDIA/TYPE".
func binarySummary(e *event.Event, it item) string {
	return strconv.Itoa(len(e.Data)) + " bytes of " + it.mediaType
}

// escapeHTML escapes text for use as HTML character data.
var escapeHTML = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// item is what both formats say about one event; every string is clean.
type item struct {
	id, title   string
	link, image string // http(s) URLs or ""
	tags        []string
	kind        event.PayloadKind
	mediaType   string // binary: the Atom-safe media type; text: the lowercased media type
	text        string // JSON or text payload as text
}

func describe(feedTopic string, e *event.Event) item {
	topic := e.Topic
	if topic == "" {
		topic = feedTopic
	}
	it := item{
		id:   feedID(topic) + ":" + url.PathEscape(e.Position().String()),
		kind: e.Kind(),
	}
	for _, t := range e.Tags {
		if t = strings.TrimSpace(clean(t)); t != "" {
			it.tags = append(it.tags, t)
		}
	}
	switch it.kind {
	case event.PayloadJSON:
		it.text = "null"
		if len(e.Data) > 0 {
			it.text = clean(string(e.Data))
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(e.Data, &obj) == nil {
			it.title = strings.TrimSpace(clean(jsonString(obj, "title")))
			it.link = webURL(cmp.Or(jsonString(obj, "url"), jsonString(obj, "link")))
			img := jsonString(obj, "image")
			if img == "" {
				var photo map[string]json.RawMessage
				if json.Unmarshal(obj["photo"], &photo) == nil {
					img = jsonString(photo, "url")
				}
			}
			it.image = webURL(img)
		}
	case event.PayloadText:
		it.text = clean(string(e.Data))
		it.mediaType = mediaType(e.ContentType)
	default:
		it.mediaType = binaryType(e.ContentType)
	}
	if it.title == "" {
		it.title = clean(cmp.Or(e.Type, event.DefaultType) + " #" + strconv.FormatUint(e.Seq, 10))
	}
	return it
}

// jsonString returns obj[key] if it is a JSON string, else "".
func jsonString(obj map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := obj[key]; !ok || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// webURL returns raw, normalised, if it is an absolute http or https URL,
// else "". Other schemes (javascript:, data:, ...) are dropped on purpose.
func webURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(clean(raw)))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return clean(u.String())
}

var imageTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif",
	".svg": "image/svg+xml", ".bmp": "image/bmp", ".ico": "image/x-icon",
	".tif": "image/tiff", ".tiff": "image/tiff", ".heic": "image/heic",
}

// imageType guesses an image URL's media type from its path's extension
// (a fixed table, not the system's), defaulting to image/jpeg.
func imageType(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if t, ok := imageTypes[strings.ToLower(path.Ext(u.Path))]; ok {
			return t
		}
	}
	return "image/jpeg"
}

// binaryType is the media type to label base64 Atom content with. Atom only
// allows base64 for non-composite, non-text, non-XML types, so anything else
// (or a missing or malformed type) becomes application/octet-stream.
func binaryType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") ||
		strings.HasPrefix(mt, "text/") || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") ||
		strings.HasSuffix(mt, "/xml") || strings.HasSuffix(mt, "+xml") {
		return "application/octet-stream"
	}
	return clean(mt)
}

// mediaType is the lowercased media type of ct without parameters, parsed
// the way event.Kind parses it.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// feedID is "urn:hubbub:" + the topic, path-escaped with ':' escaped too.
func feedID(topic string) string {
	return "urn:hubbub:" + strings.ReplaceAll(url.PathEscape(topic), ":", "%3A")
}

func feedTitle(m Meta) string { return cmp.Or(m.Title, m.Topic, generator) }

func feedUpdated(m Meta, events []*event.Event) time.Time {
	var t time.Time
	found := false
	for _, e := range events {
		if e != nil && (!found || e.Time.After(t)) {
			t, found = e.Time, true
		}
	}
	if !found {
		return m.Updated
	}
	return t
}

func atomTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
func rssTime(t time.Time) string  { return t.UTC().Format(time.RFC1123Z) }

// isXMLChar reports whether r is a Char in the XML 1.0 grammar.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// clean returns s without invalid UTF-8 and without the characters XML 1.0
// forbids. It returns s itself when there is nothing to remove.
func clean(s string) string {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
			return cleanFrom(s, i)
		}
		i += n
	}
	return s
}

func cleanFrom(s string, i int) string {
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !(r == utf8.RuneError && n == 1) && isXMLChar(r) {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Atom 1.0 (RFC 4287) elements.

type atomFeed struct {
	XMLName   xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID        string      `xml:"id"`
	Title     string      `xml:"title"`
	Updated   string      `xml:"updated"`
	Links     []atomLink  `xml:"link"`
	Author    atomPerson  `xml:"author"`
	Generator string      `xml:"generator"`
	Entries   []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Href string `xml:"href,attr"`
	Type string `xml:"type,attr,omitempty"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

type atomContent struct {
	Type string `xml:"type,attr"`
	Body string `xml:",chardata"`
}

type atomEntry struct {
	ID         string         `xml:"id"`
	Title      string         `xml:"title"`
	Updated    string         `xml:"updated"`
	Links      []atomLink     `xml:"link"`
	Categories []atomCategory `xml:"category"`
	Summary    *atomContent   `xml:"summary"` // binary content only
	Content    atomContent    `xml:"content"`
}

// RSS 2.0 elements; atom:link is written with its prefix, declared on <rss>.

type rssDoc struct {
	XMLName xml.Name   `xml:"rss"`
	Version string     `xml:"version,attr"`
	AtomNS  string     `xml:"xmlns:atom,attr"`
	Channel rssChannel `xml:"channel"`
}

type rssChannel struct {
	Title         string     `xml:"title"`
	Link          string     `xml:"link,omitempty"`
	Description   string     `xml:"description"`
	Links         []atomLink `xml:"atom:link"`
	LastBuildDate string     `xml:"lastBuildDate"`
	Generator     string     `xml:"generator"`
	Items         []rssItem  `xml:"item"`
}

type rssItem struct {
	Title       string        `xml:"title"`
	Link        string        `xml:"link,omitempty"`
	Description string        `xml:"description"`
	GUID        rssGUID       `xml:"guid"`
	PubDate     string        `xml:"pubDate"`
	Categories  []string      `xml:"category"`
	Enclosure   *rssEnclosure `xml:"enclosure"`
}

type rssGUID struct {
	IsPermaLink string `xml:"isPermaLink,attr"`
	ID          string `xml:",chardata"`
}

type rssEnclosure struct {
	URL    string `xml:"url,attr"`
	Length string `xml:"length,attr"`
	Type   string `xml:"type,attr"`
}
