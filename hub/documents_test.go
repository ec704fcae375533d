package hub_test

import (
	"context"
	"testing"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/store"
)

func TestDocuments(t *testing.T) {
	f := newHub(t, store.Retention{}, true, hub.Options{})
	ctx := context.Background()
	for _, d := range []event.Draft{
		{Topics: []string{"docs"}, Type: "create", Key: "a", Data: []byte(`1`)},
		{Topics: []string{"docs"}, Type: "create", Key: "b", Data: []byte(`1`)},
		{Topics: []string{"docs"}, Type: "update", Key: "a", Data: []byte(`2`)},
		{Topics: []string{"docs"}, Type: "create", Key: "c", Data: []byte(`1`)},
		{Topics: []string{"docs"}, Type: "delete", Key: "b"},
	} {
		if _, err := f.hub.Publish(ctx, []event.Draft{d}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.hub.Documents(ctx, hub.DocumentsRequest{Topic: "docs", Keys: []string{"a", "b", "zz"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Documents) != 2 || string(res.Documents[0].Data) != "2" || res.Documents[1].Type != "delete" ||
		len(res.Missing) != 1 || res.Missing[0] != "zz" {
		t.Fatalf("by key: %+v", res)
	}
	res, err = f.hub.Documents(ctx, hub.DocumentsRequest{Topic: "docs", Limit: 2})
	if err != nil || len(res.Documents) != 2 || res.Next != "b" {
		t.Fatalf("page 1: %v %+v", err, res)
	}
	res, err = f.hub.Documents(ctx, hub.DocumentsRequest{Topic: "docs", After: res.Next, Limit: 2})
	if err != nil || len(res.Documents) != 1 || res.Documents[0].Key != "c" || res.Next != "" {
		t.Fatalf("page 2: %v %+v", err, res)
	}
	if _, err := f.hub.Documents(ctx, hub.DocumentsRequest{Topic: "docs", Limit: hub.MaxDocuments + 1}); !event.IsValidation(err) {
		t.Fatalf("limit over max: %v", err)
	}
}
