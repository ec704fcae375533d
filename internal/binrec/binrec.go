// Package binrec holds the pieces both stores' compact binary record
// codecs share: length-prefixed strings and a decoder that remembers its
// first error, so a codec can read a record field by field and check once.
package binrec

import (
	"encoding/binary"
	"errors"
)

// ErrCorrupt is the decoder's error for a truncated or malformed record.
var ErrCorrupt = errors.New("corrupt record")

// AppendString appends s as a uvarint length and its bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decoder reads fields from B, advancing it. After the first failure Err is
// ErrCorrupt and every read returns a zero value, so callers check Err once
// at the end.
type Decoder struct {
	B   []byte
	Err error
}

// Uvarint reads a uvarint.
func (d *Decoder) Uvarint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Err = ErrCorrupt
		return 0
	}
	d.B = d.B[n:]
	return v
}

// String reads a string written by AppendString.
func (d *Decoder) String() string {
	n := d.Uvarint()
	if d.Err != nil {
		return ""
	}
	if n > uint64(len(d.B)) {
		d.Err = ErrCorrupt
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}
