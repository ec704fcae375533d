package websub

import (
	"context"
	"slices"
	"time"
)

// listPage is how many records reconciliation reads at a time.
const listPage = 500

// What the sweep keeps of verifications (see Verification).
const (
	// VerificationRetention is how long a verification's record is kept
	// after its last change: a failed or denied one stays visible that
	// long; a pending one is retried well within it, so one left
	// unchanged that long lost its task and is dropped.
	VerificationRetention = 24 * time.Hour
	// MaxFinishedVerifications bounds the failed and denied records
	// kept: past it the oldest go first. (Pending ones are bounded by
	// the queue: one per verify task.)
	MaxFinishedVerifications = 1000
)

// Run reconciles at once and then every ReconcileInterval until ctx is
// done: it removes subscriptions whose lease ended and enqueues a delivery
// for each subscription whose cursor is behind its topic's head (except
// suspended ones). Together
// with OnCommit this makes delivery at-least-once across crashes: whatever
// a commit notification did not turn into a task is found here. Run
// returns nil when ctx is done.
func (h *Hub) Run(ctx context.Context) error {
	tick := time.NewTicker(h.o.ReconcileInterval)
	defer tick.Stop()
	for {
		h.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Reconcile makes one reconciliation pass (see Run) and returns the number
// of deliveries it enqueued. It also sweeps the verification records
// (VerificationRetention, MaxFinishedVerifications).
func (h *Hub) Reconcile(ctx context.Context) int {
	h.sweepVerifications(ctx)
	enqueued := 0
	after := ""
	for range 1 << 24 { // bounded: pages of listPage records
		subs, err := h.o.Records.List(ctx, after, listPage)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("websub: reconcile: list subscriptions failed", "err", err)
			}
			return enqueued
		}
		now := h.now()
		for _, s := range subs {
			if s.Expired(now) {
				h.expire(ctx, s)
				continue
			}
			if s.State == StateSuspended {
				continue // waits for Resume
			}
			head, err := h.o.Log.Head(ctx, s.LogTopic)
			if err != nil {
				h.log.Error("websub: reconcile: head failed", "topic", s.LogTopic, "err", err)
				continue
			}
			behind := head.Last > s.Cursor.Seq ||
				(head.Epoch != "" && s.Cursor.Epoch != "" && head.Epoch != s.Cursor.Epoch && head.Last >= head.First)
			if !behind {
				continue
			}
			if err := h.enqueueDeliver(ctx, &s); err != nil {
				h.log.Error("websub: reconcile: enqueue failed", "subscription", s.ID, "err", err)
				continue
			}
			enqueued++
		}
		if len(subs) < listPage {
			return enqueued
		}
		after = subs[len(subs)-1].ID
	}
	return enqueued
}

// sweepVerifications removes the verification records older than
// VerificationRetention, and the oldest finished ones past
// MaxFinishedVerifications.
func (h *Hub) sweepVerifications(ctx context.Context) {
	cutoff := h.now().Add(-VerificationRetention)
	var finished []Verification
	var drop []string
	after := ""
	for range 1 << 24 { // bounded: pages of listPage records
		page, err := h.o.Records.ListVerifications(ctx, after, listPage)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("websub: sweep: list verifications failed", "err", err)
			}
			return
		}
		for _, v := range page {
			switch {
			case v.Updated.Before(cutoff):
				drop = append(drop, v.ID)
			case v.Finished():
				finished = append(finished, v)
			}
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].ID
	}
	if over := len(finished) - MaxFinishedVerifications; over > 0 {
		slices.SortFunc(finished, func(a, b Verification) int { return a.Updated.Compare(b.Updated) })
		for _, v := range finished[:over] {
			drop = append(drop, v.ID)
		}
	}
	for _, id := range drop {
		if err := h.o.Records.DeleteVerification(ctx, id); err != nil {
			h.log.Error("websub: sweep: remove verification failed", "id", id, "err", err)
			return
		}
	}
}
