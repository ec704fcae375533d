package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// MaxHeldDocuments bounds the documents one subscription may say it holds.
const MaxHeldDocuments = 10000

// maxInitialScan bounds how many documents an "initial" subscription
// examines in the latest-by-key view.
const maxInitialScan = 100000

// DocumentsSpec makes a subscription a document subscription (the
// socket.io model): the client says which documents of the one topic it
// holds and how recent each is; it first gets an "update" with the current
// version of each that changed since, a "delete" for each that is gone,
// and nothing for those it has current; with Initial, also a "create" for
// each document matching the subscription's filter that it does not hold;
// then live events for the documents it holds and for any that match.
type DocumentsSpec struct {
	// Held maps a document key to the time of the version the client
	// has (compared with the latest event's time; a version at or after
	// it is current).
	Held    map[string]time.Time
	Initial bool
}

// docState is a document subscription's state inside a Subscription.
type docState struct {
	held map[string]uint64 // key -> seq of the version delivered or held
}

// startDocuments computes the opening diff of a document subscription and
// queues it. The subscription is live-only from the head read at
// Subscribe; live events the diff already covered are dropped by seq.
func (s *Subscription) startDocuments(ctx context.Context, topic string, spec *DocumentsSpec, head store.Head) error {
	if len(spec.Held) > MaxHeldDocuments {
		return event.Invalid("more than %d documents held", MaxHeldDocuments)
	}
	s.docs = &docState{held: make(map[string]uint64, len(spec.Held))}
	for key, mtime := range spec.Held {
		e, ok, err := s.h.log.Latest(ctx, topic, key)
		if err != nil {
			return fmt.Errorf("latest %q: %w", key, err)
		}
		switch {
		case !ok || e.Type == "delete":
			gone := &event.Event{Topic: topic, Epoch: head.Epoch, Type: "delete", Key: key, Time: time.Now().UTC()}
			if ok {
				gone = e
			}
			s.pending = append(s.pending, Message{Item: event.NewItem(gone)})
			delete(s.docs.held, key)
			continue
		case e.Time.After(mtime):
			s.pending = append(s.pending, Message{Item: retype(e, "update")})
		}
		s.docs.held[key] = e.Seq
	}
	if !spec.Initial {
		return nil
	}
	dl, ok := s.h.log.(store.DocumentLister)
	if !ok {
		return ErrNoDocuments
	}
	after := ""
	for scanned := 0; scanned < maxInitialScan; {
		page, err := dl.Documents(ctx, topic, after, 1000)
		if err != nil {
			return fmt.Errorf("documents of %q: %w", topic, err)
		}
		for _, e := range page {
			if _, held := spec.Held[e.Key]; held || e.Type == "delete" {
				continue
			}
			if s.filter != nil && !s.filter.Match(e) {
				continue
			}
			s.pending = append(s.pending, Message{Item: retype(e, "create")})
			s.docs.held[e.Key] = e.Seq
		}
		scanned += len(page)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Key
	}
	return nil
}

// retype returns the event shown with another type (shared by every
// subscriber asking for the same variant).
func retype(e *event.Event, typ string) *event.Item {
	if e.Type == typ {
		return event.NewItem(e)
	}
	return event.NewItem(e).Derive("type:"+typ, func(c *event.Event) *event.Event {
		c.Type = typ
		return c
	})
}

// docWants decides whether a live (or caught-up) event goes to a document
// subscription: events of documents it holds always do, except versions it
// already has; others when the filter matches, after which the document
// counts as held.
func (s *Subscription) docWants(e *event.Event) bool {
	if e.Key == "" {
		return s.filter == nil || s.filter.Match(e)
	}
	if seq, held := s.docs.held[e.Key]; held {
		if e.Seq <= seq {
			return false
		}
		if e.Type == "delete" {
			delete(s.docs.held, e.Key)
		} else {
			s.docs.held[e.Key] = e.Seq
		}
		return true
	}
	if e.Type == "delete" || (s.filter != nil && !s.filter.Match(e)) {
		return false
	}
	s.docs.held[e.Key] = e.Seq
	return true
}
