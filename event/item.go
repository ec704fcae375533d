package event

import (
	"encoding/json"
	"sync"
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

// SSE returns the complete Server-Sent Events frame for this event as seen
// by a one-topic subscriber: "id:" the event's own cursor, "event:" when the
// type is not "message", "data:" the JSON, and the blank line.
func (it *Item) SSE() []byte {
	it.sseOnce.Do(func() {
		it.sse = AppendSSE(nil, it, nil)
	})
	return it.sse
}

// AppendSSE appends the SSE frame for it to b, with id as the frame's id
// (the item's own position when id is nil).
func AppendSSE(b []byte, it *Item, id []byte) []byte {
	js := it.JSON()
	b = append(b, "id: "...)
	if id == nil {
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
