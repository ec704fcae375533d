package embedded

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Checkpoint writes a consistent copy of the queue, as of one instant
// during the call, into dir, which must not exist (created on the same
// file system: table files are hard-linked). It may run while the queue
// serves. Tasks running at that instant are leased in the copy; Open
// releases such leases, so they run again after a restore.
func (q *Queue) Checkpoint(dir string) error {
	if err := q.enter(context.Background()); err != nil {
		return err
	}
	defer q.closeMu.RUnlock()
	if err := q.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("tasks/embedded: checkpoint to %s: %w", dir, err)
	}
	return nil
}
