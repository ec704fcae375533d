package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	tembedded "github.com/hubbub/hubbub/tasks/embedded"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/websub"
	"github.com/hubbub/hubbub/websub/pebblerecords"
)

// DataDatabases are the databases of the embedded store, by their
// directory under --data.
func DataDatabases() []string { return []string{dirWebSub, dirUpstream, dirTasks, dirLog} }

// RestoreReport says what PrepareRestored did.
type RestoreReport struct {
	// Topics is the number of topic logs given a new epoch (0 when
	// epochs were kept).
	Topics int
	// Subscriptions is the number of webhook subscriptions whose cursor
	// was moved to its topic's new epoch.
	Subscriptions int
}

// PrepareRestored readies a data directory just copied from a backup
// (nothing may have it open) and checks that every database in it opens.
//
// Unless keepEpochs, every topic gets a new epoch (embedded.RenewEpochs):
// events published after the backup are gone, and their positions will be
// given to new events, so clients that saw them must be told (an "epoch"
// reset), never left to skip the new ones silently. Webhook subscription
// cursors are moved to the new epoch of their topic: they were
// checkpointed before the log, so they are at or behind it and stay exact.
// keepEpochs is for a backup known to hold everything ever published (the
// publishers were stopped before it was taken).
func PrepareRestored(ctx context.Context, dir string, keepEpochs bool, logger *slog.Logger) (RestoreReport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var rep RestoreReport
	entries, err := os.ReadDir(dir)
	if err != nil {
		return rep, err
	}
	for _, e := range entries {
		if !e.IsDir() || !slices.Contains(DataDatabases(), e.Name()) {
			return rep, fmt.Errorf("restore: %s is not a database of this hubbub (known: %v)", e.Name(), DataDatabases())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, dirLog)); err != nil {
		return rep, fmt.Errorf("restore: the backup has no event log: %w", err)
	}

	renewed := map[string]string{}
	if !keepEpochs {
		if renewed, err = embedded.RenewEpochs(filepath.Join(dir, dirLog), logger); err != nil {
			return rep, fmt.Errorf("restore: %w", err)
		}
		rep.Topics = len(renewed)
	}

	// Open each database as the hub would (missing ones are created, as
	// on a hub's first start), and move webhook cursors.
	st, err := embedded.Open(filepath.Join(dir, dirLog), store.Config{}, embedded.WithLogger(logger), embedded.WithTrimInterval(0))
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := st.Close(); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	q, err := tembedded.Open(filepath.Join(dir, dirTasks), tembedded.WithLogger(logger))
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := q.Close(); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	up, err := upstream.OpenPebble(filepath.Join(dir, dirUpstream), logger)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := up.Close(); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	recs, err := pebblerecords.Open(filepath.Join(dir, dirWebSub), logger)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	rep.Subscriptions, err = moveCursors(ctx, recs, renewed)
	if cerr := recs.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	return rep, nil
}

// moveCursors rewrites the epoch of every subscription cursor found in
// renewed (old -> new) and returns how many it changed.
func moveCursors(ctx context.Context, recs websub.Records, renewed map[string]string) (int, error) {
	if len(renewed) == 0 {
		return 0, nil
	}
	n := 0
	after := ""
	for {
		page, err := recs.List(ctx, after, 500)
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		for _, s := range page {
			after = s.ID
			if _, ok := renewed[s.Cursor.Epoch]; !ok {
				continue
			}
			_, err := recs.Update(ctx, s.ID, func(s *websub.Subscription) error {
				epoch, ok := renewed[s.Cursor.Epoch]
				if !ok {
					return websub.ErrNoChange
				}
				s.Cursor.Epoch = epoch
				return nil
			})
			if err != nil && !errors.Is(err, websub.ErrNoChange) {
				return n, err
			}
			n++
		}
	}
}
