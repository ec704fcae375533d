package topicurl

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/event"
)

func TestSelf(t *testing.T) {
	const base = "https://hub.example.com"
	for _, tc := range []struct {
		name   string
		topics []string
		format string
		query  string
		want   string
	}{
		{"json", []string{"photos/user/42"}, "", "", base + "/topics/photos/user/42"},
		{"json format dropped", []string{"a"}, "json", "", base + "/topics/a"},
		{"atom", []string{"a"}, "atom", "", base + "/topics/a?format=atom"},
		{"rss", []string{"a"}, "rss", "", base + "/topics/a?format=rss"},
		{"escaped segments", []string{"a b/c?d/é"}, "", "", base + "/topics/a%20b/c%3Fd/%C3%A9"},
		{"a URL as topic", []string{"https://x.example/feed.atom"}, "", "", base + "/events?topic=https%3A%2F%2Fx.example%2Ffeed.atom"},
		{"dot segment", []string{"a/../b"}, "atom", "", base + "/events?format=atom&topic=a%2F..%2Fb"},
		{"several topics", []string{"a", "b"}, "rss", "", base + "/events?format=rss&topic=a&topic=b"},
		{"filters kept, cursors and tokens dropped", []string{"a"}, "atom",
			"tag=k&after=e:1&count=5&access_token=secret&where.user.id=42&near=1,2,3&q=x&fields=title&last_event_id=e:2&before=e:9&tags_all=z&filter=%7B%7D",
			base + "/topics/a?fields=title&filter=%7B%7D&format=atom&near=1%2C2%2C3&q=x&tag=k&tags_all=z&where.user.id=42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.query)
			if got := Self(base+"/", tc.topics, tc.format, v); got != tc.want {
				t.Errorf("Self = %s\nwant   %s", got, tc.want)
			}
		})
	}
	if got := Hub("http://h:8080/"); got != "http://h:8080/hub" {
		t.Errorf("Hub = %s", got)
	}
}

func TestParse(t *testing.T) {
	bases := []string{"https://hub.example.com/prefix", "http://127.0.0.1:8080"}
	for _, tc := range []struct {
		name   string
		raw    string
		ok     bool
		err    string // substring; "" for none
		topic  string
		format string
		filter string // url-encoded
	}{
		{name: "bare name", raw: "photos/user/42"},
		{name: "foreign URL", raw: "https://blog.example/feed.atom"},
		{name: "another page of ours", raw: "http://127.0.0.1:8080/wall?topic=a"},
		{name: "base without its path", raw: "https://hub.example.com/topics/a"},
		{name: "path prefix must end at a segment", raw: "https://hub.example.com/prefixed/topics/a"},
		{name: "not http", raw: "ftp://127.0.0.1:8080/topics/a"},

		{name: "topics path", raw: "http://127.0.0.1:8080/topics/photos/user/42", ok: true, topic: "photos/user/42"},
		{name: "public URL with path", raw: "https://hub.example.com/prefix/topics/a", ok: true, topic: "a"},
		{name: "scheme, host case, default port", raw: "http://HUB.example.com:80/prefix/topics/a", ok: true, topic: "a"},
		{name: "escaped", raw: "http://127.0.0.1:8080/topics/a%20b/c%3Fd", ok: true, topic: "a b/c?d"},
		{name: "rss", raw: "http://127.0.0.1:8080/topics/a?format=rss&count=5", ok: true, topic: "a", format: "rss"},
		{name: "atom, upper case", raw: "http://127.0.0.1:8080/topics/a?format=ATOM", ok: true, topic: "a", format: "atom"},
		{name: "json", raw: "http://127.0.0.1:8080/topics/a?format=json", ok: true, topic: "a"},
		{name: "events", raw: "http://127.0.0.1:8080/events?topic=a&format=atom", ok: true, topic: "a", format: "atom"},
		{name: "events, Superfeedr spelling", raw: "http://127.0.0.1:8080/events?hub.mode=retrieve&hub.topic=a", ok: true, topic: "a"},
		{name: "filters", raw: "http://127.0.0.1:8080/topics/a?tag=k&where.x=1&fields=t&after=e:1", ok: true, topic: "a", filter: "tag=k&where.x=1"},

		{name: "several topics", raw: "http://127.0.0.1:8080/events?topic=a&topic=b", ok: true, err: "names 2 topics"},
		{name: "no topic", raw: "http://127.0.0.1:8080/events?format=atom", ok: true, err: "names no topic"},
		{name: "pattern", raw: "http://127.0.0.1:8080/events?topic=a/*", ok: true, err: "pattern"},
		{name: "pattern in path", raw: "http://127.0.0.1:8080/topics/a/**", ok: true, err: "pattern"},
		{name: "control character", raw: "http://127.0.0.1:8080/topics/a%0Ab", ok: true, err: "control"},
		{name: "bad format", raw: "http://127.0.0.1:8080/topics/a?format=xml", ok: true, err: "format"},
		{name: "bad query", raw: "http://127.0.0.1:8080/topics/a?x=%zz", ok: true, err: "query"},
		{name: "other hub.mode", raw: "http://127.0.0.1:8080/events?hub.mode=subscribe&topic=a", ok: true, err: "hub.mode"},
		{name: "empty name", raw: "http://127.0.0.1:8080/topics/", ok: true, err: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, ok, err := Parse(tc.raw, bases...)
			if ok != tc.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v (%+v, %v)", tc.raw, ok, tc.ok, ref, err)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !event.IsValidation(err) {
					t.Fatalf("Parse(%q) error %v, want a validation error about %q", tc.raw, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.raw, err)
			}
			if !ok {
				return
			}
			want, _ := url.ParseQuery(tc.filter)
			if len(want) == 0 {
				want = nil
			}
			if ref.Topic != tc.topic || ref.Format != tc.format || !reflect.DeepEqual(ref.Filter, want) {
				t.Errorf("Parse(%q) = %+v, want topic %q format %q filter %v", tc.raw, ref, tc.topic, tc.format, want)
			}
		})
	}
}

