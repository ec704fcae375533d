package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// ErrNoDocuments is returned when the store cannot list documents.
var ErrNoDocuments = errors.New("this store cannot list documents")

// MaxDocuments bounds one Documents call.
const MaxDocuments = 1000

// DocumentsRequest asks for the current state of a topic's documents (the
// latest event of each key): the listed Keys, or, with no keys, every key
// after After in key order, at most Limit.
type DocumentsRequest struct {
	Topic string
	Keys  []string
	After string
	Limit int
}

// DocumentsResult holds the documents found (a deleted one as its
// "delete" tombstone), the requested keys never seen, and, when listing,
// the key to continue after ("" when the list is complete).
type DocumentsResult struct {
	Documents []*event.Event
	Missing   []string
	Next      string
}

// Documents reads the latest-by-key view.
func (h *Hub) Documents(ctx context.Context, req DocumentsRequest) (DocumentsResult, error) {
	if err := event.ValidateTopic(req.Topic); err != nil {
		return DocumentsResult{}, err
	}
	var out DocumentsResult
	if len(req.Keys) > 0 {
		if len(req.Keys) > MaxDocuments {
			return out, event.Invalid("more than %d keys", MaxDocuments)
		}
		for _, k := range req.Keys {
			e, ok, err := h.log.Latest(ctx, req.Topic, k)
			if err != nil {
				return DocumentsResult{}, fmt.Errorf("latest %q: %w", k, err)
			}
			if ok {
				out.Documents = append(out.Documents, e)
			} else {
				out.Missing = append(out.Missing, k)
			}
		}
		return out, nil
	}
	dl, ok := h.log.(store.DocumentLister)
	if !ok {
		return out, ErrNoDocuments
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 100
	}
	if limit > MaxDocuments {
		return out, event.Invalid("limit is more than %d", MaxDocuments)
	}
	docs, err := dl.Documents(ctx, req.Topic, req.After, limit+1)
	if err != nil {
		return out, fmt.Errorf("documents of %q: %w", req.Topic, err)
	}
	if len(docs) > limit {
		docs = docs[:limit]
		out.Next = docs[limit-1].Key
	}
	out.Documents = docs
	return out, nil
}
