package follow

import (
	"bytes"
	"encoding/json"
	"mime"
	"time"

	"github.com/mmcdole/gofeed"

	"github.com/hubbub/hubbub/event"
)

// EntryContentType is the content type of an entry rendered by Normalize.
const EntryContentType = "application/json"

// Entry is a feed entry in the one JSON shape hubbub gives every entry,
// whatever its source format (RSS 2.0, Atom, JSON Feed). Empty fields are
// left out.
type Entry struct {
	ID         string      `json:"id"`
	Title      string      `json:"title,omitempty"`
	Summary    string      `json:"summary,omitempty"` // HTML or text, as the feed gave it
	Content    string      `json:"content,omitempty"` // HTML or text, as the feed gave it
	URL        string      `json:"url,omitempty"`     // the entry's main (alternate) link
	Links      []string    `json:"links,omitempty"`   // every link of the entry
	Enclosures []Enclosure `json:"enclosures,omitempty"`
	Image      string      `json:"image,omitempty"`
	Authors    []Author    `json:"authors,omitempty"`
	Published  *time.Time  `json:"published,omitempty"` // RFC 3339, UTC
	Updated    *time.Time  `json:"updated,omitempty"`   // RFC 3339, UTC
	Categories []string    `json:"categories,omitempty"`
	Feed       *FeedInfo   `json:"feed,omitempty"` // the feed the entry came from
}

// Enclosure is an attached file (RSS enclosure, Atom rel="enclosure",
// JSON Feed attachment).
type Enclosure struct {
	URL    string `json:"url"`
	Type   string `json:"type,omitempty"`
	Length string `json:"length,omitempty"`
}

// Author is an entry's author.
type Author struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// FeedInfo names the feed of an entry.
type FeedInfo struct {
	Title string `json:"title,omitempty"`
	URL   string `json:"url,omitempty"` // the feed's home page
}

// Normalize renders an entry event (the one-entry Atom, RSS or JSON Feed
// document thin pings and followed feeds publish) as an Entry, as JSON
// (content type EntryContentType); ok is false, and e is returned, for any
// other event. It is hub.Options.Entries. e is not changed.
func Normalize(e *event.Event) (*event.Event, bool) {
	mt, _, err := mime.ParseMediaType(e.ContentType)
	if err != nil {
		return e, false
	}
	switch mt {
	case "application/atom+xml", "application/rss+xml", "application/feed+json":
	default:
		return e, false
	}
	f, err := gofeed.NewParser().Parse(bytes.NewReader(e.Data))
	if err != nil || len(f.Items) == 0 || f.Items[0] == nil {
		return e, false
	}
	en := entryOf(f.Items[0])
	if f.Title != "" || f.Link != "" {
		en.Feed = &FeedInfo{Title: f.Title, URL: f.Link}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // content is HTML: keep it readable
	if err := enc.Encode(en); err != nil {
		return e, false
	}
	cp := *e
	cp.ContentType, cp.Data = EntryContentType, bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return &cp, true
}

func entryOf(it *gofeed.Item) Entry {
	en := Entry{ID: it.GUID, Title: it.Title, Summary: it.Description, Content: it.Content,
		URL: it.Link, Categories: it.Categories}
	if en.ID == "" {
		en.ID = it.Link
	}
	seen := map[string]bool{}
	for _, l := range append([]string{it.Link}, it.Links...) {
		if l != "" && !seen[l] {
			seen[l] = true
			en.Links = append(en.Links, l)
		}
	}
	for _, c := range it.Enclosures {
		if c != nil && c.URL != "" {
			en.Enclosures = append(en.Enclosures, Enclosure{URL: c.URL, Type: c.Type, Length: c.Length})
		}
	}
	if it.Image != nil {
		en.Image = it.Image.URL
	}
	for _, a := range it.Authors {
		if a != nil && (a.Name != "" || a.Email != "") {
			en.Authors = append(en.Authors, Author{Name: a.Name, Email: a.Email})
		}
	}
	if it.PublishedParsed != nil {
		t := it.PublishedParsed.UTC()
		en.Published = &t
	}
	if it.UpdatedParsed != nil {
		t := it.UpdatedParsed.UTC()
		en.Updated = &t
	}
	return en
}
