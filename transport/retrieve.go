package transport

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/feed"
	"github.com/hubbub/hubbub/hub"
)

// CursorHeader carries the cursor after a retrieve's events, whatever the
// body's format (Atom and RSS have no place for it).
const CursorHeader = "Hubbub-Cursor"

// retrieve answers at once with stored events: the newest count (default
// 10), or with after= the oldest count after the cursor, or with before=
// the newest count before it; newest last. JSON by default, Atom or RSS by
// format= or Accept.
func (h *Handlers) retrieve(w http.ResponseWriter, r *http.Request, q query) {
	for _, t := range q.topics {
		if event.IsPattern(t) {
			httpError(w, http.StatusBadRequest, "patterns are for live subscriptions (SSE, wait=poll, wait=stream); retrieve names topics")
			return
		}
	}
	res, err := h.hub.Retrieve(r.Context(), hub.RetrieveRequest{
		Topics: q.topics, Cursor: q.cursor, After: q.hasCursor, Before: q.before, Count: q.count,
		Filter: q.filter, Fields: q.fields,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.obs.Delivered(NameRetrieve, len(res.Events))
	cursor := res.Cursor.Encode(q.single)
	w.Header().Set(CursorHeader, cursor)

	format := q.format
	if format == "" {
		switch {
		case acceptHas(r, "application/atom+xml"):
			format = "atom"
		case acceptHas(r, "application/rss+xml"):
			format = "rss"
		}
	}
	if format == "atom" || format == "rss" {
		h.writeFeed(w, r, q, format, res.Events)
		return
	}
	resp := eventsResponse{Cursor: cursor, Events: make([]json.RawMessage, len(res.Events))}
	for i, e := range res.Events {
		resp.Events[i] = event.NewItem(e).JSON()
	}
	for i := range res.Resets {
		resp.addReset(&res.Resets[i])
	}
	resp.finish()
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handlers) writeFeed(w http.ResponseWriter, r *http.Request, q query, format string, events []*event.Event) {
	base := h.baseURL(r)
	m := feed.Meta{
		Title:   strings.Join(q.topics, ", "),
		Topic:   strings.Join(q.topics, " "),
		SelfURL: base + r.URL.RequestURI(),
		HubURL:  base + "/hub",
	}
	var buf bytes.Buffer
	var err error
	ct := feed.AtomType
	if format == "rss" {
		ct = feed.RSSType
		err = feed.WriteRSS(&buf, m, events)
	} else {
		err = feed.WriteAtom(&buf, m, events)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// baseURL is the hub's external URL: --public-url, else from the request.
func (h *Handlers) baseURL(r *http.Request) string {
	if h.opts.PublicURL != "" {
		return strings.TrimRight(h.opts.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func appendJSON(b []byte, v any) []byte {
	js, _ := json.Marshal(v)
	return append(b, js...)
}
