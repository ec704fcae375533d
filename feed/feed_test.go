package feed

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
)

// Parsed shapes. Fields without a namespace match any namespace.

type pLink struct {
	XMLName xml.Name
	Rel     string `xml:"rel,attr"`
	Href    string `xml:"href,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type pContent struct {
	Type string `xml:"type,attr"`
	Body string `xml:",chardata"`
}

type pCategory struct {
	Term string `xml:"term,attr"`
}

type pEntry struct {
	ID         string      `xml:"id"`
	Title      string      `xml:"title"`
	Updated    string      `xml:"updated"`
	Links      []pLink     `xml:"link"`
	Categories []pCategory `xml:"category"`
	Summary    *pContent   `xml:"summary"`
	Content    pContent    `xml:"content"`
}

type pAtom struct {
	XMLName   xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	ID        string   `xml:"id"`
	Title     string   `xml:"title"`
	Updated   string   `xml:"updated"`
	Links     []pLink  `xml:"link"`
	Author    string   `xml:"author>name"`
	Generator string   `xml:"generator"`
	Entries   []pEntry `xml:"entry"`
}

type pEnclosure struct {
	URL    string `xml:"url,attr"`
	Length string `xml:"length,attr"`
	Type   string `xml:"type,attr"`
}

type pItem struct {
	Title       string `xml:"title"`
	Link        string `xml:"link"`
	Description string `xml:"description"`
	GUID        struct {
		IsPermaLink string `xml:"isPermaLink,attr"`
		ID          string `xml:",chardata"`
	} `xml:"guid"`
	PubDate    string      `xml:"pubDate"`
	Categories []string    `xml:"category"`
	Enclosure  *pEnclosure `xml:"enclosure"`
}

type pRSS struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	Channel struct {
		Title         string  `xml:"title"`
		Links         []pLink `xml:"link"` // <link> and <atom:link>
		Description   string  `xml:"description"`
		LastBuildDate string  `xml:"lastBuildDate"`
		Items         []pItem `xml:"item"`
	} `xml:"channel"`
}

// wellFormed decodes the whole document token by token.
func wellFormed(doc []byte) error {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func render(t testing.TB, write func(io.Writer, Meta, []*event.Event) error, m Meta, evs []*event.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b, m, evs); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := wellFormed(b.Bytes()); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, b.Bytes())
	}
	return b.Bytes()
}

func links(ls []pLink) map[string]pLink {
	m := map[string]pLink{}
	for _, l := range ls {
		m[l.Rel] = l
	}
	return m
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)

func ev(seq uint64, typ, ct, data string, tags ...string) *event.Event {
	return &event.Event{Topic: "photos/cats", Epoch: "e1", Seq: seq, Type: typ,
		Time: t0.Add(time.Duration(seq) * time.Second), ContentType: ct, Data: []byte(data), Tags: tags}
}

// want is what both formats must show for one event.
type want struct {
	id, title, link, image, imageType string
	tags                              []string
	atomType, atomBody                string // Atom <content>
	rssDesc                           string
}

func TestFeeds(t *testing.T) {
	meta := Meta{Title: "Cats", Topic: "photos/cats", SelfURL: "https://hub.example/t/photos/cats.atom", HubURL: "https://hub.example/websub"}
	binary := string([]byte{0, 1, 0xfe, 0xff, 'x'})
	tests := []struct {
		name  string
		meta  Meta
		evs   []*event.Event
		wants []want
	}{
		{"json title url image", meta,
			[]*event.Event{ev(12, "message", "", `{"title":"Kitten","url":"https://ex.com/k?a=1&b=2","image":"https://ex.com/k.PNG"}`, "cute", "cat")},
			[]want{{id: "urn:hubbub:photos%2Fcats:e1:12", title: "Kitten", link: "https://ex.com/k?a=1&b=2",
				image: "https://ex.com/k.PNG", imageType: "image/png", tags: []string{"cute", "cat"}, atomType: "text",
				atomBody: `{"title":"Kitten","url":"https://ex.com/k?a=1&b=2","image":"https://ex.com/k.PNG"}`,
				rssDesc:  `{"title":"Kitten","url":"https://ex.com/k?a=1&amp;b=2","image":"https://ex.com/k.PNG"}`}}},
		{"json link photo, no title", meta,
			[]*event.Event{ev(3, "photo", "application/json", `{"link":"http://ex.com/p","photo":{"url":"https://ex.com/p"}}`)},
			[]want{{id: "urn:hubbub:photos%2Fcats:e1:3", title: "photo #3", link: "http://ex.com/p",
				image: "https://ex.com/p", imageType: "image/jpeg", atomType: "text",
				atomBody: `{"link":"http://ex.com/p","photo":{"url":"https://ex.com/p"}}`,
				rssDesc:  `{"link":"http://ex.com/p","photo":{"url":"https://ex.com/p"}}`}}},
		{"json non-string fields and unsafe urls", meta,
			[]*event.Event{ev(4, "", "", `{"title":7,"url":"javascript:alert(1)","image":"data:image/png;base64,AA"}`)},
			[]want{{id: "urn:hubbub:photos%2Fcats:e1:4", title: "message #4", atomType: "text",
				atomBody: `{"title":7,"url":"javascript:alert(1)","image":"data:image/png;base64,AA"}`,
				rssDesc:  `{"title":7,"url":"javascript:alert(1)","image":"data:image/png;base64,AA"}`}}},
		{"json array and empty", meta,
			[]*event.Event{ev(5, "message", "", `[1,2]`), ev(6, "message", "", ``)},
			[]want{
				{id: "urn:hubbub:photos%2Fcats:e1:5", title: "message #5", atomType: "text", atomBody: "[1,2]", rssDesc: "[1,2]"},
				{id: "urn:hubbub:photos%2Fcats:e1:6", title: "message #6", atomType: "text", atomBody: "null", rssDesc: "null"}}},
		{"plain text and html", meta,
			[]*event.Event{ev(7, "note", "text/plain; charset=utf-8", "a < b\nline 2"), ev(8, "note", "text/html", "<p>hi</p>")},
			[]want{
				{id: "urn:hubbub:photos%2Fcats:e1:7", title: "note #7", atomType: "text", atomBody: "a < b\nline 2", rssDesc: "a &lt; b\nline 2"},
				{id: "urn:hubbub:photos%2Fcats:e1:8", title: "note #8", atomType: "html", atomBody: "<p>hi</p>", rssDesc: "<p>hi</p>"}}},
		{"binary", meta,
			[]*event.Event{ev(9, "blob", "image/png", binary), ev(10, "blob", "text/plain", binary), ev(11, "blob", "", "")},
			[]want{
				{id: "urn:hubbub:photos%2Fcats:e1:9", title: "blob #9", atomType: "image/png",
					atomBody: base64.StdEncoding.EncodeToString([]byte(binary)), rssDesc: "5 bytes of image/png"},
				{id: "urn:hubbub:photos%2Fcats:e1:10", title: "blob #10", atomType: "application/octet-stream",
					atomBody: base64.StdEncoding.EncodeToString([]byte(binary)), rssDesc: "5 bytes of application/octet-stream"},
				{id: "urn:hubbub:photos%2Fcats:e1:11", title: "blob #11", atomType: "text", atomBody: "null", rssDesc: "null"}}},
		{"empty list", Meta{Topic: "a:b", Updated: t0}, nil, nil},
		{"hostile", Meta{Title: "T\x00i\x1bt]]>le\xff\uFFFE", Topic: "x:y\x01", SelfURL: "https://h/?a=1&b=\x02", HubURL: "https://h/hub\uffff"},
			[]*event.Event{{Topic: "x:y\x01", Epoch: "e", Seq: 1, Type: "m", Time: t0,
				Data: []byte("{\"title\":\"a\\u0000b\\u001f]]><c>\xff\",\"url\":\"https://h/\\u0007x\"}"),
				Tags: []string{"ok", "\x01\x02", "t]]>\x0b\xc3"}}},
			[]want{{id: "urn:hubbub:x%3Ay%01:e:1", title: "ab]]><c>\uFFFD", link: "https://h/x", tags: []string{"ok", "t]]>"},
				atomType: "text", atomBody: "{\"title\":\"a\\u0000b\\u001f]]><c>\",\"url\":\"https://h/\\u0007x\"}",
				rssDesc: "{\"title\":\"a\\u0000b\\u001f]]&gt;&lt;c&gt;\",\"url\":\"https://h/\\u0007x\"}"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAtom(t, tc.meta, tc.evs, tc.wants)
			checkRSS(t, tc.meta, tc.evs, tc.wants)
		})
	}
}

func checkAtom(t *testing.T, m Meta, evs []*event.Event, wants []want) {
	doc := render(t, WriteAtom, m, evs)
	var f pAtom
	if err := xml.Unmarshal(doc, &f); err != nil {
		t.Fatalf("atom unmarshal: %v", err)
	}
	if f.ID != feedID(m.Topic) || f.Title != clean(cmpOr(m.Title, m.Topic)) || f.Generator != "hubbub" || f.Author != "hubbub" {
		t.Errorf("atom feed head: id %q title %q gen %q author %q", f.ID, f.Title, f.Generator, f.Author)
	}
	wantUpdated := m.Updated
	if len(evs) > 0 {
		wantUpdated = evs[len(evs)-1].Time // tests list events oldest first
	}
	if got, err := time.Parse(time.RFC3339, f.Updated); err != nil || !got.Equal(wantUpdated.Truncate(time.Second)) {
		t.Errorf("atom updated %q, want %v", f.Updated, wantUpdated)
	}
	fl := links(f.Links)
	if fl["self"].Href != clean(m.SelfURL) || fl["hub"].Href != clean(m.HubURL) {
		t.Errorf("atom feed links %+v", f.Links)
	}
	if m.SelfURL == "" && len(f.Links) != 0 {
		t.Errorf("atom feed links without URLs: %+v", f.Links)
	}
	if len(f.Entries) != len(wants) {
		t.Fatalf("atom: %d entries, want %d", len(f.Entries), len(wants))
	}
	for i, w := range wants {
		e := f.Entries[i]
		if e.ID != w.id || e.Title != w.title {
			t.Errorf("atom entry %d: id %q title %q, want %q %q", i, e.ID, e.Title, w.id, w.title)
		}
		if got, err := time.Parse(time.RFC3339, e.Updated); err != nil || !got.Equal(evs[i].Time.Truncate(time.Second)) {
			t.Errorf("atom entry %d updated %q", i, e.Updated)
		}
		el := links(e.Links)
		if el["alternate"].Href != w.link || el["enclosure"].Href != w.image || el["enclosure"].Type != w.imageType {
			t.Errorf("atom entry %d links %+v", i, e.Links)
		}
		var terms []string
		for _, c := range e.Categories {
			terms = append(terms, c.Term)
		}
		if strings.Join(terms, "|") != strings.Join(w.tags, "|") {
			t.Errorf("atom entry %d categories %q, want %q", i, terms, w.tags)
		}
		if e.Content.Type != w.atomType || e.Content.Body != w.atomBody {
			t.Errorf("atom entry %d content %q %q, want %q %q", i, e.Content.Type, e.Content.Body, w.atomType, w.atomBody)
		}
		// RFC 4287 4.1.1.3: base64 content (a media type that is neither
		// text/* nor XML) needs a summary.
		base64Content := w.atomType != "text" && w.atomType != "html"
		switch {
		case base64Content && (e.Summary == nil || e.Summary.Type != "text" || e.Summary.Body != w.rssDesc):
			t.Errorf("atom entry %d has base64 content and summary %+v, want text %q", i, e.Summary, w.rssDesc)
		case !base64Content && e.Summary != nil:
			t.Errorf("atom entry %d has a summary %+v beside its text content", i, e.Summary)
		}
	}
}

func checkRSS(t *testing.T, m Meta, evs []*event.Event, wants []want) {
	doc := render(t, WriteRSS, m, evs)
	var r pRSS
	if err := xml.Unmarshal(doc, &r); err != nil {
		t.Fatalf("rss unmarshal: %v", err)
	}
	c := r.Channel
	if r.Version != "2.0" || c.Title != clean(cmpOr(m.Title, m.Topic)) || c.Description == "" {
		t.Errorf("rss channel head: version %q title %q desc %q", r.Version, c.Title, c.Description)
	}
	if _, err := time.Parse(time.RFC1123Z, c.LastBuildDate); err != nil {
		t.Errorf("rss lastBuildDate %q: %v", c.LastBuildDate, err)
	}
	var atomLinks []pLink
	plain := ""
	for _, l := range c.Links {
		switch l.XMLName.Space {
		case atomNS:
			atomLinks = append(atomLinks, l)
		case "":
			plain = l.Text
		default:
			t.Errorf("rss link in namespace %q", l.XMLName.Space)
		}
	}
	al := links(atomLinks)
	if plain != clean(m.SelfURL) || al["self"].Href != clean(m.SelfURL) || al["hub"].Href != clean(m.HubURL) {
		t.Errorf("rss channel links %+v", c.Links)
	}
	if len(c.Items) != len(wants) {
		t.Fatalf("rss: %d items, want %d", len(c.Items), len(wants))
	}
	for i, w := range wants {
		it := c.Items[i]
		if it.GUID.ID != w.id || it.GUID.IsPermaLink != "false" || it.Title != w.title || it.Link != w.link {
			t.Errorf("rss item %d: guid %+v title %q link %q, want %q %q %q", i, it.GUID, it.Title, it.Link, w.id, w.title, w.link)
		}
		if got, err := time.Parse(time.RFC1123Z, it.PubDate); err != nil || !got.Equal(evs[i].Time.Truncate(time.Second)) {
			t.Errorf("rss item %d pubDate %q", i, it.PubDate)
		}
		if strings.Join(it.Categories, "|") != strings.Join(w.tags, "|") {
			t.Errorf("rss item %d categories %q, want %q", i, it.Categories, w.tags)
		}
		if it.Description != w.rssDesc {
			t.Errorf("rss item %d description %q, want %q", i, it.Description, w.rssDesc)
		}
		switch {
		case w.image == "" && it.Enclosure != nil:
			t.Errorf("rss item %d: unexpected enclosure %+v", i, it.Enclosure)
		case w.image != "" && (it.Enclosure == nil || *it.Enclosure != pEnclosure{URL: w.image, Length: "0", Type: w.imageType}):
			t.Errorf("rss item %d enclosure %+v, want %q %q", i, it.Enclosure, w.image, w.imageType)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestOrderAndUpdated(t *testing.T) {
	evs := []*event.Event{ev(2, "m", "", "{}"), nil, ev(9, "m", "", "{}"), ev(1, "m", "", "{}")}
	var f pAtom
	if err := xml.Unmarshal(render(t, WriteAtom, Meta{Topic: "t", Updated: t0.Add(time.Hour)}, evs), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 3 || f.Entries[0].Title != "m #2" || f.Entries[1].Title != "m #9" || f.Entries[2].Title != "m #1" {
		t.Fatalf("entries out of order or nil not skipped: %+v", f.Entries)
	}
	if want := evs[2].Time.Format(time.RFC3339); f.Updated != want {
		t.Errorf("updated %q, want newest event %q", f.Updated, want)
	}
}

func TestEntryIDsDistinct(t *testing.T) {
	// Without escaping ':' these two would share an id.
	a := describe("", &event.Event{Topic: "a:b", Seq: 5})
	b := describe("", &event.Event{Topic: "a", Epoch: "b", Seq: 5})
	if a.id == b.id {
		t.Fatalf("ids collide: %q", a.id)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"plain ascii ]]> <&>":    "plain ascii ]]> <&>",
		"tab\tnl\ncr\r":          "tab\tnl\ncr\r",
		"a\x00b\x01c\x1fd\x7fe":  "abcd\x7fe",
		"bad\xffutf8\xc3":        "badutf8",
		"nonchar\uFFFE\uFFFFend": "noncharend",
		"ok \uFFFD \U0001F600 é": "ok \uFFFD \U0001F600 é",
		"\xed\xa0\x80surrogate":  "surrogate",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(`{"title":"t","url":"https://x/","image":"https://x/a.gif"}`), "topic", "tag", "", "e1", "Title")
	f.Add([]byte("a\x00]]>\xff\uFFFE"), "a:b\x01", "\x0b]]>", "text/html", "", "\x1b")
	f.Add([]byte{0, 1, 2, 0xff}, "t", "", "application/octet-stream", "x", "")
	f.Add([]byte(`{"photo":{"url":"http://x/\u0000.png"},"title":"\ud800"}`), "", "", "application/json", "", "]]>")
	f.Add([]byte("<x>"), "t", "t", "text/xml", "e", "t")
}

func fuzzMeta(topic, title string) Meta {
	return Meta{Title: title, Topic: topic, SelfURL: "https://h/" + topic, HubURL: "https://h/hub?" + title, Updated: t0}
}

func fuzzEvent(data []byte, topic, tag, ct, epoch string) *event.Event {
	return &event.Event{Topic: topic, Epoch: epoch, Seq: uint64(len(data)), Type: tag, Key: tag, Time: t0,
		ContentType: ct, Data: data, Tags: []string{tag, topic}}
}

func FuzzWriteAtom(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, topic, tag, ct, epoch, title string) {
		doc := render(t, WriteAtom, fuzzMeta(topic, title), []*event.Event{fuzzEvent(data, topic, tag, ct, epoch)})
		var p pAtom
		if err := xml.Unmarshal(doc, &p); err != nil || len(p.Entries) != 1 || p.Entries[0].ID == "" || p.Entries[0].Title == "" {
			t.Fatalf("unmarshal: %v, %+v\n%s", err, p.Entries, doc)
		}
	})
}

func FuzzWriteRSS(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, topic, tag, ct, epoch, title string) {
		doc := render(t, WriteRSS, fuzzMeta(topic, title), []*event.Event{fuzzEvent(data, topic, tag, ct, epoch)})
		var p pRSS
		if err := xml.Unmarshal(doc, &p); err != nil || len(p.Channel.Items) != 1 || p.Channel.Items[0].GUID.ID == "" || p.Channel.Items[0].Title == "" {
			t.Fatalf("unmarshal: %v, %+v\n%s", err, p.Channel.Items, doc)
		}
	})
}
