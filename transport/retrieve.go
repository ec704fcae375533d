package transport

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/feed"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/topicurl"
)

// CursorHeader carries the cursor after a retrieve's events, whatever the
// body's format (Atom and RSS have no place for it).
const CursorHeader = "Hubbub-Cursor"

// retrieve answers at once with stored events: the newest count (default
// 10), or with after= the oldest count after the cursor, or with before=
// the newest count before it; newest last. JSON by default, Atom or RSS by
// format= or Accept, with a Link header naming the answer's canonical URL
// (rel="self") and, for one topic, the WebSub hub (rel="hub"). The answer holds at most MaxResponseBytes (but always
// one event): fewer events than count, with the cursor to page on from.
func (h *Handlers) retrieve(w http.ResponseWriter, r *http.Request, q query) {
	for _, t := range q.topics {
		if event.IsPattern(t) {
			httpError(w, http.StatusBadRequest, "patterns are for live subscriptions (SSE, wait=poll, wait=stream); retrieve names topics")
			return
		}
	}
	format := q.format
	if format == "" {
		switch {
		case acceptHas(r, "application/atom+xml"):
			format = "atom"
		case acceptHas(r, "application/rss+xml"):
			format = "rss"
		}
	}
	isFeed := format == "atom" || format == "rss"
	self, hubURL := h.links(r, q, format)
	link := "<" + self + `>; rel="self"`
	if hubURL != "" {
		link = "<" + hubURL + `>; rel="hub", ` + link
	}
	w.Header().Set("Link", link)
	var m feed.Meta
	var size func(*event.Event) int
	var items map[*event.Event]*event.Item
	overhead := answerOverhead(q.topics)
	if isFeed {
		m = feed.Meta{Title: strings.Join(q.topics, ", "), Topic: strings.Join(q.topics, " "), SelfURL: self, HubURL: hubURL}
		var empty int
		size, empty = feedEntrySize(m, format)
		overhead = empty + 64
	} else {
		items = make(map[*event.Event]*event.Item)
		size = func(e *event.Event) int {
			it := items[e]
			if it == nil {
				it = event.NewItem(e)
				items[e] = it
			}
			return len(it.JSON()) + 1
		}
	}
	res, err := h.hub.Retrieve(r.Context(), hub.RetrieveRequest{
		Topics: q.topics, Cursor: q.cursor, After: q.hasCursor, Before: q.before, Count: q.count,
		Filter: q.filter, Fields: q.fields, Entries: !isFeed && wantsEntries(r, q),
		MaxBytes: max(1, h.opts.MaxResponseBytes-overhead), Size: size,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.obs.Delivered(NameRetrieve, len(res.Events))
	cursor := res.Cursor.Encode(q.single)
	w.Header().Set(CursorHeader, cursor)
	if isFeed {
		h.writeFeed(w, r, m, format, res.Events)
		return
	}
	resp := eventsResponse{Cursor: cursor, Events: make([]json.RawMessage, len(res.Events))}
	for i, e := range res.Events {
		it := items[e]
		if it == nil {
			it = event.NewItem(e)
		}
		resp.Events[i] = it.JSON()
	}
	for i := range res.Resets {
		resp.addReset(&res.Resets[i])
	}
	resp.finish()
	writeJSON(w, http.StatusOK, resp)
}

// answerOverhead bounds the bytes of an events answer other than its
// events: the braces, the cursor (a position per topic, base64 of JSON)
// and a reset per topic.
func answerOverhead(topics []string) int {
	n := 256
	for _, t := range topics {
		n += 4*len(t) + 160
	}
	return n
}

// links returns the rel="self" URL of a retrieve answer in format (the
// canonical one: see topicurl.Self) and the rel="hub" URL, "" unless the
// answer is of one topic a WebSub subscriber may subscribe to. Both go in
// the Link header, and in a feed's body too, so the two always agree, and
// subscribing to the self URL (whichever form of it) delivers the topic.
func (h *Handlers) links(r *http.Request, q query, format string) (self, hubURL string) {
	base := h.baseURL(r)
	self = topicurl.Self(base, q.topics, format, q.values)
	if q.single != "" && !event.IsReserved(q.single) {
		hubURL = topicurl.Hub(base)
	}
	return self, hubURL
}

// feedEntrySize returns the bytes one event adds to a feed of format (a
// one-entry feed less an empty one, with some room for the feed's time),
// and the bytes of the empty feed.
func feedEntrySize(m feed.Meta, format string) (size func(*event.Event) int, empty int) {
	write := feed.WriteAtom
	if format == "rss" {
		write = feed.WriteRSS
	}
	var buf bytes.Buffer
	_ = write(&buf, m, nil)
	empty = buf.Len()
	one := make([]*event.Event, 1)
	return func(e *event.Event) int {
		buf.Reset()
		one[0] = e
		if err := write(&buf, m, one); err != nil {
			return len(e.Data) + 1024 // unreachable: feeds write to memory
		}
		return buf.Len() - empty + 64
	}, empty
}

func (h *Handlers) writeFeed(w http.ResponseWriter, r *http.Request, m feed.Meta, format string, events []*event.Event) {
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
