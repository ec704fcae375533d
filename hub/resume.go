package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
)

// Pattern resume.
//
// A pattern subscription's cursor is a watermark W and positions: "of the
// topics named, I have every event up to the position; of the other topics
// my patterns match, I want only the events after W". Subscribe takes the
// new W from the store (store.ActivityIndex.Watermark) before it registers
// with the broker: every event readable later, which is every event the
// broker can offer it, is then later than W.
//
// Resuming with a cursor (W, positions), Subscribe registers, reads the
// named topics from their positions as for concrete ones, and pages the
// activity index from W: each matching topic it does not already know is
// read from its last event at or before W, found from the newest end.
// Events the log no longer holds are told with a "trimmed" reset. So every
// event after W of every matching topic arrives once: those readable before
// the registration from the log, the others live, de-duplicated by seq.
//
// The cursor stays small: a topic only a pattern names is left out of it
// once the time of the event at its position is known and at or before the
// subscription's own W, and it is not being read from the log. All its
// events up to W were readable before the registration, and it has been
// read to a head taken after it, so "after W" names exactly the events
// after its position. A live event of a topic the subscription does not
// know, at or before W, is dropped: it was readable before the
// subscription began, so it is either not wanted or was delivered under a
// cursor that let the topic go.
//
// Bounds: a resume examines at most Options.ResumeScan index entries and
// reads at most Options.ResumeTopics topics by time; past either it names
// up to ResumeTopics more matching topics in "resume-limit" resets and then
// the pattern itself. Those topics go on live, from the registration.

// ResetLimit is the reason of a reset that a pattern resume sends for a
// topic (or, with the pattern as its topic, for topics) whose events after
// the cursor it did not deliver because of its bounds.
const ResetLimit = "resume-limit"

// Defaults of the resume bounds (Options.ResumeScan, Options.ResumeTopics).
const (
	DefaultResumeScan   = 100_000
	DefaultResumeTopics = 1000
)

// resumePage is how many index entries one Active call asks for.
const resumePage = 1000

// probeNewest is how many of a topic's newest events are read first when
// looking for its last event at or before a watermark; older ones are
// found by bisection.
const probeNewest = 16

// resume finds, through the activity index, every topic the patterns match
// that had events after w and that the subscription does not know yet, and
// queues each to be read from the log after w.
func (s *Subscription) resume(ctx context.Context, ai store.ActivityIndex, w time.Time) error {
	maxScan, maxTopics := s.h.opts.ResumeScan, s.h.opts.ResumeTopics
	after := store.Activity{Time: w}
	scanned, resumed := 0, 0
	told := map[string]bool{}
	limited := false
	for !limited {
		page, err := ai.Active(ctx, after, resumePage)
		if err != nil {
			return fmt.Errorf("activity since %v: %w", w, err)
		}
		for _, a := range page {
			scanned++
			if _, known := s.pos[a.Topic]; known || told[a.Topic] || !a.Time.After(w) || !s.matches(a.Topic) {
				continue
			}
			switch {
			case resumed < maxTopics:
				resumed++
				if err := s.resumeTopic(ctx, a.Topic, w); err != nil {
					return err
				}
			case len(told) < maxTopics:
				told[a.Topic] = true
				s.pending = append(s.pending, s.limitMessage(a.Topic))
			default:
				limited = true
			}
			if limited {
				break
			}
		}
		if len(page) < resumePage {
			break
		}
		if scanned >= maxScan {
			limited = true
		}
		after = page[len(page)-1]
	}
	if limited {
		for _, p := range s.patterns {
			s.pending = append(s.pending, s.limitMessage(p.String()))
		}
	}
	return nil
}

// limitMessage tells that topic (or a pattern's topics) had events after
// the cursor that this resume did not deliver; it goes on live.
func (s *Subscription) limitMessage(topic string) Message {
	return Message{Reset: &Reset{Topic: topic, Reason: ResetLimit}, Cursor: s.encode()}
}