// Every URL Self builds for one topic is one Parse maps back to that topic,
// format and filter.
func TestSelfParseRoundTrip(t *testing.T) {
	const base = "http://[::1]:9999/p"
	v := url.Values{"tag": {"k", "j"}, "near": {"1,2,3"}, "after": {"x:1"}}
	for _, topic := range []string{"a", "photos/user/42", "a b", "a//b", "./x", "https://x/feed?x=1#f", "ü/%2F", "a:b"} {
		for _, format := range []string{"", "atom", "rss"} {
			self := Self(base, []string{topic}, format, v)
			ref, ok, err := Parse(self, "http://127.0.0.1", base)
			if !ok || err != nil || ref.Topic != topic || ref.Format != format ||
				!reflect.DeepEqual(ref.Filter, url.Values{"tag": {"k", "j"}, "near": {"1,2,3"}}) {
				t.Errorf("Parse(Self(%q, %q)) = Parse(%s) = %+v, %v, %v", topic, format, self, ref, ok, err)
			}
		}
	}
}

// FuzzParse: Parse never panics, says ok for every URL Self builds, and
// maps it back to its topic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a", "photos/user/42", "https://x/feed.atom", "a//b", "a%2Fb", "x?y#z"} {
		f.Add(s, "http://127.0.0.1:8080/topics/"+s+"?format=rss")
	}
	f.Fuzz(func(t *testing.T, topic, raw string) {
		_, _, _ = Parse(raw, "http://127.0.0.1:8080", "https://hub.example.com/p")
		if event.ValidateTopic(topic) != nil || event.IsPattern(topic) {
			return
		}
		self := Self("https://hub.example.com/p", []string{topic}, "atom", nil)
		ref, ok, err := Parse(self, "https://hub.example.com/p")
		if !ok || err != nil || ref.Topic != topic || ref.Format != "atom" {
			t.Fatalf("Parse(Self(%q)) = Parse(%s) = %+v, %v, %v", topic, self, ref, ok, err)
		}
	})
}
