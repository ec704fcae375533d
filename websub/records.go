package websub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/hubbub/hubbub/event"
)

// Subscription states.
const (
	StateActive  = "active"  // deliveries succeed, or have not failed FailingAfter times in a row
	StateFailing = "failing" // FailingAfter or more consecutive failures; retried with longer delays
	// StateSuspended: deliveries failed without a break for SuspendAfter;
	// no more are tried (no POSTs, no tasks) until Resume. The lease
	// still ends as usual.
	StateSuspended = "suspended"
)

// Subscription is the durable record of one verified (topic, callback)
// pair. Records hold only verified subscriptions: a request whose
// verification has not succeeded has no record.
type Subscription struct {
	ID       string `json:"id"`    // SubscriptionID(Topic, Callback)
	Topic    string `json:"topic"` // hub.topic as the subscriber sent it (rel="self")
	Callback string `json:"callback"`
	// LogTopic is the topic of hubbub's log the subscription reads: the
	// local topic name for a URL of a topic hubbub hosts
	// (PUBLIC_URL/topics/NAME), else Topic itself. ListByTopic indexes it.
	LogTopic string `json:"log_topic"`
	// HubURL is the hub's WebSub endpoint sent in rel="hub" links
	// (PublicURL/hub, or derived from the subscription request; records
	// from before this rule may hold the URL the request was POSTed to).
	HubURL string `json:"hub_url"`
	// Secret signs deliveries when not empty, with SignatureAlgorithm.
	Secret             string `json:"secret,omitempty"`
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"`
	// Batch > 1 delivers JSON arrays of up to Batch event objects.
	Batch int `json:"batch,omitempty"`
	// BatchBytes (with Batch) caps a batch's body at this many bytes; an
	// event larger than it still goes, alone. 0 is no cap.
	BatchBytes int `json:"batch_bytes,omitempty"`
	// BatchWaitMS (with Batch) lets a partial batch wait until its oldest
	// event is this old, for more events to fill it. 0 sends at once.
	BatchWaitMS int `json:"batch_wait_ms,omitempty"`
	// Filter is the hub.filter JSON (or the filter parameters of a topic
	// URL of hubbub's, in that form), validated by filter.ParseJSON; ""
	// for none.
	Filter string `json:"filter,omitempty"`
	// Format is "atom" or "rss" for a subscription to a feed URL of one of
	// hubbub's topics (BASE/topics/NAME?format=atom): its deliveries are
	// feeds of that format. "" delivers events as published.
	Format       string    `json:"format,omitempty"`
	LeaseSeconds int64     `json:"lease_seconds"`
	Expires      time.Time `json:"expires"`
	Created      time.Time `json:"created"`
	Verified     time.Time `json:"verified"`

	// Cursor is the position after the last event delivered (or skipped by
	// the filter) in the topic's log. It only moves forward, after a 2xx.
	Cursor event.Position `json:"cursor"`
	// Failures counts consecutive failed deliveries; a 2xx resets it.
	Failures int `json:"failures,omitempty"`
	// FailingSince is when the first of those failures happened (zero
	// while Failures is 0); SuspendAfter counts from it.
	FailingSince time.Time `json:"failing_since,omitzero"`
	State        string    `json:"state"`
	LastError    string    `json:"last_error,omitempty"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	// NextAttempt is when a failing delivery may be tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Dropped counts events this subscription never received because
	// history retention removed them first.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Expired reports whether the lease has ended at now.
func (s *Subscription) Expired(now time.Time) bool { return !now.Before(s.Expires) }

// SubscriptionID is the stable id of the subscription of callback to
// topic: 32 hex digits of SHA-256 over both. Re-subscribing keeps the id.
func SubscriptionID(topic, callback string) string {
	sum := sha256.Sum256([]byte(topic + "\x00" + callback))
	return hex.EncodeToString(sum[:16])
}

// FetchState is what the hub remembers about a topic URL between thin
// pings, for conditional GETs.
type FetchState struct {
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`
	// Follow is the state of a followed outside feed (package follow
	// keeps it under its own keys, opaque here).
	Follow json.RawMessage `json:"follow,omitempty"`
}

// Verification states.
const (
	VerifyPending = "pending" // queued or being retried: the callback could not be reached yet
	VerifyFailed  = "failed"  // the callback refused, or could not be reached in verifyAttempts tries
	VerifyDenied  = "denied"  // the hub refused the request (Options.Allow)
)