func (s *Subscription) matches(topic string) bool {
	for _, p := range s.patterns {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// resumeTopic positions a topic the cursor did not name at its last event
// at or before w and queues it for reading from the log. When the log no
// longer holds its first event after w, and what it dropped may have been
// later than w, a "trimmed" reset says so.
func (s *Subscription) resumeTopic(ctx context.Context, t string, w time.Time) error {
	page, err := s.h.log.Read(ctx, t, store.Query{Limit: probeNewest, Newest: true})
	if err != nil {
		return fmt.Errorf("read %q: %w", t, err)
	}
	head, evs := page.Head, page.Events
	at := func(seq uint64, tm time.Time) {
		s.pos[t] = event.Position{Epoch: head.Epoch, Seq: seq}
		if !tm.IsZero() {
			s.times[t] = tm
		}
		s.catch(t)
	}
	var lo, hi uint64 // the answer is in [lo-1, hi-1]: a seq at or before w
	switch {
	case len(evs) == 0:
		// Nothing held (the index was ahead, or retention emptied it).
		if head.Last > 0 && s.lossPossible(head, w) {
			s.lost(t, head)
		}
		at(head.Last, time.Time{})
		return nil
	case !evs[0].Time.After(w):
		i := len(evs) - 1
		for evs[i].Time.After(w) {
			i--
		}
		at(evs[i].Seq, evs[i].Time)
		return nil
	case evs[0].Seq == head.First:
		lo, hi = head.First, head.First
	default:
		lo, hi = head.First, evs[0].Seq
	}
	var found time.Time
	for lo < hi {
		mid := lo + (hi-lo)/2
		p, err := s.h.log.Read(ctx, t, store.Query{After: mid - 1, Limit: 1})
		if err != nil {
			return fmt.Errorf("read %q: %w", t, err)
		}
		if len(p.Events) == 0 || p.Events[0].Seq != mid || !p.Events[0].Time.After(w) {
			// At or before w (or trimmed meanwhile, which the catch-up
			// will tell as a reset).
			if len(p.Events) > 0 && p.Events[0].Seq == mid {
				found = p.Events[0].Time
			} else {
				found = time.Time{}
			}
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == head.First && head.First > 1 && s.lossPossible(head, w) {
		// Every event held is after w; those before may have been too.
		s.lost(t, head)
		return nil
	}
	at(lo-1, found)
	return nil
}

// lost queues a "trimmed" reset for a topic whose events after the
// watermark may be gone, and positions it at the earliest event held.
func (s *Subscription) lost(t string, head store.Head) {
	earliest := event.Position{Epoch: head.Epoch, Seq: head.First - 1}
	s.pending = append(s.pending, s.resetMessage(&Reset{Topic: t, Reason: ResetTrimmed, Cursor: earliest}, earliest))
	s.catch(t)
}

// lossPossible reports whether a topic whose events before head.First are
// gone may have lost some after w. Retention removes the oldest events
// first: by count only when the log is full, by age only those older than
// MaxAge. Unknown retention counts as a possible loss.
func (s *Subscription) lossPossible(head store.Head, w time.Time) bool {
	r := s.h.opts.Retention
	if r.MaxEvents <= 0 && r.MaxAge <= 0 {
		return true
	}
	held := head.Last + 1 - head.First
	if r.MaxEvents > 0 && held >= uint64(r.MaxEvents) {
		return true // count trimming may have taken events after w
	}
	if r.MaxAge <= 0 {
		return true // not count, not age: unknown
	}
	// Age trimming took events older than (now - MaxAge), by the clock of
	// whichever node trimmed: allow for a minute between clocks.
	return !w.After(s.h.opts.Now().Add(-r.MaxAge + time.Minute))
}

// noteTime remembers the time of the event the topic's position is at.
func (s *Subscription) noteTime(e *event.Event) {
	if s.times != nil {
		s.times[e.Topic] = e.Time
	}
}

// encode renders the cursor of a subscription with several topics or a
// pattern, leaving out the topics that may go (see droppable).
func (s *Subscription) encode() string {
	if s.watermark.IsZero() {
		return s.pos.Encode("")
	}
	return s.pos.EncodeWatermarkOmit(s.watermark, s.droppable)
}

// droppable reports whether topic t may be left out of the cursor: only a
// pattern names it, it is not being read from the log, and the event at its
// position is known to be at or before the watermark.
func (s *Subscription) droppable(t string) bool {
	if s.listed[t] || s.inCatch[t] {
		return false
	}
	tm, ok := s.times[t]
	return ok && !tm.After(s.watermark)
}
