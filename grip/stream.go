package grip

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/hub"
)

// stream is one held stream (Grip-Hold: stream), for one goroutine (its
// request's). Contract, in order:
//  1. the hub subscription starts before the origin's body is copied, so
//     an item published while the body streams is not missed;
//  2. the origin's body goes to the client as it arrives (any length);
//  3. then http-stream items are appended in log order (content or
//     content-bin; action close ends the stream, unless it was replayed
//     from the log, see Replay); items without that format are passed
//     over; a Grip-Keep-Alive is written after its
//     timeout without output (mode idle) or every timeout (interval);
//  4. a Grip-Link rel=next is requested when its timeout (DefaultTimeout
//     when it names none) passes, its body appended; its own
//     instructions then apply (new channels, keep-alive, next link; no
//     hold ends the stream after its body).
//
// The stream ends when the client goes, a write takes longer than
// writeTimeout, the subscriber falls too far behind (the client
// reconnects and, naming a prev-id, loses nothing), at shutdown, or after
// maxNextLinks parts.
type stream struct {
	p   *Proxy
	w   http.ResponseWriter
	r   *http.Request
	rc  *http.ResponseController
	buf []byte
	// later is set when a later part's hold took the slot (run gives it
	// back).
	later bool
	// replay is the current subscription's (subscribeReplay).
	replay Replay
}

// run carries out the contract above from the first part (resp, in).
// sub is the first part's subscription when it holds (its slot taken by
// the caller), else nil: a later part may still hold, and then takes a
// slot (no slot: the answer ends). run closes sub and every body.
func (s *stream) run(resp *http.Response, in Instruction, sub *hub.Subscription) {
	held := sub != nil
	defer func() {
		if sub != nil {
			sub.Close()
		}
		if held && s.later {
			s.p.obs.Connected(NameStream, -1)
			s.p.release()
		}
	}()
	origin := s.p.originFor(s.r.URL.Path)
	for hops := 0; ; hops++ {
		err := s.copyBody(resp.Body)
		resp.Body.Close()
		if err != nil || hops >= maxNextLinks {
			return
		}
		if in.Hold == HoldStream && !s.hold(sub, in) {
			return
		}
		if in.Next == nil {
			return
		}
		resp, err = s.p.fetch(s.r.Context(), s.r, origin, in.Next)
		if err != nil {
			s.p.log.Warn("grip: next link failed", "url", in.Next.String(), "err", err)
			return
		}
		prev := in
		in, err = ParseInstruction(resp.Header, resp.Request.URL)
		if err != nil || resp.StatusCode/100 != 2 {
			resp.Body.Close()
			s.p.log.Warn("grip: next link refused", "url", prev.Next.String(), "status", resp.StatusCode, "err", err)
			return
		}
		if in.Hold != HoldStream || (sub != nil && slices.Equal(in.Channels, prev.Channels)) {
			continue
		}
		if !held {
			if !s.p.acquire() {
				resp.Body.Close()
				return
			}
			held, s.later = true, true
			s.p.obs.Connected(NameStream, 1)
		}
		if sub != nil {
			sub.Close()
		}
		if sub, s.replay, err = s.p.subscribeReplay(s.r.Context(), in.Channels, NameStream); err != nil {
			resp.Body.Close()
			s.p.log.Error("grip: stream subscribe failed", "err", err)
			return
		}
	}
}

// copyBody streams an origin body to the client, each read flushed
// under the write deadline.
func (s *stream) copyBody(body io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if werr := s.write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// write writes and flushes b under writeTimeout.
func (s *stream) write(b []byte) error {
	setDeadline(s.rc)
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// hold appends published items until the stream ends (false) or the
// next link is due (true).
func (s *stream) hold(sub *hub.Subscription, in Instruction) bool {
	ctx := s.r.Context()
	if in.Next != nil {
		wait := in.NextTimeout
		if wait == 0 {
			wait = DefaultTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, wait, errNextLink)
		defer cancel()
	}
	var tick <-chan time.Time
	var keep *time.Timer
	if in.KeepAlive != nil {
		keep = time.NewTimer(in.KeepAliveEvery)
		defer keep.Stop()
		tick = keep.C
	}
	for {
		msgs, err := sub.Next(ctx, tick)
		if err != nil {
			if errors.Is(context.Cause(ctx), errNextLink) && s.r.Context().Err() == nil {
				return true
			}
			if errors.Is(err, broker.ErrSlow) {
				s.p.obs.SlowDisconnect(NameStream)
			}
			return false
		}
		if msgs == nil { // the keep-alive is due
			if err := s.write(in.KeepAlive); err != nil {
				return false
			}
			keep.Reset(in.KeepAliveEvery)
			continue
		}
		s.buf = s.buf[:0]
		n, closing := 0, false
		for _, m := range msgs {
			if m.Item == nil {
				continue
			}
			hs := s.p.renders.get(m.Item).Formats.HTTPStream
			switch {
			case hs == nil, hs.Action == ActionClose && s.replay.Replayed(m.Item):
				continue
			case hs.Action == ActionClose:
				closing = true
			case hs.Content != nil:
				s.buf = append(s.buf, *hs.Content...)
			default:
				s.buf = append(s.buf, hs.ContentBin...)
			}
			if closing {
				break
			}
			n++
		}
		if len(s.buf) > 0 {
			if err := s.write(s.buf); err != nil {
				return false
			}
			s.p.obs.Delivered(NameStream, n)
			if keep != nil && in.KeepAliveMode == "idle" {
				keep.Reset(in.KeepAliveEvery)
			}
		}
		if cap(s.buf) > 1<<20 {
			s.buf = nil // do not keep a burst's memory
		}
		if closing {
			return false
		}
	}
}
