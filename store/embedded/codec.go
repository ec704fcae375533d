package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/binrec"
	"github.com/hubbub/hubbub/store"
)

// Key prefixes. See the package comment for the full layout.
const (
	prefixEvent  = 'e'
	prefixHead   = 'h'
	prefixLatest = 'k'
	prefixIdem   = 'i'
	// prefixActivity: the activity index (activity.go).
	prefixActivity = 'a'
)

// Record format versions, the first byte of every value, so the encoding can
// change later without a migration of old records.
const (
	eventV1  = 1
	headV1   = 1
	latestV1 = 1
)

const (
	flagGeo      = 1 << 0
	flagCoalesce = 1 << 1 // a uvarint of milliseconds follows the geo
)

var errCorrupt = errors.New("embedded: corrupt record")

// topicKey builds prefix + topic length (2 bytes, big-endian) + topic, with
// room for extra bytes after it. The length prefix keeps one topic's keys
// contiguous and apart from any topic it is a prefix of.
func topicKey(prefix byte, topic string, extra int) []byte {
	k := make([]byte, 0, 3+len(topic)+extra)
	k = append(k, prefix)
	k = binary.BigEndian.AppendUint16(k, uint16(len(topic)))
	return append(k, topic...)
}

// eventKey is e/<topic>/<seq 8 bytes big-endian>: a seq range of one topic is
// a key range.
func eventKey(topic string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(topicKey(prefixEvent, topic, 8), seq)
}

// headKey is h<topic>.
func headKey(topic string) []byte {
	k := make([]byte, 0, 1+len(topic))
	return append(append(k, prefixHead), topic...)
}

// latestKey is k/<topic>/<key>.
func latestKey(topic, key string) []byte {
	return append(topicKey(prefixLatest, topic, len(key)), key...)
}

// idemKey is i/<topic>/<idempotency key>.
func idemKey(topic, key string) []byte {
	return append(topicKey(prefixIdem, topic, len(key)), key...)
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// encodeHead: version, uvarint first, uvarint last, epoch (rest).
func encodeHead(h store.Head) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(h.Epoch))
	b = append(b, headV1)
	b = binary.AppendUvarint(b, h.First)
	b = binary.AppendUvarint(b, h.Last)
	return append(b, h.Epoch...)
}

func decodeHead(b []byte) (store.Head, error) {
	if len(b) < 1 || b[0] != headV1 {
		return store.Head{}, fmt.Errorf("head record: %w", errCorrupt)
	}
	b = b[1:]
	first, n := binary.Uvarint(b)
	if n <= 0 {
		return store.Head{}, fmt.Errorf("head record: %w", errCorrupt)
	}
	b = b[n:]
	last, n := binary.Uvarint(b)
	if n <= 0 {
		return store.Head{}, fmt.Errorf("head record: %w", errCorrupt)
	}
	return store.Head{Epoch: string(b[n:]), First: first, Last: last}, nil
}

// appendEvent encodes the stored fields of an event that are not implied by
// its key (topic, seq) or its topic's head (epoch):
//
//	version(1) time(8, unix nanoseconds big-endian) flags(1)
//	type key content-type idempotency-key   (each uvarint length + bytes)
//	uvarint tag count, each tag uvarint length + bytes
//	[lat lon as float64 bits, 16 bytes, when flags has flagGeo]
//	data (the rest)
//
// The time sits at a fixed offset so age trimming reads it without decoding.
func appendEvent(b []byte, e *event.Event) []byte {
	b = append(b, eventV1)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	var flags byte
	if e.Geo != nil {
		flags |= flagGeo
	}
	if e.Coalesce > 0 {
		flags |= flagCoalesce
	}
	b = append(b, flags)
	b = binrec.AppendString(b, e.Type)
	b = binrec.AppendString(b, e.Key)
	b = binrec.AppendString(b, e.ContentType)
	b = binrec.AppendString(b, e.IdempotencyKey)
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = binrec.AppendString(b, t)
	}
	if e.Geo != nil {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.Geo.Lat))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.Geo.Lon))
	}
	if e.Coalesce > 0 {
		b = binary.AppendUvarint(b, uint64(e.Coalesce.Milliseconds()))
	}
	return append(b, e.Data...)
}

