// Package upstream is hubbub's subscriber side of WebSub (a "conduit", as
// Flickr's flickr-conduit): hubbub subscribes to a topic of another hub,
// answers that hub's verification of intent, checks the signature of what
// it pushes, renews the lease before it ends, and republishes the content
// into a local topic, from where browsers get it over SSE or WebSocket.
//
// # Flow
//
//   - Add (API, CLI, config through Ensure) stores an Upstream in state
//     pending with a fresh random secret and enqueues a durable
//     "upstream.subscribe" task, which POSTs hub.mode=subscribe to the
//     remote hub with hub.callback = PUBLIC_URL/upstream/{id}/{token},
//     token being 128 random bits kept with the upstream. Failures
//     are retried by the task runner; a 4xx ends in state failed.
//   - The remote hub GETs the callback (Handler): a subscribe
//     verification for the topic of a pending or active upstream, while a
//     subscribe request is outstanding, is answered with the challenge,
//     makes the upstream active with the granted lease (clamped to
//     MinLease..MaxLease), and schedules a renewal (another subscribe
//     task) at 80% of it; hub.mode=denied records the reason (state
//     denied) and schedules a new subscribe after DenialRetry (1 minute,
//     doubling up to a day; Add restarts it at once). Anything else, and
//     any request whose URL lacks the upstream's token, is answered 404.
//   - The remote hub POSTs content to the callback: it is dropped (still
//     answered 2xx, as the spec asks, and counted) unless X-Hub-Signature
//     is a correct HMAC with our secret; then feeds are republished entry
//     by entry through websub.PublishFeed (new or changed entries only),
//     other content as one event with its Content-Type.
//   - Remove marks the upstream unsubscribing and enqueues an
//     "upstream.unsubscribe" task; the record is deleted when the remote
//     hub verifies the unsubscription (or refuses it with a 4xx).
package upstream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/websub"
)

// Task kinds registered by Register.
const (
	KindSubscribe   = "upstream.subscribe"
	KindUnsubscribe = "upstream.unsubscribe"
)

// States of an Upstream.
const (
	StatePending       = "pending"       // subscription requested, not verified yet
	StateActive        = "active"        // verified; content is republished
	StateFailed        = "failed"        // the remote hub refused the request (4xx)
	StateDenied        = "denied"        // the remote hub sent hub.mode=denied
	StateUnsubscribing = "unsubscribing" // removed; waiting for the hub's verification
)

// Defaults for Options fields left zero.
const (
	DefaultLease       = 10 * 24 * time.Hour
	DefaultHTTPTimeout = 30 * time.Second
	DefaultMaxBody     = 8 << 20
	// RenewAt is the fraction of the granted lease after which the
	// subscription is renewed.
	RenewAt = 0.8
	// MinLease and MaxLease bound the lease a remote hub's verification
	// may grant (hub.lease_seconds): outside values are clamped.
	MinLease = time.Minute
	MaxLease = 365 * 24 * time.Hour
)

// DenialRetry is how long after its n-th denial in a row (n >= 1) a
// denied upstream is subscribed again: a minute, doubling, at most a day.
// No jitter: there is one upstream per (hub, topic), nothing to spread.
func DenialRetry(n int) time.Duration {
	return backoff.Policy{Base: time.Minute, Max: 24 * time.Hour}.Ceiling(n - 1)
}

