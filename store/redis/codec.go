package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/binrec"
)

// bodyV1 is the first byte of every encoded body, so the encoding can change
// later without migrating what Redis holds.
const bodyV1 = 1

const (
	flagGeo      = 1 << 0
	flagCoalesce = 1 << 1 // a uvarint of milliseconds follows the geo
)

// MessagePrefix starts every message the store publishes; the version in it
// changes whenever the format does.
const MessagePrefix = "hubbub.v1\n"

var errCorrupt = errors.New("redis store: corrupt record")

// escapeTopic makes a topic safe inside a {hash tag}: '%', '{' and '}' are
// percent-encoded, so the tag ends at the first '}' and the topic is
// recoverable from any of its keys (no two topics share a key).
func escapeTopic(t string) string {
	if !strings.ContainsAny(t, "%{}") {
		return t
	}
	var b strings.Builder
	b.Grow(len(t) + 8)
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// appendBody encodes the fields of an event that come from its draft:
//
//	version(1) flags(1) [lat lon: float64 bits, 8 bytes big-endian each, if flagGeo]
//	[uvarint coalescing window in milliseconds, if flagCoalesce]
//	type key content-type idempotency-key    (each uvarint length + bytes)
//	uvarint tag count, then each tag (uvarint length + bytes)
//	data (the rest)
//
// Topic, epoch, seq and time are not in it: the stream entry's ID gives the
// seq, its "t" field the time, and the topic's meta the epoch.
func appendBody(b []byte, d *event.Draft) []byte {
	var flags byte
	if d.Geo != nil {
		flags |= flagGeo
	}
	if d.Coalesce > 0 {
		flags |= flagCoalesce
	}
	b = append(b, bodyV1, flags)
	if d.Geo != nil {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.Geo.Lat))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.Geo.Lon))
	}
	if d.Coalesce > 0 {
		b = binary.AppendUvarint(b, uint64(d.Coalesce.Milliseconds()))
	}
	typ := d.Type
	if typ == "" {
		typ = event.DefaultType
	}
	b = binrec.AppendString(b, typ)
	b = binrec.AppendString(b, d.Key)
	b = binrec.AppendString(b, d.ContentType)
	b = binrec.AppendString(b, d.IdempotencyKey)
	b = binary.AppendUvarint(b, uint64(len(d.Tags)))
	for _, t := range d.Tags {
		b = binrec.AppendString(b, t)
	}
	return append(b, d.Data...)
}

func bodySize(d *event.Draft) int {
	n := 2 + 16 + binary.MaxVarintLen64 + 5*binary.MaxVarintLen16 + len(d.Type) + len(event.DefaultType) + len(d.Key) +
		len(d.ContentType) + len(d.IdempotencyKey) + len(d.Data)
	for _, t := range d.Tags {
		n += binary.MaxVarintLen16 + len(t)
	}
	return n
}

// decodeBody fills e from an encoded body. e.Data aliases b.
func decodeBody(b []byte, e *event.Event) error {
	if len(b) < 2 || b[0] != bodyV1 {
		return fmt.Errorf("event body: %w", errCorrupt)
	}
	flags := b[1]
	b = b[2:]
	if flags&flagGeo != 0 {
		if len(b) < 16 {
			return fmt.Errorf("event body: %w", errCorrupt)
		}
		e.Geo = &event.Geo{
			Lat: math.Float64frombits(binary.BigEndian.Uint64(b[0:8])),
			Lon: math.Float64frombits(binary.BigEndian.Uint64(b[8:16])),
		}
		b = b[16:]
	}
	d := binrec.Decoder{B: b}
	if flags&flagCoalesce != 0 {
		e.Coalesce = time.Duration(d.Uvarint()) * time.Millisecond
	}
	e.Type = d.String()
	e.Key = d.String()
	e.ContentType = d.String()
	e.IdempotencyKey = d.String()
	if n := d.Uvarint(); n > 0 && d.Err == nil {
		if n > uint64(len(d.B)) {
			return fmt.Errorf("event body: %w", errCorrupt)
		}
		e.Tags = make([]string, n)
		for i := range e.Tags {
			e.Tags[i] = d.String()
		}
	}
	if d.Err != nil {
		return fmt.Errorf("event body: %w", d.Err)
	}
	if len(d.B) > 0 {
		e.Data = d.B[:len(d.B):len(d.B)]
	}
	return nil
}

// microTime converts unix microseconds to the time a reader decodes.
func microTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

// parseMicros parses a decimal microsecond time.
func parseMicros(s string) (time.Time, error) {
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, errCorrupt)
	}
	return microTime(us), nil
}

// decodeLatest decodes a latest-by-key entry, "seq time epoch\n" + body.
func decodeLatest(topic string, v []byte) (*event.Event, error) {
	nl := bytes.IndexByte(v, '\n')
	if nl < 0 {
		return nil, fmt.Errorf("latest entry: %w", errCorrupt)
	}
	f := strings.Fields(string(v[:nl]))
	if len(f) != 3 {
		return nil, fmt.Errorf("latest entry: %w", errCorrupt)
	}
	seq, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("latest entry seq: %w", errCorrupt)
	}
	t, err := parseMicros(f[1])
	if err != nil {
		return nil, fmt.Errorf("latest entry: %w", err)
	}
	e := &event.Event{Topic: topic, Epoch: f[2], Seq: seq, Time: t}
	if err := decodeBody(v[nl+1:], e); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeMessage decodes a message the store published when it stored
// events, into those events, in seq order. The format (version 1) is
//
//	"hubbub.v1\n" <topic length, decimal> " " <topic> <epoch> "\n"
//	then per event: <seq> " " <time, unix microseconds> " " <body length> "\n" <body>
//
// with numbers in decimal ASCII, and body as stored in the stream's "b"
// field (see the package documentation). One message carries the events of
// one script call: one topic, one epoch, consecutive seqs.
func DecodeMessage(msg []byte) ([]*event.Event, error) {
	if !bytes.HasPrefix(msg, []byte(MessagePrefix)) {
		return nil, fmt.Errorf("message: unknown format: %w", errCorrupt)
	}
	b := msg[len(MessagePrefix):]
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return nil, fmt.Errorf("message header: %w", errCorrupt)
	}
	tl, err := strconv.Atoi(string(b[:sp]))
	b = b[sp+1:]
	if err != nil || tl < 0 || tl > len(b) {
		return nil, fmt.Errorf("message topic: %w", errCorrupt)
	}
	topic := string(b[:tl])
	b = b[tl:]
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, fmt.Errorf("message epoch: %w", errCorrupt)
	}
	epoch := string(b[:nl])
	b = b[nl+1:]
	var evs []*event.Event
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("message event header: %w", errCorrupt)
		}
		f := strings.Fields(string(b[:nl]))
		b = b[nl+1:]
		if len(f) != 3 {
			return nil, fmt.Errorf("message event header: %w", errCorrupt)
		}
		seq, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := parseMicros(f[1])
		n, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil || n < 0 || n > len(b) {
			return nil, fmt.Errorf("message event header: %w", errCorrupt)
		}
		e := &event.Event{Topic: topic, Epoch: epoch, Seq: seq, Time: t}
		if err := decodeBody(append([]byte(nil), b[:n]...), e); err != nil {
			return nil, fmt.Errorf("message event %d: %w", seq, err)
		}
		b = b[n:]
		evs = append(evs, e)
	}
	return evs, nil
}
