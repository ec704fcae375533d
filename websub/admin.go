package websub

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Remove ends the subscription with id at once, as an unsubscribe would
// but without asking the subscriber (the admin API's DELETE). A pending
// delivery finds no record and does nothing. It reports whether the
// subscription existed.
func (h *Hub) Remove(ctx context.Context, id string) (bool, error) {
	old, found, err := h.o.Records.Get(ctx, id)
	if err != nil {
		return false, fmt.Errorf("websub: get subscription: %w", err)
	}
	ok, err := h.o.Records.Delete(ctx, id)
	if err != nil {
		return false, fmt.Errorf("websub: remove subscription: %w", err)
	}
	if ok && found {
		h.obs.Removed(&old, "removed")
		h.log.Info("websub: subscription removed by an admin", "topic", old.Topic, "callback", old.Callback)
	}
	return ok, nil
}

// RetryNow makes the subscription with id due at once: it clears the
// backoff delay of a failing subscription (its failure count and state
// stay until a delivery succeeds) and queues its delivery for now, even
// if nothing new was published. It returns the subscription as updated,
// and ErrNotFound when there is none. A delivery running meanwhile is not
// interrupted; the queue runs one delivery per subscription at a time.
//
// A suspended subscription is not retried: RetryNow returns ErrSuspended
// (Resume is the way back).
func (h *Hub) RetryNow(ctx context.Context, id string) (Subscription, error) {
	s, err := h.o.Records.Update(ctx, id, func(s *Subscription) error {
		if s.State == StateSuspended {
			return ErrSuspended
		}
		if s.NextAttempt.IsZero() {
			return ErrNoChange
		}
		s.NextAttempt = time.Time{}
		return nil
	})
	if err != nil {
		return Subscription{}, err
	}
	if err := h.enqueueDeliverWait(ctx, &s, false); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// ErrSuspended is returned by RetryNow for a suspended subscription.
var ErrSuspended = errors.New("websub: subscription is suspended; resume it")

// Resume makes a suspended subscription active again and queues its
// delivery for now: its failure count and FailingSince start afresh, so
// it is suspended again only after another SuspendAfter of failures (its
// last error stays until a delivery succeeds). For a subscription that is
// not suspended it does what RetryNow does. It returns the subscription
// as updated, and ErrNotFound when there is none.
func (h *Hub) Resume(ctx context.Context, id string) (Subscription, error) {
	s, err := h.o.Records.Update(ctx, id, func(s *Subscription) error {
		if s.State != StateSuspended && s.NextAttempt.IsZero() {
			return ErrNoChange
		}
		if s.State == StateSuspended {
			s.State, s.Failures, s.FailingSince = StateActive, 0, time.Time{}
		}
		s.NextAttempt = time.Time{}
		return nil
	})
	if err != nil {
		return Subscription{}, err
	}
	if err := h.enqueueDeliverWait(ctx, &s, false); err != nil {
		return Subscription{}, err
	}
	h.log.Info("websub: subscription resumed by an admin", "subscription", s.ID, "topic", s.Topic, "callback", s.Callback)
	return s, nil
}

// Replay moves the subscription with id back (or forward) in its topic's
// log, to before its last backfill events or to the position after, as
// hub.backfill and hub.after do at subscribe time (see startCursor), and
// queues its delivery: the events from there go out again, in order, and
// then live ones. A delivery running meanwhile stops at its next POST
// (its cursor advance fails) and the queued one starts from the new
// cursor. A failing subscription keeps its backoff, a suspended one its
// suspension. It returns the subscription as updated, and ErrNotFound
// when there is none.
func (h *Hub) Replay(ctx context.Context, id string, backfill int, after string) (Subscription, error) {
	for range 3 { // the record may move to another log meanwhile: read again
		cur, ok, err := h.o.Records.Get(ctx, id)
		if err != nil {
			return Subscription{}, fmt.Errorf("websub: get subscription: %w", err)
		}
		if !ok {
			return Subscription{}, ErrNotFound
		}
		head, err := h.o.Log.Head(ctx, cur.LogTopic)
		if err != nil {
			return Subscription{}, fmt.Errorf("websub: head of %q: %w", cur.LogTopic, err)
		}
		s, err := h.o.Records.Update(ctx, id, func(s *Subscription) error {
			if s.LogTopic != cur.LogTopic {
				return errStale
			}
			s.Cursor = startCursor(head, backfill, after)
			return nil
		})
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return Subscription{}, err
		}
		if err := h.enqueueDeliverWait(ctx, &s, false); err != nil {
			return Subscription{}, err
		}
		h.log.Info("websub: subscription replayed by an admin", "subscription", s.ID, "topic", s.Topic, "cursor", s.Cursor.String())
		return s, nil
	}
	return Subscription{}, errors.New("websub: replay: the subscription keeps changing its topic")
}
