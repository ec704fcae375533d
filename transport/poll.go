package transport

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/hub"
)

// eventsResponse is the JSON answer of long-poll and retrieve.
type eventsResponse struct {
	Events []json.RawMessage `json:"events"`
	Cursor string            `json:"cursor"`
	Reset  *resetJSON        `json:"reset,omitempty"`
	// Resets lists every reset when there is more than one (several topics).
	Resets []resetJSON `json:"resets,omitempty"`
}

func (r *eventsResponse) addReset(rs *hub.Reset) {
	rj := toResetJSON(rs)
	if r.Reset == nil {
		r.Reset = &rj
	}
	r.Resets = append(r.Resets, rj)
}

func (r *eventsResponse) finish() {
	if len(r.Resets) < 2 {
		r.Resets = nil
	}
	if r.Events == nil {
		r.Events = []json.RawMessage{}
	}
}

// poll serves a long-poll: the events after the cursor at once when there
// are any, else the first to arrive, else an empty list when the timeout
// passes. Every answer carries the cursor to poll with next. A poll that a
// token authorised waits no later than notAfter (when not zero).
func (h *Handlers) poll(w http.ResponseWriter, r *http.Request, q query, notAfter time.Time) {
	timeout := h.opts.PollTimeout
	if q.timeout > 0 {
		timeout = q.timeout
	}
	if timeout > h.opts.PollMaxTimeout {
		httpError(w, http.StatusBadRequest, "timeout is longer than the most, "+h.opts.PollMaxTimeout.String())
		return
	}
	// Long-polls wait anyway: topics' configured windows apply to them.
	sub, ok := h.subscribeReq(w, r, q, hub.SubscribeRequest{
		Coalesce: h.hub.CoalesceWindow(q.topics), EventCoalesce: true, Transport: NamePoll,
	})
	if !ok {
		return
	}
	defer sub.Close()
	h.obs.Connected(NamePoll, 1)
	defer h.obs.Connected(NamePoll, -1)

	if !notAfter.IsZero() {
		timeout = max(0, min(timeout, time.Until(notAfter)))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var resp eventsResponse
	msgs, err := sub.Next(r.Context(), timer.C)
	switch {
	case err != nil && shuttingDown(r):
		// Answer as a time-out would: the client polls again, elsewhere
		// or later, with the cursor.
		msgs = nil
	case err != nil && !errors.Is(err, broker.ErrSlow):
		h.fail(w, r, err)
		return
	}
	// A poll that overflowed its buffer still answers what it has: the
	// cursor lets the next poll read the rest from history. So does one
	// whose answer would pass MaxResponseBytes: it stops after the last
	// message that fits (the first always goes).
	resp.Cursor = sub.Cursor()
	budget := h.opts.MaxResponseBytes - 256 - 2*len(resp.Cursor)
	for i, m := range msgs {
		if m.Reset != nil {
			resp.addReset(m.Reset)
			budget -= len(m.Reset.Topic) + 160
			continue
		}
		js := m.Item.JSON()
		if budget -= len(js) + 1; budget < 0 && len(resp.Events) > 0 {
			resp.Cursor = cursorAfter(msgs[i-1])
			break
		}
		resp.Events = append(resp.Events, js)
	}
	resp.finish()
	h.obs.Delivered(NamePoll, len(resp.Events))
	writeJSON(w, http.StatusOK, resp)
}

// cursorAfter is a subscription's cursor just after it delivered m.
func cursorAfter(m hub.Message) string {
	switch {
	case m.Cursor != "":
		return m.Cursor
	case m.Item != nil:
		return m.Item.Position().String()
	}
	return m.Reset.Cursor.String()
}
