package websub

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/mmcdole/gofeed"

	"github.com/hubbub/hubbub/event"
)

// Content types of the events thin pings publish for feed entries: each
// event is a one-entry feed document of this type, so deliveries can merge
// consecutive entries into one feed.
const (
	AtomContentType     = "application/atom+xml"
	RSSContentType      = "application/rss+xml"
	JSONFeedContentType = "application/feed+json"
)

// feedKind classifies a content type: "atom", "rss", "json" (JSON Feed) or
// "" for anything else.
func feedKind(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	switch mt {
	case AtomContentType:
		return "atom"
	case RSSContentType:
		return "rss"
	case JSONFeedContentType:
		return "json"
	}
	return ""
}

// feedMeta is what a one-entry document says about its feed.
type feedMeta struct {
	Title, Link, Description string
	Topic, Hub               string
}

// renderEntry renders item as a one-entry feed document of kind.
func renderEntry(kind string, m feedMeta, it *gofeed.Item, id string, updated time.Time) ([]byte, error) {
	switch kind {
	case "atom":
		return renderAtom(m, it, id, updated)
	case "rss":
		return renderRSS(m, it, id, updated)
	case "json":
		return renderJSONFeed(m, it, id, updated)
	}
	return nil, fmt.Errorf("websub: unknown feed kind %q", kind)
}

