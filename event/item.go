package event

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// Item is a stored event on its way to subscribers. Its wire encodings are
// computed at most once, on first use, and the same bytes are shared by
// every subscriber: fan-out never encodes per subscriber. The returned
// slices must not be modified.
type Item struct {
	*Event

	jsonOnce sync.Once
	json     []byte
	sseOnce  sync.Once
	sse      []byte

	variantsOnce sync.Once
	variants     *itemVariants

	compact [4]atomic.Pointer[[]byte] // CompactJSON, by flags
}

// NewItem wraps a stored event.
func NewItem(e *Event) *Item { return &Item{Event: e} }

// JSON returns the event's wire JSON (see Wire), without a trailing newline.
func (it *Item) JSON() []byte {
	it.jsonOnce.Do(func() {
		b, err := json.Marshal(it.ToWire())
		if err != nil { // unreachable: Wire holds only marshalable values
			b = []byte(`{"error":"unencodable event"}`)
		}
		it.json = b
	})
	return it.json
}

// Flags of CompactJSON: what the compact shape keeps that a frame around
// it may not say.
const (
	// CompactTopic keeps "topic": the subscription has several topics.
	CompactTopic = 1 << iota
	// CompactID keeps "id": no SSE id: line carries the event's position.
	CompactID
)

// compactWire is Wire without what a compact subscriber does without.
type compactWire struct {
	ID          string          `json:"id,omitempty"`
	Topic       string          `json:"topic,omitempty"`
	Type        string          `json:"type,omitempty"`
	Key         string          `json:"key,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Geo         *Geo            `json:"geo,omitempty"`
	ClientID    string          `json:"client_id,omitempty"`
	ContentType string          `json:"content_type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  []byte          `json:"data_base64,omitempty"`
}

// CompactJSON returns the event's compact wire JSON, the shape a
// subscriber asks for with compact=1: the wire JSON without "seq" and
// "time", with "type" only when it is not "message", and "id" and "topic"
// only when flags (CompactID, CompactTopic) keep them. The other fields
// are as in JSON. Each shape is built at most once per item (two callers
// racing may both build it; either result is kept) and shared; the slice
// must not be modified.
func (it *Item) CompactJSON(flags int) []byte {
	slot := &it.compact[flags&3]
	if b := slot.Load(); b != nil {
		return *b
	}
	w := it.ToWire()
	c := compactWire{Key: w.Key, Tags: w.Tags, Geo: w.Geo, ClientID: w.ClientID, ContentType: w.ContentType, Data: w.Data, DataBase64: w.DataBase64}
	if flags&CompactID != 0 {
		c.ID = w.ID
	}
	if flags&CompactTopic != 0 {
		c.Topic = w.Topic
	}
	if w.Type != DefaultType {
		c.Type = w.Type
	}
	b, err := json.Marshal(c)
	if err != nil { // unreachable: as in JSON
		b = []byte(`{"error":"unencodable event"}`)
	}
	slot.CompareAndSwap(nil, &b)
	return *slot.Load()
}

// SSE returns the complete Server-Sent Events frame for this event as seen
// by a one-topic subscriber: "id:" the event's own cursor, "event:" when the
// type is not "message", "data:" the JSON, and the blank line.
func (it *Item) SSE() []byte {
	it.sseOnce.Do(func() {
		it.sse = AppendSSE(nil, it, "")
	})
	return it.sse
}

// AppendSSE appends the SSE frame for it to b, with id as the frame's id
// (the item's own position when id is ""). id is a string so that a
// subscription's cursor goes in without a copy per frame.
func AppendSSE(b []byte, it *Item, id string) []byte {
	return appendSSE(b, it, id, it.JSON())
}

// AppendSSECompact is AppendSSE with CompactJSON(flags) as the data.
func AppendSSECompact(b []byte, it *Item, id string, flags int) []byte {
	return appendSSE(b, it, id, it.CompactJSON(flags))
}

func appendSSE(b []byte, it *Item, id string, js []byte) []byte {
	b = append(b, "id: "...)
	if id == "" {
		b = it.Position().AppendTo(b)
	} else {
		b = append(b, id...)
	}
	b = append(b, '\n')
	if it.Type != DefaultType {
		b = append(b, "event: "...)
		b = append(b, it.Type...)
		b = append(b, '\n')
	}
	// Wire JSON from encoding/json never holds a raw newline, so one data
	// line is always enough.
	b = append(b, "data: "...)
	b = append(b, js...)
	return append(b, '\n', '\n')
}

// derived is one cached variant of an item (a projection of its data).
type derived struct {
	key  string
	item *Item
}

// itemVariants guards an item's derived variants. It is separate from Item
// so that an Item stays cheap when nobody projects.
type itemVariants struct {
	mu   sync.Mutex
	list []derived
}

// Derive returns the variant of this item named key, building it with
// build the first time any subscriber asks for it; later callers with the
// same key share it, with its encodings. build gets a copy of the event to
// change (Data, typically) and must not keep it.
func (it *Item) Derive(key string, build func(e *Event) *Event) *Item {
	it.variantsOnce.Do(func() { it.variants = &itemVariants{} })
	v := it.variants
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, d := range v.list {
		if d.key == key {
			return d.item
		}
	}
	cp := *it.Event
	d := derived{key: key, item: NewItem(build(&cp))}
	v.list = append(v.list, d)
	return d.item
}
