package storetest

import (
	"testing"

	"github.com/hubbub/hubbub/store"
)

// testDocuments checks store.DocumentLister, for backends that have it:
// key order, paging by key, tombstones, latest version only, other topics
// apart.
func (s *suite) testDocuments(t *testing.T) {
	l := s.open(t, t.TempDir(), store.Config{})
	dl, ok := l.(store.DocumentLister)
	if !ok {
		t.Skip("backend does not implement store.DocumentLister")
	}
	ctx := ctxT(t)
	keyed := func(topic, key, typ, data string) {
		d := draft(data, topic)
		d.Key, d.Type = key, typ
		appendOK(t, l, d)
	}
	keyed("docs", "b", "create", "b1")
	keyed("docs", "a", "create", "a1")
	keyed("docs", "c", "create", "c1")
	keyed("docs", "b", "update", "b2")
	keyed("docs", "c", "delete", "")
	keyed("docs/other", "a", "create", "x")
	appendOK(t, l, draft("no key", "docs"))

	all, err := dl.Documents(ctx, "docs", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ key, typ, data string }{{"a", "create", "a1"}, {"b", "update", "b2"}, {"c", "delete", ""}}
	if len(all) != len(want) {
		t.Fatalf("got %d documents, want %d", len(all), len(want))
	}
	for i, w := range want {
		e := all[i]
		if e.Key != w.key || e.Type != w.typ || string(e.Data) != w.data || e.Topic != "docs" {
			t.Errorf("document %d = %s %s %q (topic %s), want %s %s %q", i, e.Key, e.Type, e.Data, e.Topic, w.key, w.typ, w.data)
		}
	}
	page, err := dl.Documents(ctx, "docs", "a", 1)
	if err != nil || len(page) != 1 || page[0].Key != "b" {
		t.Fatalf("page after a: %v %v, want [b]", page, err)
	}
	if none, err := dl.Documents(ctx, "nope", "", 10); err != nil || len(none) != 0 {
		t.Fatalf("unknown topic: %v %v", none, err)
	}
}
