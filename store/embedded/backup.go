package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/binrec"
	"github.com/hubbub/hubbub/internal/pebblelog"
	"github.com/hubbub/hubbub/store"
)

// Checkpoint writes a consistent copy of the store, as of one instant
// during the call, into dir, which must not exist (it is created on the
// same file system, so table files are hard-linked, not copied). Every
// event acknowledged before the call is in it; events being appended
// meanwhile may be, whole batches or nothing. It may run while the store
// serves; a concurrent Close waits for it.
func (s *Store) Checkpoint(dir string) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("embedded: checkpoint to %s: %w", dir, err)
	}
	return nil
}

// RenewEpochs gives every topic of the store in dir a new random epoch, in
// place, and returns the old epoch -> new epoch of each. The store must not
// be open (Pebble's lock refuses a second opener). Restoring a backup uses
// it: positions after the backup's heads may have been handed out before
// the backup was lost, and under the same epoch the restored log would give
// those seqs to other events, so a subscriber resuming there would miss
// them silently; under a new epoch it gets an "epoch" reset instead.
//
// The change is one atomic, synced Pebble batch.
func RenewEpochs(dir string, logger *slog.Logger) (map[string]string, error) {
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: FormatMajorVersion,
		Logger:             pebblelog.New(logger),
		ErrorIfNotExists:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	renewed, err := renewEpochs(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("embedded: close %s: %w", dir, cerr)
	}
	if err != nil {
		return nil, err
	}
	return renewed, nil
}

func renewEpochs(db *pebble.DB) (map[string]string, error) {
	b := db.NewBatch()
	defer b.Close()
	renewed := map[string]string{}
	byTopic := map[string]string{} // topic -> new epoch
	err := scan(db, prefixHead, func(k, v []byte) error {
		h, err := decodeHead(v)
		if err != nil {
			return fmt.Errorf("head of %q: %w", k[1:], err)
		}
		old := h.Epoch
		h.Epoch = event.NewEpoch()
		renewed[old] = h.Epoch
		byTopic[string(k[1:])] = h.Epoch
		return b.Set(k, encodeHead(h), nil)
	})
	if err != nil {
		return nil, err
	}
	// Latest-by-key entries carry their epoch (Latest needs no head).
	err = scan(db, prefixLatest, func(k, v []byte) error {
		if len(k) < 3 || len(k) < 3+int(binary.BigEndian.Uint16(k[1:3])) {
			return fmt.Errorf("latest key %q: %w", k, errCorrupt)
		}
		topic := string(k[3 : 3+binary.BigEndian.Uint16(k[1:3])])
		seq, _, ev, err := splitLatest(v)
		if err != nil {
			return err
		}
		epoch, ok := byTopic[topic]
		if !ok {
			return fmt.Errorf("latest entry of %q has no head: %w", topic, errCorrupt)
		}
		nv := append([]byte{latestV1}, binary.AppendUvarint(nil, seq)...)
		nv = binrec.AppendString(nv, epoch)
		return b.Set(k, append(nv, ev...), nil)
	})
	if err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("embedded: renew epochs: %w", err)
	}
	return renewed, nil
}

// scan calls fn with every key and value starting with prefix. fn must
// copy what it keeps.
func scan(db *pebble.DB, prefix byte, fn func(k, v []byte) error) (err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return fmt.Errorf("embedded: scan: %w", err)
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("embedded: scan: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			return fmt.Errorf("embedded: %w", err)
		}
	}
	return nil
}
