package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hubbub/hubbub/tasks"
)

// Record kinds: the first byte of every key (see the package doc).
const (
	prefixTask  byte = 't'
	prefixDue   byte = 'd'
	prefixKey   byte = 'k'
	prefixLease byte = 'l'
	prefixDead  byte = 'x'
	prefixRun   byte = 'r'
)

// Limits on what a key can hold.
const (
	maxKindLen = 255
	maxKeyLen  = 4096
)

const recordVersion = 1

var errCorrupt = errors.New("embedded: corrupt task record")

// record is a task as stored under t/<id>.
type record struct {
	tasks.Task
	runAt int64 // unix ns, as indexed
	lease int64 // unix ns, meaningful when Running
	dead  int64 // unix ns, meaningful when Dead
}

func (r *record) task() tasks.Task {
	t := r.Task
	t.RunAt = time.Unix(0, r.runAt)
	t.LeaseUntil, t.DeadAt = time.Time{}, time.Time{}
	switch t.State {
	case tasks.Running:
		t.LeaseUntil = time.Unix(0, r.lease)
	case tasks.Dead:
		t.DeadAt = time.Unix(0, r.dead)
	}
	if len(t.Payload) == 0 {
		t.Payload = nil
	}
	return t
}

func encodeRecord(r *record) []byte {
	b := make([]byte, 0, 64+len(r.Kind)+len(r.Key)+len(r.LastError)+len(r.Payload))
	b = append(b, recordVersion, byte(r.State))
	b = binary.AppendUvarint(b, uint64(r.Attempt))
	b = binary.AppendVarint(b, r.runAt)
	b = binary.AppendVarint(b, r.lease)
	b = binary.AppendVarint(b, r.dead)
	for _, s := range []string{r.Kind, r.Key, r.LastError} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, r.Payload...) // the rest is the payload
}

// decodeRecord decodes v, which it does not retain.
func decodeRecord(id string, v []byte) (*record, error) {
	if len(v) < 2 || v[0] != recordVersion {
		return nil, fmt.Errorf("%w %s: version", errCorrupt, id)
	}
	r := &record{}
	r.ID = id
	r.State = tasks.State(v[1])
	v = v[2:]
	u, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, fmt.Errorf("%w %s: attempt", errCorrupt, id)
	}
	r.Attempt, v = int(u), v[n:]
	for _, p := range []*int64{&r.runAt, &r.lease, &r.dead} {
		x, n := binary.Varint(v)
		if n <= 0 {
			return nil, fmt.Errorf("%w %s: time", errCorrupt, id)
		}
		*p, v = x, v[n:]
	}
	for _, p := range []*string{&r.Kind, &r.Key, &r.LastError} {
		l, n := binary.Uvarint(v)
		if n <= 0 || uint64(len(v)-n) < l {
			return nil, fmt.Errorf("%w %s: string", errCorrupt, id)
		}
		*p, v = string(v[n:n+int(l)]), v[n+int(l):]
	}
	if len(v) > 0 {
		r.Payload = append([]byte(nil), v...)
	}
	return r, nil
}

func taskKey(id string) []byte {
	return append([]byte{prefixTask}, id...)
}

// kindKey is prefix, the kind's length (2 bytes big-endian) and the kind:
// one kind's entries are contiguous and never mix with another's whose
// name it is a prefix of.
func kindKey(prefix byte, kind string, extra int) []byte {
	k := make([]byte, 0, 3+len(kind)+extra)
	k = append(k, prefix, byte(len(kind)>>8), byte(len(kind)))
	return append(k, kind...)
}

// appendTime appends t (unix ns) so that byte order is time order, negative
// times included.
func appendTime(k []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(k, uint64(t)^(1<<63))
}

func timeAt(k []byte, off int) int64 {
	return int64(binary.BigEndian.Uint64(k[off:]) ^ (1 << 63))
}

// timedKey is d/ or l/: kind, time, id.
func timedKey(prefix byte, kind string, t int64, id string) []byte {
	k := kindKey(prefix, kind, 8+len(id))
	k = appendTime(k, t)
	return append(k, id...)
}

// splitTimed returns the kind, time and id of a d/ or l/ key.
func splitTimed(k []byte) (kind string, t int64, id string, err error) {
	if len(k) < 3 {
		return "", 0, "", errCorrupt
	}
	n := int(k[1])<<8 | int(k[2])
	if len(k) != 3+n+8+tasks.IDLen {
		return "", 0, "", fmt.Errorf("%w: index key %q", errCorrupt, k)
	}
	return string(k[3 : 3+n]), timeAt(k, 3+n), string(k[3+n+8:]), nil
}

// kindOf returns the kind of a d/, l/ or x/ key.
func kindOf(k []byte) (string, error) {
	if len(k) < 3 {
		return "", errCorrupt
	}
	n := int(k[1])<<8 | int(k[2])
	if len(k) < 3+n {
		return "", fmt.Errorf("%w: index key %q", errCorrupt, k)
	}
	return string(k[3 : 3+n]), nil
}

func dedupKey(kind, key string) []byte {
	return append(kindKey(prefixKey, kind, len(key)), key...)
}

func runKey(kind, key string) []byte {
	return append(kindKey(prefixRun, kind, len(key)), key...)
}

func deadKey(kind, id string) []byte {
	return append(kindKey(prefixDead, kind, len(id)), id...)
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
	return nil
}

func validKind(kind string) error {
	if kind == "" || len(kind) > maxKindLen {
		return fmt.Errorf("%w: kind must be 1 to %d bytes", tasks.ErrInvalid, maxKindLen)
	}
	return nil
}
