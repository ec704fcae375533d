package websub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/tasks"
)

// maxExtraBody is how much more than the challenge a verification answer
// is read: enough to tell a longer body from the challenge.
const maxExtraBody = 1024

// Verification limits.
const (
	// verifyTimeout bounds a verification request, from dialing to the
	// end of the answer (or HTTPTimeout, if shorter).
	verifyTimeout = 10 * time.Second
	// verifyPerHost is how many verifications run at once for one callback
	// host (CallbackHost); verifyConcurrency how many run in all.
	verifyPerHost     = 2
	verifyConcurrency = 16
	// verifyAttempts is how many times a verification may fail to reach
	// its callback before it is given up as failed. The waits between
	// them double from RetryBase (5s, 10s, ... 320s by default: about ten
	// minutes in all, to ride out a restart or a DNS change).
	verifyAttempts = 8
	// maxVerifyWait is the longest a verification waits, per put-back,
	// for its busy host.
	maxVerifyWait = 15 * time.Second
)

// transientError marks a verification failure worth retrying (the callback
// could not be reached); every other failure is final.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// verifyError is a failed verification: public says what failed in words
// fit for an anonymous subscriber; err holds the detail (network errors,
// addresses), which is only logged.
type verifyError struct {
	public string
	err    error
}

func (e *verifyError) Error() string {
	if e.err == nil {
		return e.public
	}
	return e.public + ": " + e.err.Error()
}
func (e *verifyError) Unwrap() error { return e.err }

// publicReason is what a subscriber is told about err.
func publicReason(err error) string {
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.public
	}
	return "the hub could not complete the verification; try again"
}

// handleVerify runs a verify task: verification of intent, or the notice
// of a denial. Unreachable callbacks are retried (up to verifyAttempts
// tries, with backoff: retryWait); answers that fail verification are
// final. The request's Verification record says how it stands: pending
// with the last error and the next try, failed, or (on success) gone.
//
// Fairness: at most verifyPerHost verifications (or denial notices) per
// callback host run at once, out of verifyConcurrency workers. A task for
// a host at its cap does not wait on a worker: it is put back in the
// queue for a little later (deferVerify) and the worker moves on. Each
// request is bounded by dialTimeout to connect and verifyTimeout in all.
// So a host that never answers holds at most verifyPerHost workers, for
// at most verifyTimeout each, however many verifications it is sent, and
// a verification for any other host starts as soon as it is due (while
// fewer than verifyConcurrency/verifyPerHost distinct hosts are all slow
// at once).
func (h *Hub) handleVerify(ctx context.Context, t tasks.Task) error {
	var j verifyJob
	if err := json.Unmarshal(t.Payload, &j); err != nil {
		return tasks.Permanent(fmt.Errorf("websub: bad verify payload: %w", err))
	}
	release, ok := h.verifying.try(CallbackHost(j.Callback))
	if !ok {
		return h.deferVerify(ctx, t, j)
	}
	defer release()
	if j.Mode == ModeDenied {
		err := h.sendDenial(ctx, j)
		h.obs.Verified(j.Topic, j.Callback, ModeDenied, err)
		if err != nil && j.Failed+t.Attempt+1 >= verifyAttempts {
			return tasks.Permanent(err)
		}
		return err
	}
	err := h.verifyAndApply(ctx, j)
	if err == nil {
		return nil // verifyAndApply removed the Verification
	}
	var te *transientError
	attempts := j.Failed + t.Attempt + 1
	if errors.As(err, &te) && attempts < verifyAttempts {
		wait := h.retryWait(attempts)
		h.noteVerification(ctx, j, VerifyPending, attempts, err, h.now().Add(wait))
		return tasks.RetryAfter(wait, err)
	}
	if te != nil {
		err = &verifyError{public: fmt.Sprintf("%s (tried %d times)", publicReason(err), attempts), err: err}
	}
	h.noteVerification(ctx, j, VerifyFailed, attempts, err, time.Time{})
	return nil // done: the failure is on record, whatever the subscriber answered
}