// Verification is the state of the latest subscribe or unsubscribe request
// for a (topic, callback) pair whose verification of intent has not (yet)
// succeeded: pending while it is tried, failed or denied once it no longer
// is, with the reason the subscriber would be told. A success removes it
// (the subscription, or its absence, shows the outcome); so does Run's
// sweep, VerificationRetention after its last change, keeping at most
// MaxFinishedVerifications failed or denied ones. Requests answered at
// once (hub.verify=sync: 204 or 409) leave none.
type Verification struct {
	ID       string `json:"id"` // SubscriptionID(Topic, Callback)
	Topic    string `json:"topic"`
	Callback string `json:"callback"`
	Mode     string `json:"mode"`  // subscribe or unsubscribe
	State    string `json:"state"` // VerifyPending, VerifyFailed or VerifyDenied
	// Attempts counts the tries made (each a verification request, or an
	// attempt at one that could not reach the callback).
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // pending: when it is tried again
	Requested   time.Time `json:"requested"`
	Updated     time.Time `json:"updated"`
}

// Finished reports whether v is no longer being tried.
func (v *Verification) Finished() bool { return v.State != VerifyPending }

// ErrNotFound is returned (wrapped) by Records.Update when the
// subscription does not exist.
var ErrNotFound = errors.New("websub: no such subscription")

// LazyUpdater is an optional capability of Records: UpdateLazy is Update
// that returns once the change is applied and seen by readers, before it
// is durable; the backend makes it durable within a short bound of its
// own (the writes of that time sharing one fsync) and at Close. The hub
// uses it for cursor advances only: a crash may lose the last ones, and
// their events are delivered again (at least once), never skipped, since
// a cursor moves only past events already delivered.
type LazyUpdater interface {
	UpdateLazy(ctx context.Context, id string, fn func(s *Subscription) error) (Subscription, error)
}

// ErrNoChange, returned by an Update function, leaves the record as it was;
// Update then returns the record unchanged and a nil error.
var ErrNoChange = errors.New("websub: no change")

// Records stores subscriptions durably. Every method is safe for concurrent
// use; every mutation is atomic and durable (synced) when it returns
// without error, and survives restarts. Count is asked for every topic
// written to (by the enqueuer, off the publish path) and must be cheap:
// from memory, or from a cache kept true. ListByTopic is asked only for
// topics whose Count is not zero and may do I/O.
type Records interface {
	// Put stores s (keyed by s.ID, which must equal SubscriptionID(s.Topic,
	// s.Callback)), replacing any record of that (topic, callback).
	Put(ctx context.Context, s Subscription) error
	// Get returns the subscription with id, and whether it exists.
	Get(ctx context.Context, id string) (Subscription, bool, error)
	// Update atomically reads the subscription with id, lets fn change it
	// and stores the result; fn returning ErrNoChange stores nothing, any
	// other error aborts and is returned. fn may be called more than once
	// by backends that retry optimistically, and must not have side
	// effects. ErrNotFound when there is no such subscription.
	Update(ctx context.Context, id string, fn func(s *Subscription) error) (Subscription, error)
	// Delete removes the subscription with id and reports whether it
	// existed.
	Delete(ctx context.Context, id string) (bool, error)
	// DeleteIf atomically removes the subscription with id if cond holds
	// for it, and reports whether it did. cond may be called more than
	// once by backends that retry optimistically, and must not have side
	// effects.
	DeleteIf(ctx context.Context, id string, cond func(s Subscription) bool) (bool, error)
	// List returns up to limit subscriptions with an id greater than after
	// ("" for the first page), in id order.
	List(ctx context.Context, after string, limit int) ([]Subscription, error)
	// ListByTopic returns the subscriptions whose LogTopic is topic (in no
	// given order).
	ListByTopic(topic string) []Subscription
	// Count returns the number of subscriptions whose LogTopic is topic.
	// With records shared by several processes, a change made elsewhere
	// may be counted a moment late (see the subscribe path's delivery
	// check).
	Count(topic string) int
	// FetchState returns what was remembered about fetching topic.
	FetchState(ctx context.Context, topic string) (FetchState, bool, error)
	// PutFetchState remembers st for topic.
	PutFetchState(ctx context.Context, topic string, st FetchState) error

	// PutVerification stores v, replacing the verification with its ID.
	PutVerification(ctx context.Context, v Verification) error
	// DeleteVerification removes the verification with id, if there is
	// one.
	DeleteVerification(ctx context.Context, id string) error
	// ListVerifications returns up to limit verifications with an id
	// greater than after ("" for the first page), in id order.
	ListVerifications(ctx context.Context, after string, limit int) ([]Verification, error)
}
