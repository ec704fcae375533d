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
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/tasks"
)

// maxExtraBody is how much more than the challenge a verification answer
// is read: enough to tell a longer body from the challenge.
const maxExtraBody = 1024

// transientError marks a verification failure worth retrying (the callback
// could not be reached); every other failure is final.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// handleVerify runs a verify task: verification of intent, or the notice
// of a denial. Unreachable callbacks are retried (up to the kind's
// MaxAttempts); answers that fail verification are final.
func (h *Hub) handleVerify(ctx context.Context, t tasks.Task) error {
	var j verifyJob
	if err := json.Unmarshal(t.Payload, &j); err != nil {
		return tasks.Permanent(fmt.Errorf("websub: bad verify payload: %w", err))
	}
	if j.Mode == ModeDenied {
		err := h.sendDenial(ctx, j)
		h.obs.Verified(j.Topic, j.Callback, ModeDenied, err)
		return err
	}
	err := h.verifyAndApply(ctx, j)
	var te *transientError
	if errors.As(err, &te) {
		return err
	}
	return nil // done, whatever the subscriber answered
}

// verifyAndApply verifies j's intent and, only if that succeeds, applies
// it to the records: a subscribe creates or renews the subscription, an
// unsubscribe removes it. A failure leaves the records as they were.
func (h *Hub) verifyAndApply(ctx context.Context, j verifyJob) error {
	err := h.verifyIntent(ctx, j)
	if err == nil {
		err = h.apply(ctx, j)
	}
	h.obs.Verified(j.Topic, j.Callback, j.Mode, err)
	if err != nil {
		h.log.Info("websub: verification failed", "mode", j.Mode, "topic", j.Topic, "callback", j.Callback, "err", err)
	}
	return err
}

// verifyIntent sends the verification GET and checks the echo.
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
	status, body, err := h.get(ctx, j.Callback, j.LogTopic, params, int64(len(challenge)+maxExtraBody))
	if err != nil {
		if isRefused(err) {
			return fmt.Errorf("callback refused: %w", err)
		}
		return &transientError{err: err}
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("callback answered %d", status)
	}
	if !bytes.Equal(body, []byte(challenge)) {
		return errors.New("callback did not echo the challenge")
	}
	return nil
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
		s.Filter = j.Filter
		s.LeaseSeconds = j.LeaseSeconds
		s.Expires = now.Add(lease)
		s.Verified = now
	}
	_, err := h.o.Records.Update(ctx, id, func(s *Subscription) error {
		set(s)
		return nil
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("websub: renew subscription: %w", err)
	}
	head, err := h.o.Log.Head(ctx, j.LogTopic)
	if err != nil {
		return fmt.Errorf("websub: head of %q: %w", j.LogTopic, err)
	}
	s := Subscription{ID: id, Topic: j.Topic, Callback: j.Callback, LogTopic: j.LogTopic, Created: now, State: StateActive}
	s.Cursor.Epoch, s.Cursor.Seq = head.Epoch, head.Last
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

// settleDelay is how long after storing a new subscription its first
// delivery check runs.
const settleDelay = time.Second