// retryWait is how long after its nth failed try (from 1) a verification
// is tried again: drawn from [c/2, c] with c = RetryBase*2^(n-1), at most
// RetryMax.
func (h *Hub) retryWait(n int) time.Duration {
	return h.retry.Delay(n-1, 0, backoff.Equal)
}

// noteVerification records how the verification of j stands (see
// Verification). A failure to record it is logged: the verification goes
// on regardless.
func (h *Hub) noteVerification(ctx context.Context, j verifyJob, state string, attempts int, err error, next time.Time) {
	now := h.now()
	requested := j.Requested
	if requested.IsZero() {
		requested = now
	}
	v := Verification{ID: SubscriptionID(j.Topic, j.Callback), Topic: j.Topic, Callback: j.Callback, Mode: j.Mode,
		State: state, Attempts: attempts, NextAttempt: next, Requested: requested, Updated: now}
	switch {
	case j.Reason != "":
		v.LastError = j.Reason
	case err != nil:
		v.LastError = publicReason(err)
	}
	if perr := h.o.Records.PutVerification(ctx, v); perr != nil {
		h.log.Warn("websub: recording a verification's state failed", "topic", j.Topic, "callback", j.Callback, "state", state, "err", perr)
	}
}

// deferVerify puts t back in the queue, as a new task with the same key,
// to run when its host may have a free slot: after 1s, 2s, 4s ... up to
// maxVerifyWait (jittered) for its successive put-backs. The failed runs
// so far travel in the payload, since the new task starts at Attempt 0.
func (h *Hub) deferVerify(ctx context.Context, t tasks.Task, j verifyJob) error {
	j.Failed += t.Attempt
	j.Waits++
	d := min(maxVerifyWait, time.Second<<min(j.Waits-1, 4))
	d = d/2 + mrand.N(d/2+1)
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("websub: encode verify job: %w", err)
	}
	if _, _, err := h.o.Tasks.Enqueue(ctx, tasks.Task{Kind: KindVerify, Key: t.Key, Payload: b, RunAt: h.now().Add(d)}); err != nil {
		return fmt.Errorf("websub: put back a verification for a busy host: %w", err)
	}
	return nil
}

// verifySync verifies j on the subscription request's goroutine, within
// the per-host cap (waiting up to verifyTimeout for a slot).
func (h *Hub) verifySync(ctx context.Context, j verifyJob) error {
	wctx, cancel := context.WithTimeout(ctx, h.verifyTimeout())
	release, err := h.verifying.acquire(wctx, CallbackHost(j.Callback))
	cancel()
	if err != nil {
		return &verifyError{public: "too many verifications to the callback's host are in flight; try again later", err: err}
	}
	defer release()
	return h.verifyAndApply(ctx, j)
}

func (h *Hub) verifyTimeout() time.Duration { return min(verifyTimeout, h.o.HTTPTimeout) }

// verifyAndApply verifies j's intent and, only if that succeeds, applies
// it to the records: a subscribe creates or renews the subscription, an
// unsubscribe removes it. A failure leaves the records as they were.
func (h *Hub) verifyAndApply(ctx context.Context, j verifyJob) error {
	err := h.verifyIntent(ctx, j)
	if err == nil {
		err = h.apply(ctx, j)
	}
	if err == nil {
		if derr := h.o.Records.DeleteVerification(ctx, SubscriptionID(j.Topic, j.Callback)); derr != nil {
			h.log.Warn("websub: removing a verification's record failed; the sweep will", "topic", j.Topic, "callback", j.Callback, "err", derr)
		}
	}
	h.obs.Verified(j.Topic, j.Callback, j.Mode, err)
	if err != nil {
		h.log.Info("websub: verification failed", "mode", j.Mode, "topic", j.Topic, "callback", j.Callback, "err", err)
		if isRefused(err) {
			h.log.Info("websub: the callback's address or port is refused by the SSRF guard; --allow-private-callbacks lets callbacks reach private addresses and any port", "callback", j.Callback)
		}
	}
	return err
}

