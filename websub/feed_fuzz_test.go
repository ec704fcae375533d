package websub

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
)

// FuzzFeedEntries feeds arbitrary bodies to PublishFeed: it never panics,
// and publishing a body that published fine once publishes nothing the
// second time.
func FuzzFeedEntries(f *testing.F) {
	for _, s := range []string{
		`<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>1</id><title>a</title><updated>2024-01-01T00:00:00Z</updated></entry><entry><id>2</id><updated>2024-01-02T00:00:00Z</updated></entry></feed>`,
		`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><updated>2024-01-01T00:00:00Z</updated></entry><entry><id>1</id><updated>2024-01-03T00:00:00Z</updated></entry></feed>`,
		`<rss version="2.0"><channel><title>r</title><item><guid>g</guid><title>x</title></item><item><link>http://x/</link></item><item><description>d</description></item></channel></rss>`,
		`{"version":"https://jsonfeed.org/version/1.1","title":"j","items":[{"id":"1","content_text":"a"},{"id":"2","url":"http://x/2","date_modified":"2024-01-01T00:00:00Z"}]}`,
		`<rss><channel><item></item></channel></rss>`,
		`not a feed`,
		``,
	} {
		f.Add([]byte(s))
	}
	b := broker.New()
	st, err := embedded.Open(filepath.Join(f.TempDir(), "log"), store.Config{OnCommit: b.Publish})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	h := hub.New(st, b, hub.Options{})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		topic := "fuzz/" + strconv.FormatInt(n.Add(1), 10)
		if _, err := PublishFeed(ctx, h, topic, "", body); err != nil {
			return // not a feed, or entries the log refuses: fine, as long as nothing panicked
		}
		again, err := PublishFeed(ctx, h, topic, "", body)
		if err != nil || again != 0 {
			t.Fatalf("second publish of the same body: %d events, err %v", again, err)
		}
	})
}