// Upstream is one subscription of hubbub to a topic of another hub.
type Upstream struct {
	ID    string `json:"id"`    // ID(Hub, Topic, Into)
	Hub   string `json:"hub"`   // the remote hub's URL
	Topic string `json:"topic"` // the remote topic URL (hub.topic)
	Into  string `json:"into"`  // the local topic content is republished into
	// Secret is the hub.secret we generated; pushed content must be signed
	// with it. Never shown by the API.
	Secret string `json:"secret,omitempty"`
	// Token is the unguessable last segment of the callback URL
	// (PUBLIC_URL/upstream/{id}/{token}): 128 random bits in hex. The
	// remote hub's verification GETs and denial notices are
	// unauthenticated, so the token is what makes them unforgeable.
	// Upstreams stored before tokens existed get one at their next
	// (re)subscribe.
	Token string `json:"token,omitempty"`
	// Requested is the mode ("subscribe" or "unsubscribe") of the last
	// request sent to the remote hub that it has not verified yet, "" when
	// none: a verification is answered only for a request outstanding.
	Requested string `json:"requested,omitempty"`
	// Denials counts the denial notices since the last verification; a
	// denied upstream is subscribed again after DenialRetry(Denials).
	Denials int `json:"denials,omitempty"`
	// LeaseSeconds is the lease granted at the last verification (or
	// asked for, before one).
	LeaseSeconds int64     `json:"lease_seconds"`
	State        string    `json:"state"`
	Expires      time.Time `json:"expires,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	Created      time.Time `json:"created"`
	Verified     time.Time `json:"verified,omitzero"`
}

// Spec names an upstream to add: the remote hub, its topic and the local
// topic to republish into.
type Spec struct {
	Hub   string `json:"hub"`
	Topic string `json:"topic"`
	Into  string `json:"into"`
}

// ID returns the id of the upstream of (hub, topic, into): adding the same
// triple twice names the same upstream.
func ID(hubURL, topic, into string) string {
	sum := sha256.Sum256([]byte(hubURL + "\x00" + topic + "\x00" + into))
	return hex.EncodeToString(sum[:12])
}

// Options configure a Manager. Hub, Runner, and Store or Dir are required.
type Options struct {
	Hub    *hub.Hub      // where content is republished
	Runner *tasks.Runner // the server's shared runner
	// Store keeps the upstreams; the Manager owns it and closes it. When
	// nil, a one-node Store is opened in Dir (OpenPebble).
	Store Store
	Dir   string // the one-node store's directory (DATA/upstream)
	// PublicURL is hubbub's URL as the remote hubs reach it; callbacks are
	// PublicURL/upstream/{id}. Add fails while it is empty.
	PublicURL string
	// AllowPrivate lets requests to remote hubs reach loopback and private
	// addresses (as websub.Options.AllowPrivate).
	AllowPrivate bool
	Logger       *slog.Logger      // slog.Default when nil
	Now          func() time.Time  // time.Now when nil; leases and renewals
	Lease        time.Duration     // hub.lease_seconds asked for (DefaultLease)
	HTTPTimeout  time.Duration     // per request to a remote hub (DefaultHTTPTimeout)
	MaxBody      int64             // largest content body accepted (DefaultMaxBody)
	Client       *http.Client      // for requests to remote hubs; websub.NewClient(AllowPrivate, HTTPTimeout) when nil
	Retry        tasks.KindOptions // options of both task kinds
}

// Manager keeps the upstreams and serves their callbacks and API. It is
// safe for concurrent use.
type Manager struct {
	o        Options
	log      *slog.Logger
	st       Store
	client   *http.Client
	rejected atomic.Uint64
	received atomic.Uint64
}

// New opens (creating if needed) the upstreams in o.Dir, or takes o.Store.
// The caller must
// Register it with the runner before the runner runs, and Close it after
// the runner has returned.
func New(o Options) (*Manager, error) {
	if o.Hub == nil || o.Runner == nil || (o.Dir == "" && o.Store == nil) {
		return nil, errors.New("upstream: Hub, Runner, and Store or Dir are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	st := o.Store
	if st == nil {
		var err error
		if st, err = OpenPebble(o.Dir, o.Logger); err != nil {
			return nil, err
		}
	}
	m := &Manager{o: o, log: o.Logger, st: st, client: o.Client}
	if m.client == nil {
		m.client = websub.NewClient(o.AllowPrivate, o.HTTPTimeout)
	}
	return m, nil
}

// Register registers the handlers of KindSubscribe and KindUnsubscribe
// with r. Call it once, before r runs.
func (m *Manager) Register(r *tasks.Runner) {
	r.Handle(KindSubscribe, m.handleSubscribe, m.o.Retry)
	r.Handle(KindUnsubscribe, m.handleUnsubscribe, m.o.Retry)
}

// Close closes the store. Call it after the runner has returned and the
// HTTP server has stopped; later calls to other methods fail.
func (m *Manager) Close() error { return m.st.Close() }

// Rejected returns how many pushes were dropped for a missing or wrong
// signature (or for an upstream in no state to receive) since New.
func (m *Manager) Rejected() uint64 { return m.rejected.Load() }

// Received returns how many signed pushes were republished since New.
func (m *Manager) Received() uint64 { return m.received.Load() }

// Get returns the upstream id, secret included.
func (m *Manager) Get(ctx context.Context, id string) (Upstream, bool, error) {
	return m.st.Get(ctx, id)
}

// List returns every upstream in id order, secrets included.
func (m *Manager) List(ctx context.Context) ([]Upstream, error) { return m.st.List(ctx) }

// Callback returns the callback URL of u: PUBLIC_URL/upstream/{id}/{token}
// (without the token segment for an upstream that has none yet).
func (m *Manager) Callback(u Upstream) string {
	if u.Token == "" {
		return m.o.PublicURL + "/upstream/" + u.ID
	}
	return m.o.PublicURL + "/upstream/" + u.ID + "/" + u.Token
}

// Validate checks a spec: absolute http(s) URLs for Hub and Topic, a valid
// concrete local topic for Into.
func (s Spec) Validate() error {
	for name, v := range map[string]string{"hub": s.Hub, "topic": s.Topic} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return event.Invalid("upstream %s %q is not an absolute http or https URL", name, v)
		}
	}
	if err := event.ValidateTopic(s.Into); err != nil {
		return event.Invalid("upstream into: %v", err)
	}
	return nil
}

// Add adds the upstream of s, or returns the existing one of the same
// (hub, topic, into): unchanged when it is pending or active, else
// (failed, denied, unsubscribing) subscribed again with a new secret. A
// new or restarted upstream is pending, with a subscribe task enqueued.
// Errors that are the caller's fault satisfy event.IsValidation.
func (m *Manager) Add(ctx context.Context, s Spec) (Upstream, error) {
	if err := s.Validate(); err != nil {
		return Upstream{}, err
	}
	if m.o.PublicURL == "" {
		return Upstream{}, event.Invalid("upstream: hubbub needs --public-url for remote hubs to reach its callbacks")
	}
	id := ID(s.Hub, s.Topic, s.Into)
	fresh := Upstream{ID: id, Hub: s.Hub, Topic: s.Topic, Into: s.Into, Secret: newSecret(), Token: newToken(),
		LeaseSeconds: int64(m.o.Lease / time.Second), State: StatePending, Created: m.o.Now()}
	// Atomic against other nodes adding the same upstream (every node of a
	// deployment may name it in its configuration): one record, one secret.
	for range 16 { // bounded: each round loses a race to a concurrent Remove or Add
		u, created, err := m.st.Create(ctx, fresh)
		if err != nil {
			return Upstream{}, err
		}
		if !created {
			if u.State == StatePending || u.State == StateActive {
				return u, nil
			}
			// Failed, denied or unsubscribing: subscribe again, unless
			// another node did first.
			u, ok, err := m.st.Update(ctx, id, func(cur *Upstream) error {
				if cur.State == StatePending || cur.State == StateActive {
					return errRestarted
				}
				*cur = fresh
				return nil
			})
			switch {
			case errors.Is(err, errRestarted):
				return u, nil
			case err != nil:
				return Upstream{}, err
			case !ok:
				continue // removed meanwhile; create it
			}
		}
		if err := m.enqueue(ctx, KindSubscribe, id, time.Time{}); err != nil {
			return fresh, err
		}
		return fresh, nil
	}
	return Upstream{}, fmt.Errorf("upstream %s: changed by others while adding it; try again", id)
}

// errRestarted: another node made the upstream pending or active first.
var errRestarted = errors.New("upstream: restarted by another node")

// Ensure adds every spec (see Add), for upstreams named by configuration
// at start-up. It stops at the first error.
func (m *Manager) Ensure(ctx context.Context, specs []Spec) error {
	for _, s := range specs {
		if _, err := m.Add(ctx, s); err != nil {
			return fmt.Errorf("upstream %s %s -> %s: %w", s.Hub, s.Topic, s.Into, err)
		}
	}
	return nil
}

// Remove unsubscribes the upstream id: it stops republishing at once, and
// the record goes when the remote hub verifies the unsubscription. An
// upstream that was failed or denied is deleted at once. It reports
// whether the upstream existed.
func (m *Manager) Remove(ctx context.Context, id string) (bool, error) {
	u, ok, err := m.st.Get(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	if u.State == StateFailed || u.State == StateDenied {
		return true, m.st.Delete(ctx, id)
	}
	if _, _, err := m.st.Update(ctx, id, func(u *Upstream) error { u.State = StateUnsubscribing; return nil }); err != nil {
		return true, err
	}
	return true, m.enqueue(ctx, KindUnsubscribe, id, time.Time{})
}

func (m *Manager) enqueue(ctx context.Context, kind, id string, at time.Time) error {
	if _, _, err := m.o.Runner.Enqueue(ctx, tasks.Task{Kind: kind, Key: id, Payload: []byte(id), RunAt: at}); err != nil {
		return fmt.Errorf("upstream: enqueue %s: %w", kind, err)
	}
	return nil
}

// newSecret returns 32 random bytes in hex.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

// newToken returns 16 random bytes in hex: a callback token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

// ParseSpecs reads upstreams from configuration: each is HUB_URL,TOPIC_URL,INTO.
// The items may arrive already split on commas (a comma-separated
// environment variable), so all items are joined with commas and read
// three at a time. URLs containing commas cannot be given this way.
func ParseSpecs(items []string) ([]Spec, error) {
	var parts []string
	for _, p := range strings.Split(strings.Join(items, ","), ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts)%3 != 0 {
		return nil, fmt.Errorf("upstream: want HUB_URL,TOPIC_URL,INTO triples, got %d items", len(parts))
	}
	var out []Spec
	for i := 0; i < len(parts); i += 3 {
		s := Spec{Hub: parts[i], Topic: parts[i+1], Into: parts[i+2]}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// SubscribeTask is the task that (re)subscribes the upstream id at at
// (now when zero), for callers that schedule one themselves.
func SubscribeTask(id string, at time.Time) tasks.Task {
	return tasks.Task{Kind: KindSubscribe, Key: id, Payload: []byte(id), RunAt: at}
}
