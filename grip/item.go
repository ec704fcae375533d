package grip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hubbub/hubbub/event"
)

// How a GRIP item is stored: as one event in its channel's topic (a GRIP
// channel is a hubbub topic), of type ItemType, with ContentType
// ItemContentType and as Data the item's JSON without its channel:
//
//	{"id":"…","prev-id":"…","formats":{"http-response":{…},"http-stream":{…},"ws-message":{…}}}
//
// So an item is in the topic's log like any event: native subscribers
// (SSE, WebSocket, long-poll, webhooks) see it as JSON data of that
// content type, and held GRIP connections get the format of their kind.
//
// Any other event reaches GRIP connections too, its data as the body of
// every format (see FormatsOf): an http-response of code 200 with the
// event's content type (application/json for JSON data) and the data as
// body; an http-stream with the data as content, nothing added; a
// ws-message with the data as content, a text frame for JSON and text
// payloads and a binary one otherwise.
const (
	ItemContentType = "application/vnd.hubbub.grip-item+json"
	ItemType        = "grip"
)

// Limits of a GRIP item.
const (
	MaxItemsPerPublish = 1000
	MaxIDLen           = 256
	maxHeaders         = 100
)

// Item is one GRIP publish item (Pushpin's publishing format).
type Item struct {
	Channel string  `json:"channel"`
	ID      string  `json:"id,omitempty"`
	PrevID  string  `json:"prev-id,omitempty"`
	Formats Formats `json:"formats"`
}

// Formats are an item's renderings, one per kind of held connection.
type Formats struct {
	HTTPResponse *HTTPResponse `json:"http-response,omitempty"`
	HTTPStream   *HTTPStream   `json:"http-stream,omitempty"`
	WSMessage    *WSMessage    `json:"ws-message,omitempty"`
}

