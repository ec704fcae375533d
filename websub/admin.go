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
