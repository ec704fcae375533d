package follow

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
)

func TestNormalize(t *testing.T) {
	pub := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	upd := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	want := Entry{ID: "urn:x:1", Title: "Hello", Summary: "sum", Content: "<p>body</p>", URL: "https://blog.example.com/1",
		Links:      []string{"https://blog.example.com/1"},
		Enclosures: []Enclosure{{URL: "https://blog.example.com/a.mp3", Type: "audio/mpeg", Length: "123"}},
		Authors:    []Author{{Name: "Ann"}}, Updated: &upd, Categories: []string{"go"},
		Feed: &FeedInfo{Title: "Blog", URL: "https://blog.example.com/"}}
	for _, tc := range []struct {
		ct, doc string
		mod     func(e *Entry)
	}{
		{"application/atom+xml", `<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><link href="https://blog.example.com/"/>
<entry><id>urn:x:1</id><title>Hello</title><updated>2026-11-30T11:00:00Z</updated><published>2026-11-30T10:00:00Z</published>
<link rel="alternate" href="https://blog.example.com/1"/><link rel="enclosure" href="https://blog.example.com/a.mp3" type="audio/mpeg" length="123"/>
<author><name>Ann</name></author><category term="go"/><summary>sum</summary><content type="html">&lt;p&gt;body&lt;/p&gt;</content></entry></feed>`,
			func(e *Entry) { e.Published = &pub }},
		{"application/rss+xml", `<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Blog</title><link>https://blog.example.com/</link><description>d</description>
<item><guid isPermaLink="false">urn:x:1</guid><title>Hello</title><link>https://blog.example.com/1</link><description>sum</description>
<content:encoded>&lt;p&gt;body&lt;/p&gt;</content:encoded><author>ann@example.com (Ann)</author><category>go</category>
<enclosure url="https://blog.example.com/a.mp3" type="audio/mpeg" length="123"/><pubDate>Mon, 30 Nov 2026 11:00:00 +0000</pubDate></item></channel></rss>`,
			func(e *Entry) {
				e.Published, e.Updated = &upd, nil
				e.Authors = []Author{{Name: "Ann", Email: "ann@example.com"}}
			}},
		{"application/feed+json", `{"version":"https://jsonfeed.org/version/1.1","title":"Blog","home_page_url":"https://blog.example.com/","items":[
{"id":"urn:x:1","title":"Hello","url":"https://blog.example.com/1","summary":"sum","content_html":"<p>body</p>","date_modified":"2026-11-30T11:00:00Z",
"authors":[{"name":"Ann"}],"tags":["go"],"attachments":[{"url":"https://blog.example.com/a.mp3","mime_type":"audio/mpeg","size_in_bytes":123}]}]}`,
			nil},
	} {
		e := &event.Event{Topic: "https://blog.example.com/feed", Type: "entry", ContentType: tc.ct, Data: []byte(tc.doc)}
		out, ok := Normalize(e)
		if !ok {
			t.Fatalf("%s: not normalised", tc.ct)
		}
		if out.ContentType != EntryContentType || e.ContentType != tc.ct {
			t.Fatalf("%s: content type %q (input now %q)", tc.ct, out.ContentType, e.ContentType)
		}
		var got Entry
		if err := json.Unmarshal(out.Data, &got); err != nil {
			t.Fatalf("%s: %v in %s", tc.ct, err, out.Data)
		}
		w := want
		w.Links = append([]string(nil), want.Links...)
		if tc.mod != nil {
			tc.mod(&w)
		}
		if !reflect.DeepEqual(got, w) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(w)
			t.Errorf("%s:\n got %s\nwant %s", tc.ct, gj, wj)
		}
	}
	if _, ok := Normalize(&event.Event{ContentType: "application/json", Data: []byte(`{}`)}); ok {
		t.Error("a JSON event was normalised")
	}
	if _, ok := Normalize(&event.Event{ContentType: "application/atom+xml", Data: []byte(`not xml`)}); ok {
		t.Error("a broken Atom event was normalised")
	}
}