func eventSize(e *event.Event) int {
	n := 1 + 8 + 1 + 16 + 5*binary.MaxVarintLen16 + len(e.Type) + len(e.Key) +
		len(e.ContentType) + len(e.IdempotencyKey) + len(e.Data)
	for _, t := range e.Tags {
		n += binary.MaxVarintLen16 + len(t)
	}
	return n
}

// eventTime reads the time of an encoded event without decoding the rest.
func eventTime(b []byte) (int64, bool) {
	if len(b) < 9 || b[0] != eventV1 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), true
}

// decodeEvent decodes b, which the returned event keeps (Data aliases it):
// the caller passes a buffer it owns.
func decodeEvent(b []byte, e *event.Event) error {
	t, ok := eventTime(b)
	if !ok || len(b) < 10 {
		return fmt.Errorf("event record: %w", errCorrupt)
	}
	// Whole microseconds, as stored since times were truncated at
	// append; older records may hold nanoseconds, which the wire never
	// showed.
	e.Time = time.UnixMicro(t / 1000).UTC()
	flags := b[9]
	d := binrec.Decoder{B: b[10:]}
	e.Type = d.String()
	e.Key = d.String()
	e.ContentType = d.String()
	e.IdempotencyKey = d.String()
	if n := d.Uvarint(); n > 0 && d.Err == nil {
		if n > uint64(len(d.B)) {
			return fmt.Errorf("event record: %w", errCorrupt)
		}
		e.Tags = make([]string, n)
		for i := range e.Tags {
			e.Tags[i] = d.String()
		}
	}
	if flags&flagGeo != 0 {
		if len(d.B) < 16 {
			return fmt.Errorf("event record: %w", errCorrupt)
		}
		e.Geo = &event.Geo{
			Lat: math.Float64frombits(binary.BigEndian.Uint64(d.B[0:8])),
			Lon: math.Float64frombits(binary.BigEndian.Uint64(d.B[8:16])),
		}
		d.B = d.B[16:]
	}
	if flags&flagCoalesce != 0 {
		e.Coalesce = time.Duration(d.Uvarint()) * time.Millisecond
	}
	if d.Err != nil {
		return fmt.Errorf("event record: %w", d.Err)
	}
	if len(d.B) > 0 {
		e.Data = d.B[:len(d.B):len(d.B)]
	}
	return nil
}

// appendLatest encodes a latest-by-key entry: version, uvarint seq, epoch
// (uvarint length + bytes), then the event as appendEvent writes it. The
// epoch is kept so Latest needs no head lookup.
func appendLatest(b []byte, e *event.Event) []byte {
	b = append(b, latestV1)
	b = binary.AppendUvarint(b, e.Seq)
	b = binrec.AppendString(b, e.Epoch)
	return appendEvent(b, e)
}

// splitLatest returns the seq, epoch and encoded event of a latest entry.
func splitLatest(b []byte) (seq uint64, epoch string, ev []byte, err error) {
	if len(b) < 1 || b[0] != latestV1 {
		return 0, "", nil, fmt.Errorf("latest record: %w", errCorrupt)
	}
	d := binrec.Decoder{B: b[1:]}
	seq = d.Uvarint()
	epoch = d.String()
	if d.Err != nil {
		return 0, "", nil, fmt.Errorf("latest record: %w", d.Err)
	}
	return seq, epoch, d.B, nil
}

// encodeIdem encodes an idempotency record: time (unix nanoseconds) and seq,
// 8 bytes big-endian each.
func encodeIdem(t time.Time, seq uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(b, seq)
}

func decodeIdem(b []byte) (t int64, seq uint64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("idempotency record: %w", errCorrupt)
	}
	return int64(binary.BigEndian.Uint64(b[:8])), binary.BigEndian.Uint64(b[8:]), nil
}
