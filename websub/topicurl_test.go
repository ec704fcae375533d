package websub_test

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/websub"
)

// A subscription to any URL under which hubbub serves a topic reaches that
// topic (issue 12 item 3): a feed URL delivers feeds of its format, its
// filter parameters filter, and the Link header names the hub as discovery
// does and the URL subscribed to as rel="self".
func TestSubscribeToTopicURLs(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	base := e.srv.URL
	for _, tc := range []struct {
		name, topic, ctype string
		format             string // root element: "feed" (Atom), "rss", or "" for JSON
	}{
		{"topics path, RSS", base + "/topics/blog/a?format=rss&count=5", "application/rss+xml", "rss"},
		{"events, Atom", base + "/events?topic=blog/a&format=atom", "application/atom+xml", "feed"},
		{"events, Superfeedr spelling", base + "/events?hub.mode=retrieve&hub.topic=blog/a", "application/json", ""},
		{"https URL of a plain-HTTP hub (TLS ends at a proxy)", "https" + strings.TrimPrefix(base, "http") + "/topics/blog/a", "application/json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSubscriber(t)
			if err := e.subscribe(tc.topic, s.url("/cb"), nil); err != nil {
				t.Fatal(err)
			}
			e.publish(event.Draft{Topics: []string{"blog/a"}, Data: []byte(`{"title":"hello ` + tc.name + `"}`)})
			d := s.next()
			if !strings.HasPrefix(d.header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("Content-Type %q, want %s", d.header.Get("Content-Type"), tc.ctype)
			}
			if want := "<" + base + `/hub>; rel="hub", <` + tc.topic + `>; rel="self"`; d.header.Get("Link") != want {
				t.Fatalf("Link %q, want %q", d.header.Get("Link"), want)
			}
			if !strings.Contains(string(d.body), "hello "+tc.name) {
				t.Fatalf("delivery lacks the event: %s", d.body)
			}
			if tc.format == "" {
				return
			}
			var doc struct{ XMLName xml.Name }
			if err := xml.Unmarshal(d.body, &doc); err != nil || doc.XMLName.Local != tc.format {
				t.Fatalf("delivery is not a %s document (%v): %s", tc.format, err, d.body)
			}
			if !strings.Contains(string(d.body), `href="`+strings.ReplaceAll(tc.topic, "&", "&amp;")+`"`) {
				t.Fatalf("feed does not name the topic URL as self: %s", d.body)
			}
		})
	}

	// Filter parameters of the URL filter the deliveries.
	s := newSubscriber(t)
	if err := e.subscribe(base+"/topics/blog/b?tag=kitten&format=atom", s.url("/cb"), nil); err != nil {
		t.Fatal(err)
	}
	e.publish(event.Draft{Topics: []string{"blog/b"}, Data: []byte(`{"title":"dog"}`), Tags: []string{"dog"}})
	e.publish(event.Draft{Topics: []string{"blog/b"}, Data: []byte(`{"title":"cat"}`), Tags: []string{"kitten"}})
	if d := s.next(); !strings.Contains(string(d.body), "cat") || strings.Contains(string(d.body), "dog") {
		t.Fatalf("filtered delivery: %s", d.body)
	}
}

// URLs of this hub that name no single topic are refused with the reason,
// and so is a filter given twice.
func TestSubscribeToTopicURLsRefused(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	base := e.srv.URL
	for _, tc := range []struct{ topic, filter, want string }{
		{base + "/events?topic=a&topic=b", "", "names 2 topics"},
		{base + "/events?topic=a/*", "", "pattern"},
		{base + "/topics/a?format=xml", "", "format"},
		{base + "/topics/a?near=x", "", "near"},
		{base + "/topics/a?tag=k", `{"tags":{"any":["j"]}}`, "give one"},
	} {
		v := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {tc.topic}, "hub.callback": {"http://127.0.0.1:9999/cb"}}
		if tc.filter != "" {
			v.Set("hub.filter", tc.filter)
		}
		if code, body := e.post(v); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("subscribe to %s (filter %q): %d %q, want 400 about %q", tc.topic, tc.filter, code, body, tc.want)
		}
	}
}

// A subscription stored before its topic URL was mapped (its log topic was
// the URL itself, which nothing publishes to) reads the topic from its next
// renewal on.
func TestRenewalMapsAnOldTopicURL(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil).start()
	s := newSubscriber(t)
	topic, cb := e.srv.URL+"/topics/blog/old?format=rss", s.url("/cb")
	old := websub.Subscription{ID: websub.SubscriptionID(topic, cb), Topic: topic, Callback: cb, LogTopic: topic,
		HubURL: e.srv.URL + "/", State: websub.StateActive, LeaseSeconds: 3600, Expires: e.clock.Now().Add(time.Hour)}
	if err := e.records.Put(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if err := e.subscribe(topic, cb, nil); err != nil {
		t.Fatal(err)
	}
	got, _, _ := e.records.Get(context.Background(), old.ID)
	if got.LogTopic != "blog/old" || got.Format != "rss" {
		t.Fatalf("renewed record reads %q as %q, want blog/old as rss", got.LogTopic, got.Format)
	}
	e.publish(event.Draft{Topics: []string{"blog/old"}, Data: []byte(`{"title":"renewed"}`)})
	if d := s.next(); !strings.Contains(string(d.body), "renewed") || !strings.HasPrefix(d.header.Get("Content-Type"), "application/rss+xml") {
		t.Fatalf("delivery after renewal: %s %s", d.header.Get("Content-Type"), d.body)
	}
}