// verifyIntent sends the verification GET and checks the echo. Its errors
// are *verifyError, wrapped in *transientError when worth retrying.
func (h *Hub) verifyIntent(ctx context.Context, j verifyJob) error {
	challenge := newChallenge()
	params := url.Values{}
	params.Set("hub.mode", j.Mode)
	params.Set("hub.topic", j.Topic)
	params.Set("hub.challenge", challenge)
	params.Set("hub.lease_seconds", strconv.FormatInt(j.LeaseSeconds, 10))
	if j.VerifyToken != "" {
		params.Set("hub.verify_token", j.VerifyToken)
	}
	ctx, cancel := context.WithTimeout(ctx, h.verifyTimeout())
	defer cancel()
	status, body, err := h.get(ctx, j.Callback, j.LogTopic, params, int64(len(challenge)+maxExtraBody))
	if err != nil {
		unreachable := &verifyError{public: h.unreachable(), err: err}
		var op *net.OpError
		switch {
		case isRefused(err):
			return unreachable
		case errors.As(err, &op) && op.Op == "dial":
			return &transientError{err: unreachable}
		case isTimeout(err):
			return &transientError{err: &verifyError{public: fmt.Sprintf("callback did not answer within %v", h.verifyTimeout()), err: err}}
		}
		return &transientError{err: unreachable}
	}
	if status < 200 || status > 299 {
		return &verifyError{public: fmt.Sprintf("callback answered %d", status)}
	}
	if !bytes.Equal(body, []byte(challenge)) {
		return &verifyError{public: "callback did not echo the challenge"}
	}
	return nil
}

// unreachable is the public reason for a callback that could not be
// reached, for whatever cause: the same words for an address the SSRF
// guard refuses as for a dead host, so the answer tells nothing about the
// network, but a hint at the setting behind the guard, since loopback
// callbacks are what a first try uses.
func (h *Hub) unreachable() string {
	if h.o.AllowPrivate {
		return "callback could not be reached"
	}
	return "callback could not be reached (this hub calls no loopback or private address unless started with --allow-private-callbacks)"
}

// isTimeout reports whether err is a deadline or network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// sendDenial tells the callback its subscription was refused. Any answer
// will do; only an unreachable callback is retried.
func (h *Hub) sendDenial(ctx context.Context, j verifyJob) error {
	params := url.Values{}
	params.Set("hub.mode", ModeDenied)
	params.Set("hub.topic", j.Topic)
	if j.Reason != "" {
		params.Set("hub.reason", j.Reason)
	}
	if _, _, err := h.get(ctx, j.Callback, j.LogTopic, params, 0); err != nil {
		return fmt.Errorf("websub: denial notice to %s: %w", j.Callback, err)
	}
	return nil
}

// get GETs callback with params appended to its own query string and
// returns the status and up to limit bytes of the body.
func (h *Hub) get(ctx context.Context, callback, logTopic string, params url.Values, limit int64) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, withQuery(callback, params), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", h.userAgent(logTopic))
	resp, release, err := h.do(req)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	return resp.StatusCode, body, nil
}

// withQuery appends params to u's own query string, keeping it as is.
func withQuery(u string, params url.Values) string {
	base, frag, _ := strings.Cut(u, "#")
	_ = frag // callbacks have no fragment (checked at parse time)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
		if strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&") {
			sep = ""
		}
	}
	return base + sep + params.Encode()
}

