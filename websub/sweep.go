package websub

import (
	"context"
	"time"
)

// listPage is how many records reconciliation reads at a time.
const listPage = 500

// Run reconciles at once and then every ReconcileInterval until ctx is
// done: it removes subscriptions whose lease ended and enqueues a delivery
// for each subscription whose cursor is behind its topic's head. Together
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
// of deliveries it enqueued.
func (h *Hub) Reconcile(ctx context.Context) int {
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
