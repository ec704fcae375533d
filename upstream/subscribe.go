package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hubbub/hubbub/tasks"
)

// handleSubscribe runs a subscribe task (first subscription, renewal, or
// the retry of a denied one): it POSTs hub.mode=subscribe to the remote
// hub for an upstream that is pending, active or denied (a denied one
// becomes pending). A 2xx ends the task (the upstream becomes active when
// the hub verifies); a 4xx other than 429 marks it failed; anything else
// is retried.
func (m *Manager) handleSubscribe(ctx context.Context, t tasks.Task) error {
	u, ok, err := m.st.Get(ctx, string(t.Payload))
	if err != nil {
		return err
	}
	if !ok || (u.State != StatePending && u.State != StateActive && u.State != StateDenied) {
		return nil // removed or failed meanwhile
	}
	return m.request(ctx, u, "subscribe", func(u *Upstream, msg string) { u.State = StateFailed; u.LastError = msg })
}

// handleUnsubscribe runs an unsubscribe task: it POSTs hub.mode=unsubscribe
// for an upstream still unsubscribing. A 4xx other than 429 deletes the
// record at once (the hub will not verify); a 2xx leaves the deletion to
// the verification.
func (m *Manager) handleUnsubscribe(ctx context.Context, t tasks.Task) error {
	id := string(t.Payload)
	u, ok, err := m.st.Get(ctx, id)
	if err != nil {
		return err
	}
	if !ok || u.State != StateUnsubscribing {
		return nil
	}
	err = m.request(ctx, u, "unsubscribe", nil)
	if err != nil && tasks.IsPermanent(err) {
		if derr := m.st.Delete(ctx, id); derr != nil {
			return derr
		}
	}
	return err
}

// request POSTs a mode request for u. On a refusal (4xx but 429) it calls
// refused (if not nil) on the stored upstream and returns a permanent
// error; other failures are recorded in LastError and returned for retry.
//
// Before the POST it records mode as the request outstanding (so that the
// hub's verification, which may come before the POST's answer, is
// accepted) and gives an upstream without a callback token one.
func (m *Manager) request(ctx context.Context, u Upstream, mode string, refused func(u *Upstream, msg string)) error {
	u, ok, err := m.st.Update(ctx, u.ID, func(cur *Upstream) error {
		if cur.Token == "" {
			cur.Token = newToken()
		}
		if mode == "subscribe" && cur.State == StateDenied {
			cur.State = StatePending
		}
		cur.Requested = mode
		return nil
	})
	if err != nil {
		return fmt.Errorf("upstream: record the %s request: %w", mode, err)
	}
	if !ok {
		return nil // removed meanwhile
	}
	form := url.Values{
		"hub.mode":     {mode},
		"hub.topic":    {u.Topic},
		"hub.callback": {m.Callback(u)},
	}
	if mode == "subscribe" {
		form.Set("hub.secret", u.Secret)
		form.Set("hub.lease_seconds", strconv.FormatInt(int64(m.o.Lease.Seconds()), 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.Hub, strings.NewReader(form.Encode()))
	if err != nil {
		return tasks.Permanent(fmt.Errorf("upstream: %s %s: %w", mode, u.Hub, err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "hubbub upstream (+"+m.o.PublicURL+")")
	resp, err := m.client.Do(req)
	if err != nil {
		err = fmt.Errorf("upstream: %s at %s: %w", mode, u.Hub, err)
		m.noteError(ctx, u.ID, err.Error())
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		m.noteError(ctx, u.ID, "")
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		text := fmt.Sprintf("%s refused: %d %s", mode, resp.StatusCode, strings.TrimSpace(string(msg)))
		if refused != nil {
			if _, _, err := m.st.Update(ctx, u.ID, func(u *Upstream) error { refused(u, text); u.Requested = ""; return nil }); err != nil {
				return err
			}
		}
		return tasks.Permanent(fmt.Errorf("upstream: %s", text))
	}
	err = fmt.Errorf("upstream: %s at %s: status %d", mode, u.Hub, resp.StatusCode)
	m.noteError(ctx, u.ID, err.Error())
	return err
}

// noteError records msg as the LastError ("" clears it) of the upstream
// id while it is pending, active or unsubscribing: the reason of a denial
// or refusal recorded meanwhile stays.
func (m *Manager) noteError(ctx context.Context, id, msg string) {
	if u, ok, err := m.st.Get(ctx, id); err != nil || !ok || u.LastError == msg {
		return
	}
	_, _, err := m.st.Update(ctx, id, func(u *Upstream) error {
		if u.State != StateDenied && u.State != StateFailed {
			u.LastError = msg
		}
		return nil
	})
	if err != nil {
		m.log.Warn("upstream: cannot record error", "id", id, "err", err)
	}
}
