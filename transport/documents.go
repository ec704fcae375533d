package transport

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
)

// documentsResponse is the answer of GET /documents.
type documentsResponse struct {
	Documents []json.RawMessage `json:"documents"`
	Missing   []string          `json:"missing,omitempty"`
	Next      string            `json:"next,omitempty"`
}

// Documents serves GET /documents?topic=T: the current state of the topic's
// documents (the latest event of each key; a deleted document shows as its
// "delete" event). key= (repeatable) names the documents wanted; without
// it, every document in key order, limit= at a time (default 100, at most
// 1000), continuing with after=NEXT.
func (h *Handlers) Documents(w http.ResponseWriter, r *http.Request) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpError(w, http.StatusBadRequest, "query string: "+err.Error())
		return
	}
	if len(v["topic"]) != 1 {
		httpError(w, http.StatusBadRequest, "name exactly one topic: ?topic=NAME")
		return
	}
	if _, ok := h.authorizeRead(w, r, v["topic"]); !ok {
		return
	}
	req := hub.DocumentsRequest{Topic: v.Get("topic"), Keys: v["key"], After: v.Get("after")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			httpError(w, http.StatusBadRequest, "limit must be a positive whole number")
			return
		}
		req.Limit = n
	}
	res, err := h.hub.Documents(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := documentsResponse{Documents: make([]json.RawMessage, len(res.Documents)), Missing: res.Missing, Next: res.Next}
	for i, e := range res.Documents {
		out.Documents[i] = event.NewItem(e).JSON()
	}
	writeJSON(w, http.StatusOK, out)
}
