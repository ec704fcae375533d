package websub

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/filter"
)

// Modes of hub.mode.
const (
	ModeSubscribe   = "subscribe"
	ModeUnsubscribe = "unsubscribe"
	ModePublish     = "publish"
	ModeDenied      = "denied"
)

// Limits on request parameters.
const (
	MaxURLLen         = 2048
	MaxVerifyTokenLen = 1024
	MaxPublishTopics  = 100
)

// Request is a parsed hub request.
type Request struct {
	Mode string `json:"mode"`
	// Subscribe and unsubscribe.
	Topic              string `json:"topic,omitempty"`
	Callback           string `json:"callback,omitempty"`
	LeaseSeconds       int64  `json:"lease_seconds,omitempty"` // clamped to the hub's bounds
	Secret             string `json:"secret,omitempty"`
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"` // "" for the hub's default
	Batch              int    `json:"batch,omitempty"`
	BatchBytes         int    `json:"batch_bytes,omitempty"`
	BatchWaitMS        int    `json:"batch_wait_ms,omitempty"`
	// Backfill and After (a validated position) ask a new subscription
	// for history: the last Backfill events, or the events after After.
	Backfill    int    `json:"backfill,omitempty"`
	After       string `json:"after,omitempty"`
	Filter      string `json:"filter,omitempty"` // validated JSON
	Sync        bool   `json:"sync,omitempty"`   // hub.verify=sync preferred
	VerifyToken string `json:"verify_token,omitempty"`
	Legacy      bool   `json:"legacy,omitempty"` // PuSH 0.3 style (hub.verify sent, or hub.url on publish)
	// Publish: the topic URLs pinged.
	URLs []string `json:"urls,omitempty"`
}

// leaseBounds are the lease rules parseRequest applies.
type leaseBounds struct{ def, min, max time.Duration }

// requestError is a client error; its text is the 4xx answer.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func bad(format string, args ...any) error {
	return &requestError{msg: "websub: " + fmt.Sprintf(format, args...)}
}

// parseRequest validates a hub request's form values. Unknown parameters
// are ignored. Every error is a *requestError.
func parseRequest(v url.Values, lb leaseBounds) (Request, error) {
	var r Request
	r.Mode = v.Get("hub.mode")
	switch r.Mode {
	case ModeSubscribe, ModeUnsubscribe:
		return parseSubscription(v, r, lb)
	case ModePublish:
		return parsePublish(v, r)
	case "":
		return r, bad("hub.mode is missing")
	}
	return r, bad("hub.mode %q is not subscribe, unsubscribe or publish", truncate(r.Mode, 64))
}

func parseSubscription(v url.Values, r Request, lb leaseBounds) (Request, error) {
	r.Callback = v.Get("hub.callback")
	if err := checkURL("hub.callback", r.Callback); err != nil {
		return r, err
	}
	r.Topic = v.Get("hub.topic")
	if r.Topic == "" {
		return r, bad("hub.topic is missing")
	}
	if err := event.ValidateTopic(r.Topic); err != nil {
		return r, bad("hub.topic: %v", err)
	}
	if s, ok := v["hub.secret"]; ok && len(s) > 0 {
		r.Secret = s[0]
		if len(r.Secret) > MaxSecretLen {
			return r, bad("hub.secret must be under 200 bytes")
		}
	}
	lease := lb.def
	if s := v.Get("hub.lease_seconds"); s != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n <= 0 {
			return r, bad("hub.lease_seconds must be a positive integer")
		}
		if n > int64(lb.max/time.Second) {
			lease = lb.max
		} else {
			lease = max(time.Duration(n)*time.Second, lb.min)
		}
	}
	r.LeaseSeconds = int64(lease / time.Second)
	if alg := v.Get("hub.signature_algorithm"); alg != "" {
		alg = strings.ToLower(alg)
		if !validAlgorithm(alg) {
			return r, bad("hub.signature_algorithm must be sha1, sha256, sha384 or sha512")
		}
		r.SignatureAlgorithm = alg
	}
	if s := v.Get("hub.batch"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > MaxBatch {
			return r, bad("hub.batch must be an integer from 1 to %d", MaxBatch)
		}
		r.Batch = n
	}
	if s := v.Get("hub.batch_bytes"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > MaxBatchBytes {
			return r, bad("hub.batch_bytes must be an integer from 1 to %d", MaxBatchBytes)
		}
		r.BatchBytes = n
	}
	if s := v.Get("hub.batch_wait_ms"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > MaxBatchWaitMS {
			return r, bad("hub.batch_wait_ms must be an integer from 0 to %d", MaxBatchWaitMS)
		}
		r.BatchWaitMS = n
	}
	if s := v.Get("hub.backfill"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > MaxBackfill {
			return r, bad("hub.backfill must be an integer from 0 to %d", MaxBackfill)
		}
		r.Backfill = n
	}
	if s := v.Get("hub.after"); s != "" {
		if _, err := event.ParsePosition(s); err != nil {
			return r, bad("hub.after must be a cursor of the topic (an event's id, EPOCH:SEQ): %v", err)
		}
		r.After = s
	}
	if r.Backfill > 0 && r.After != "" {
		return r, bad("hub.backfill and hub.after both ask for history: send one")
	}
	if (r.BatchBytes > 0 || r.BatchWaitMS > 0) && r.Batch < 2 {
		return r, bad("hub.batch_bytes and hub.batch_wait_ms shape JSON batches: they need hub.batch of 2 or more")
	}
	if s := v.Get("hub.filter"); s != "" {
		f, err := filter.ParseJSON([]byte(s))
		if err != nil {
			return r, bad("hub.filter: %v", err)
		}
		if !f.IsZero() {
			r.Filter = s
		}
	}
	if modes, ok := v["hub.verify"]; ok {
		r.Legacy = true
		for _, m := range modes { // in order of preference (PuSH 0.3)
			if m == "sync" || m == "async" {
				r.Sync = m == "sync"
				break
			}
		}
	}
	r.VerifyToken = v.Get("hub.verify_token")
	if len(r.VerifyToken) > MaxVerifyTokenLen {
		return r, bad("hub.verify_token is longer than %d bytes", MaxVerifyTokenLen)
	}
	return r, nil
}

// parsePublish collects hub.url, hub.url[] and hub.topic values, each
// possibly a comma-separated list, in order, without duplicates.
func parsePublish(v url.Values, r Request) (Request, error) {
	seen := make(map[string]bool)
	for _, name := range []string{"hub.url", "hub.url[]", "hub.topic"} {
		for _, val := range v[name] {
			for _, u := range strings.Split(val, ",") {
				u = strings.TrimSpace(u)
				if u == "" || seen[u] {
					continue
				}
				if err := checkURL(name, u); err != nil {
					return r, err
				}
				if err := event.ValidateTopic(u); err != nil {
					return r, bad("%s: %v", name, err)
				}
				if len(r.URLs) == MaxPublishTopics {
					return r, bad("more than %d topics in one publish", MaxPublishTopics)
				}
				seen[u] = true
				r.URLs = append(r.URLs, u)
				if name != "hub.topic" {
					r.Legacy = true
				}
			}
		}
	}
	if len(r.URLs) == 0 {
		return r, bad("hub.url or hub.topic is missing")
	}
	return r, nil
}

// checkURL requires an absolute http or https URL without a fragment.
func checkURL(name, s string) error {
	if s == "" {
		return bad("%s is missing", name)
	}
	if len(s) > MaxURLLen {
		return bad("%s is longer than %d bytes", name, MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("%s is not a URL", name)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return bad("%s must be an absolute http or https URL", name)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return bad("%s must not have a fragment", name)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