// HTTPResponse is the http-response format: the whole answer to a held
// (long-poll) request. Code 0 means 200. Body and BodyBin are exclusive.
type HTTPResponse struct {
	Code    int     `json:"code,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Headers Headers `json:"headers,omitempty"`
	Body    *string `json:"body,omitempty"`
	BodyBin []byte  `json:"body-bin,omitempty"`
}

// HTTPStream is the http-stream format: content appended to held streams,
// or Action "close" to end them. Content and ContentBin are exclusive.
type HTTPStream struct {
	Content    *string `json:"content,omitempty"`
	ContentBin []byte  `json:"content-bin,omitempty"`
	Action     string  `json:"action,omitempty"`
}

// WSMessage is the ws-message format: a message to WebSocket connections
// subscribed to the channel (Content: a text frame, ContentBin: binary),
// or Action "close" with Code and Reason.
type WSMessage struct {
	Content    *string `json:"content,omitempty"`
	ContentBin []byte  `json:"content-bin,omitempty"`
	Action     string  `json:"action,omitempty"`
	Code       int     `json:"code,omitempty"`
	Reason     string  `json:"reason,omitempty"`
}

// Actions of http-stream and ws-message.
const (
	ActionSend  = "send"
	ActionClose = "close"
)

// Headers are response headers, in order. They decode from a JSON object
// ({"Name":"value"}) or an array of pairs ([["Name","value"]]), as
// Pushpin accepts both, and encode as an array of pairs.
type Headers [][2]string

// UnmarshalJSON accepts an object or an array of [name, value] pairs.
func (h *Headers) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return err
		}
		var out Headers
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			var v string
			if err := dec.Decode(&v); err != nil {
				return errors.New("header values must be strings")
			}
			out = append(out, [2]string{k.(string), v})
		}
		*h = out
		return nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(b, &pairs); err != nil {
		return errors.New("headers must be an object or an array of [name, value] pairs")
	}
	*h = pairs
	return nil
}

// Publish is the body of POST /publish/.
type Publish struct {
	Items []Item `json:"items"`
}

// ParsePublish decodes and validates a POST /publish/ body. Errors are
// event.ValidationErrors, safe to show the client.
func ParsePublish(b []byte) ([]Item, error) {
	if !utf8.Valid(b) {
		return nil, event.Invalid("the body is not UTF-8")
	}
	var p Publish
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, event.Invalid("the body is not a GRIP publish ({\"items\":[…]}): %v", err)
	}
	if dec.More() {
		return nil, event.Invalid("the body has data after its JSON object")
	}
	switch {
	case len(p.Items) == 0:
		return nil, event.Invalid("no items to publish")
	case len(p.Items) > MaxItemsPerPublish:
		return nil, event.Invalid("more than %d items", MaxItemsPerPublish)
	}
	for i := range p.Items {
		if err := p.Items[i].Validate(); err != nil {
			if len(p.Items) > 1 {
				return nil, event.Invalid("item %d: %v", i, err)
			}
			return nil, err
		}
	}
	return p.Items, nil
}

// Validate checks an item: a publishable channel, short ids without
// control characters, at least one format, each well formed.
func (it *Item) Validate() error {
	if err := event.ValidateTopic(it.Channel); err != nil {
		return event.Invalid("channel: %v", err)
	}
	if event.IsReserved(it.Channel) {
		return event.Invalid("channel %q is reserved", it.Channel)
	}
	for _, id := range []string{it.ID, it.PrevID} {
		if len(id) > MaxIDLen {
			return event.Invalid("an id is longer than %d bytes", MaxIDLen)
		}
		if err := event.ValidateKey(id); err != nil {
			return event.Invalid("id: %v", err)
		}
	}
	f := it.Formats
	if f.HTTPResponse == nil && f.HTTPStream == nil && f.WSMessage == nil {
		return event.Invalid("no formats: give http-response, http-stream or ws-message")
	}
	if r := f.HTTPResponse; r != nil {
		if r.Code != 0 && (r.Code < 200 || r.Code > 599) {
			return event.Invalid("http-response code %d is not 200..599", r.Code)
		}
		if strings.ContainsAny(r.Reason, "\r\n") {
			return event.Invalid("http-response reason contains a line break")
		}
		if r.Body != nil && r.BodyBin != nil {
			return event.Invalid("http-response has both body and body-bin")
		}
		if len(r.Headers) > maxHeaders {
			return event.Invalid("http-response has more than %d headers", maxHeaders)
		}
		for _, kv := range r.Headers {
			if !validHeaderName(kv[0]) || strings.ContainsAny(kv[1], "\r\n\x00") {
				return event.Invalid("http-response header %q is not a valid header", kv[0])
			}
		}
	}
	if s := f.HTTPStream; s != nil {
		if s.Content != nil && s.ContentBin != nil {
			return event.Invalid("http-stream has both content and content-bin")
		}
		if s.Action != "" && s.Action != ActionSend && s.Action != ActionClose {
			return event.Invalid("http-stream action %q is not send or close", s.Action)
		}
	}
	if m := f.WSMessage; m != nil {
		if m.Content != nil && m.ContentBin != nil {
			return event.Invalid("ws-message has both content and content-bin")
		}
		if m.Action != "" && m.Action != ActionSend && m.Action != ActionClose {
			return event.Invalid("ws-message action %q is not send or close", m.Action)
		}
		if m.Code != 0 && (m.Code < 1000 || m.Code > 4999) {
			return event.Invalid("ws-message close code %d is not 1000..4999", m.Code)
		}
		if len(m.Reason) > 123 {
			return event.Invalid("ws-message close reason is longer than 123 bytes")
		}
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// storedItem is an item as stored: without its channel (the topic).
type storedItem struct {
	ID      string  `json:"id,omitempty"`
	PrevID  string  `json:"prev-id,omitempty"`
	Formats Formats `json:"formats"`
}

// Draft is the event that stores a validated item in its channel's topic.
func (it *Item) Draft() (event.Draft, error) {
	b, err := json.Marshal(storedItem{ID: it.ID, PrevID: it.PrevID, Formats: it.Formats})
	if err != nil {
		return event.Draft{}, fmt.Errorf("encode item: %w", err)
	}
	return event.Draft{Topics: []string{it.Channel}, Type: ItemType, ContentType: ItemContentType, Data: b}, nil
}

// Rendered is what a stored event means to GRIP connections: the item's
// id (the event's own id for an event that is not an item) and its
// formats. A nil format means "nothing for this kind of connection".
type Rendered struct {
	ID      string
	PrevID  string
	Formats Formats
}

// FormatsOf renders a stored event for GRIP connections (see the comment
// on ItemContentType). An item whose stored data does not decode (it was
// validated before storing, so only a foreign writer could cause that)
// renders as an ordinary event.
func FormatsOf(e *event.Event) Rendered {
	if e.ContentType == ItemContentType {
		var s storedItem
		if err := json.Unmarshal(e.Data, &s); err == nil {
			id := s.ID
			if id == "" {
				id = e.Position().String()
			}
			return Rendered{ID: id, PrevID: s.PrevID, Formats: s.Formats}
		}
	}
	body := string(e.Data)
	ct := e.ContentType
	if ct == "" {
		ct = "application/json"
	}
	r := Rendered{ID: e.Position().String()}
	r.Formats.HTTPResponse = &HTTPResponse{Code: http.StatusOK, Headers: Headers{{"Content-Type", ct}}, Body: &body}
	r.Formats.HTTPStream = &HTTPStream{Content: &body}
	if e.Kind() == event.PayloadBinary {
		r.Formats.WSMessage = &WSMessage{ContentBin: e.Data}
	} else {
		r.Formats.WSMessage = &WSMessage{Content: &body}
	}
	return r
}

// renderCache shares FormatsOf among the connections an event reaches:
// the broker hands every subscriber the same *event.Item, so the last
// renderCacheSize items are remembered by pointer. Safe for concurrent
// use.
type renderCache struct {
	mu   sync.Mutex
	m    map[*event.Item]*Rendered
	ring [renderCacheSize]*event.Item
	next int
}

const renderCacheSize = 1024

// get returns the rendering of it, computing it at most once while it
// stays among the last renderCacheSize items asked for. The result must
// not be modified.
func (c *renderCache) get(it *event.Item) *Rendered {
	c.mu.Lock()
	if r, ok := c.m[it]; ok {
		c.mu.Unlock()
		return r
	}
	c.mu.Unlock()
	r := FormatsOf(it.Event)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prior, ok := c.m[it]; ok { // computed meanwhile by another connection
		return prior
	}
	if c.m == nil {
		c.m = make(map[*event.Item]*Rendered, renderCacheSize)
	}
	if old := c.ring[c.next]; old != nil {
		delete(c.m, old)
	}
	c.ring[c.next] = it
	c.next = (c.next + 1) % renderCacheSize
	c.m[it] = &r
	return &r
}
