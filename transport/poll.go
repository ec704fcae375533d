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
	if err != nil && !errors.Is(err, broker.ErrSlow) {
		h.fail(w, r, err)
		return
	}
	// A poll that overflowed its buffer still answers what it has: the
	// cursor lets the next poll read the rest from history.
	for _, m := range msgs {
		if m.Reset != nil {
			resp.addReset(m.Reset)
			continue
		}
		resp.Events = append(resp.Events, m.Item.JSON())
	}
	resp.Cursor = sub.Cursor()
	resp.finish()
	h.obs.Delivered(NamePoll, len(resp.Events))
	writeJSON(w, http.StatusOK, resp)
}