// newChallenge returns a fresh single-use challenge: 32 random bytes,
// base64url-encoded.
func newChallenge() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// apply writes a verified request to the records. A subscribe renews an
// existing subscription in place (keeping its cursor and delivery state)
// or creates one whose cursor is the topic's head now, so it receives the
// events published after its verification.
func (h *Hub) apply(ctx context.Context, j verifyJob) error {
	id := SubscriptionID(j.Topic, j.Callback)
	if j.Mode == ModeUnsubscribe {
		old, found, _ := h.o.Records.Get(ctx, id)
		ok, err := h.o.Records.Delete(ctx, id)
		if err != nil {
			return fmt.Errorf("websub: remove subscription: %w", err)
		}
		if ok && found {
			h.obs.Removed(&old, "unsubscribed")
		}
		return nil
	}
	now := h.now()
	lease := time.Duration(j.LeaseSeconds) * time.Second
	set := func(s *Subscription) {
		s.HubURL = j.HubURL
		s.Secret = j.Secret
		s.SignatureAlgorithm = j.SignatureAlgorithm
		s.Batch = j.Batch
		s.BatchBytes, s.BatchWaitMS = j.BatchBytes, j.BatchWaitMS
		s.Filter = j.Filter
		s.Format = j.Format
		s.LeaseSeconds = j.LeaseSeconds
		s.Expires = now.Add(lease)
		if !j.NotAfter.IsZero() && j.NotAfter.Before(s.Expires) {
			s.Expires = j.NotAfter
		}
		s.Verified = now
	}
	head, err := h.o.Log.Head(ctx, j.LogTopic)
	if err != nil {
		return fmt.Errorf("websub: head of %q: %w", j.LogTopic, err)
	}
	_, err = h.o.Records.Update(ctx, id, func(s *Subscription) error {
		set(s)
		if s.LogTopic != j.LogTopic {
			// The same hub.topic now reads another log (a topic URL of
			// hubbub's, mapped since this record was made): from its head.
			s.LogTopic = j.LogTopic
			s.Cursor = event.Position{Epoch: head.Epoch, Seq: head.Last}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("websub: renew subscription: %w", err)
	}
	if over, err := h.overHostCap(ctx, id, j.Callback); err != nil {
		return err
	} else if over {
		return &verifyError{public: "the callback's host has as many subscriptions as this hub allows per host"}
	}
	s := Subscription{ID: id, Topic: j.Topic, Callback: j.Callback, LogTopic: j.LogTopic, Created: now, State: StateActive}
	s.Cursor = startCursor(head, j.Backfill, j.After)
	set(&s)
	if err := h.o.Records.Put(ctx, s); err != nil {
		return fmt.Errorf("websub: store subscription: %w", err)
	}
	// The cursor is the head read above. An event committed between that
	// read and the moment every enqueuer counts the new subscription
	// (with shared records, a Pub/Sub notice away) would wait for
	// reconciliation; one delivery check a little later finds it.
	t := tasks.Task{Kind: KindDeliver, Key: id, Payload: []byte(id), RunAt: now.Add(settleDelay)}
	if _, _, err := h.o.Tasks.Enqueue(ctx, t); err != nil {
		h.log.Warn("websub: scheduling the first delivery check failed; reconciliation will do it", "subscription", id, "err", err)
	}
	return nil
}

// startCursor is where a subscription starts reading a log with head:
// after its last event, or before the history asked for (the last
// backfill events, or the events after the position after), never before
// the first event history holds nor past the end. A position of another
// epoch (a log since replaced) starts at the first event held.
func startCursor(head store.Head, backfill int, after string) event.Position {
	pos := event.Position{Epoch: head.Epoch, Seq: head.Last}
	if head.Epoch == "" || head.First == 0 {
		return pos // never written
	}
	floor := head.First - 1 // the position before the first event held
	switch p, err := event.ParsePosition(after); {
	case backfill > 0:
		pos.Seq = max(floor, head.Last-min(head.Last, uint64(backfill)))
	case after == "" || err != nil:
	case p.Epoch != "" && p.Epoch != head.Epoch:
		pos.Seq = floor
	default:
		pos.Seq = min(max(p.Seq, floor), head.Last)
	}
	return pos
}

// settleDelay is how long after storing a new subscription its first
// delivery check runs.
const settleDelay = time.Second