type xAtomFeed struct {
	XMLName xml.Name     `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string       `xml:"id"`
	Title   string       `xml:"title"`
	Updated string       `xml:"updated"`
	Links   []xAtomLink  `xml:"link"`
	Entries []xAtomEntry `xml:"entry"`
}

type xAtomLink struct {
	Rel    string `xml:"rel,attr,omitempty"`
	Href   string `xml:"href,attr"`
	Type   string `xml:"type,attr,omitempty"`
	Length string `xml:"length,attr,omitempty"`
}

type xCategory struct {
	Term string `xml:"term,attr"`
}

type xAtomText struct {
	Type string `xml:"type,attr,omitempty"`
	Body string `xml:",chardata"`
}

type xAtomEntry struct {
	ID        string      `xml:"id"`
	Title     string      `xml:"title"`
	Updated   string      `xml:"updated"`
	Published string      `xml:"published,omitempty"`
	Links     []xAtomLink `xml:"link"`
	Authors   []xPerson   `xml:"author"`
	Category  []xCategory `xml:"category"`
	Summary   *xAtomText  `xml:"summary"`
	Content   *xAtomText  `xml:"content"`
}

type xPerson struct {
	Name string `xml:"name"`
}

func links(m feedMeta) []xAtomLink {
	var l []xAtomLink
	if m.Topic != "" {
		l = append(l, xAtomLink{Rel: "self", Href: m.Topic})
	}
	if m.Hub != "" {
		l = append(l, xAtomLink{Rel: "hub", Href: m.Hub})
	}
	return l
}

func renderAtom(m feedMeta, it *gofeed.Item, id string, updated time.Time) ([]byte, error) {
	e := xAtomEntry{ID: id, Title: it.Title, Updated: updated.UTC().Format(time.RFC3339)}
	if it.PublishedParsed != nil {
		e.Published = it.PublishedParsed.UTC().Format(time.RFC3339)
	}
	if it.Link != "" {
		e.Links = append(e.Links, xAtomLink{Rel: "alternate", Href: it.Link})
	}
	for _, c := range it.Enclosures {
		if c != nil && c.URL != "" {
			e.Links = append(e.Links, xAtomLink{Rel: "enclosure", Href: c.URL, Type: c.Type, Length: c.Length})
		}
	}
	if it.Image != nil && it.Image.URL != "" && len(it.Enclosures) == 0 {
		e.Links = append(e.Links, xAtomLink{Rel: "enclosure", Href: it.Image.URL})
	}
	for _, c := range it.Categories {
		e.Category = append(e.Category, xCategory{Term: c})
	}
	for _, a := range it.Authors {
		if a != nil && a.Name != "" {
			e.Authors = append(e.Authors, xPerson{Name: a.Name})
		}
	}
	if it.Description != "" {
		e.Summary = &xAtomText{Type: "html", Body: it.Description}
	}
	if it.Content != "" {
		e.Content = &xAtomText{Type: "html", Body: it.Content}
	}
	f := xAtomFeed{ID: m.Topic, Title: m.Title, Updated: e.Updated, Links: links(m), Entries: []xAtomEntry{e}}
	return encodeXML(f)
}

type xRSS struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	AtomNS  string   `xml:"xmlns:atom,attr"`
	Channel xChannel `xml:"channel"`
}

type xChannel struct {
	Title       string      `xml:"title"`
	Link        string      `xml:"link"`
	Description string      `xml:"description"`
	Links       []xAtomLink `xml:"atom:link"`
	Items       []xItem     `xml:"item"`
}

type xItem struct {
	Title       string       `xml:"title,omitempty"`
	Link        string       `xml:"link,omitempty"`
	Description string       `xml:"description,omitempty"`
	GUID        xGUID        `xml:"guid"`
	PubDate     string       `xml:"pubDate,omitempty"`
	Categories  []string     `xml:"category"`
	Enclosures  []xEnclosure `xml:"enclosure"`
}

type xEnclosure struct {
	URL    string `xml:"url,attr"`
	Type   string `xml:"type,attr,omitempty"`
	Length string `xml:"length,attr,omitempty"`
}

type xGUID struct {
	IsPermaLink string `xml:"isPermaLink,attr"`
	ID          string `xml:",chardata"`
}

func renderRSS(m feedMeta, it *gofeed.Item, id string, updated time.Time) ([]byte, error) {
	desc := it.Description
	if desc == "" {
		desc = it.Content
	}
	item := xItem{Title: it.Title, Link: it.Link, Description: desc, GUID: xGUID{IsPermaLink: "false", ID: id},
		Categories: it.Categories}
	for _, c := range it.Enclosures {
		if c != nil && c.URL != "" {
			item.Enclosures = append(item.Enclosures, xEnclosure{URL: c.URL, Type: c.Type, Length: c.Length})
		}
	}
	if it.PublishedParsed != nil {
		item.PubDate = it.PublishedParsed.UTC().Format(time.RFC1123Z)
	} else {
		item.PubDate = updated.UTC().Format(time.RFC1123Z)
	}
	d := xRSS{Version: "2.0", AtomNS: "http://www.w3.org/2005/Atom", Channel: xChannel{
		Title: m.Title, Link: m.Link, Description: m.Description, Items: []xItem{item},
	}}
	d.Channel.Links = append(d.Channel.Links, links(m)...)
	return encodeXML(d)
}

func encodeXML(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(v); err != nil {
		return nil, fmt.Errorf("websub: render feed: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func renderJSONFeed(m feedMeta, it *gofeed.Item, id string, updated time.Time) ([]byte, error) {
	item := map[string]any{"id": id, "date_modified": updated.UTC().Format(time.RFC3339)}
	if it.Title != "" {
		item["title"] = it.Title
	}
	if it.Link != "" {
		item["url"] = it.Link
	}
	if it.Content != "" {
		item["content_html"] = it.Content
	} else {
		item["content_html"] = it.Description
	}
	if it.Description != "" {
		item["summary"] = it.Description
	}
	if it.PublishedParsed != nil {
		item["date_published"] = it.PublishedParsed.UTC().Format(time.RFC3339)
	}
	if len(it.Categories) > 0 {
		item["tags"] = it.Categories
	}
	if it.Image != nil && it.Image.URL != "" {
		item["image"] = it.Image.URL
	}
	var atts []map[string]any
	for _, c := range it.Enclosures {
		if c != nil && c.URL != "" {
			a := map[string]any{"url": c.URL, "mime_type": c.Type}
			if n, err := strconv.ParseInt(c.Length, 10, 64); err == nil && n > 0 {
				a["size_in_bytes"] = n
			}
			atts = append(atts, a)
		}
	}
	if atts != nil {
		item["attachments"] = atts
	}
	var authors []map[string]string
	for _, a := range it.Authors {
		if a != nil && a.Name != "" {
			authors = append(authors, map[string]string{"name": a.Name})
		}
	}
	if authors != nil {
		item["authors"] = authors
	}
	doc := map[string]any{
		"version": "https://jsonfeed.org/version/1.1",
		"title":   m.Title,
		"items":   []any{item},
	}
	if m.Link != "" {
		doc["home_page_url"] = m.Link
	}
	if m.Topic != "" {
		doc["feed_url"] = m.Topic
	}
	if m.Hub != "" {
		doc["hubs"] = []any{map[string]string{"type": "WebSub", "url": m.Hub}}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("websub: render JSON feed: %w", err)
	}
	return b, nil
}

// mergeFeeds joins the entries of feed documents of one kind into one
// document, in the order given: the feed-level parts (title, links) come
// from the last (newest) document.
func mergeFeeds(kind string, evs []*event.Event) ([]byte, error) {
	if len(evs) == 1 {
		return evs[0].Data, nil
	}
	if kind == "json" {
		return mergeJSONFeeds(evs)
	}
	entry, depth := "entry", 1
	if kind == "rss" {
		entry, depth = "item", 2
	}
	var entries [][]byte
	var pre, post []byte
	for i, e := range evs {
		spans, err := entrySpans(e.Data, entry, depth)
		if err != nil {
			return nil, err
		}
		for _, s := range spans {
			entries = append(entries, e.Data[s[0]:s[1]])
		}
		if i == len(evs)-1 {
			pre, post = e.Data[:spans[0][0]], e.Data[spans[len(spans)-1][1]:]
		}
	}
	var b bytes.Buffer
	b.Write(pre)
	for i, en := range entries {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(en)
	}
	b.Write(post)
	return b.Bytes(), nil
}

// entrySpans returns the byte ranges of the elements named name at depth
// (1: children of the root) of an XML document; an error when it has none
// or is not well-formed.
func entrySpans(doc []byte, name string, depth int) ([][2]int, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var spans [][2]int
	level, start := 0, -1
	for range len(doc) + 1 { // every token consumes at least one byte
		off := int(d.InputOffset())
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("websub: stored feed: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if level == depth && t.Name.Local == name {
				start = off
			}
			level++
		case xml.EndElement:
			level--
			if level == depth && t.Name.Local == name && start >= 0 {
				spans = append(spans, [2]int{start, int(d.InputOffset())})
				start = -1
			}
		}
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("websub: stored feed has no %s", name)
	}
	return spans, nil
}

func mergeJSONFeeds(evs []*event.Event) ([]byte, error) {
	var doc map[string]json.RawMessage
	var items []json.RawMessage
	for _, e := range evs {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return nil, fmt.Errorf("websub: stored JSON feed: %w", err)
		}
		var its []json.RawMessage
		if err := json.Unmarshal(d["items"], &its); err != nil {
			return nil, fmt.Errorf("websub: stored JSON feed items: %w", err)
		}
		items = append(items, its...)
		doc = d
	}
	all, err := json.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("websub: merge JSON feed: %w", err)
	}
	doc["items"] = all
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("websub: merge JSON feed: %w", err)
	}
	return b, nil
}

// isJSONFeed reports whether body is a JSON object whose "version" names
// jsonfeed.org.
func isJSONFeed(body []byte) bool {
	var d struct {
		Version string `json:"version"`
	}
	return json.Unmarshal(body, &d) == nil && strings.Contains(d.Version, "jsonfeed.org")
}
