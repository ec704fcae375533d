// Package websub is the hub side of W3C WebSub and PubSubHubbub 0.3/0.4 on
// hubbub's durable task system.
//
// # Flow
//
//   - ServeHTTP takes subscription requests (POST / and /hub, form-encoded)
//     and enqueues a "verify" task; the record of a (topic, callback) pair
//     is written only after verification of intent succeeds
//     (verify.go). hub.verify=sync verifies inline instead.
//   - A thin ping (hub.mode=publish) enqueues a "fetch" task keyed by the
//     topic URL, so a burst of pings makes one fetch; the fetch publishes
//     new or changed feed entries into the topic's log (fetch.go).
//   - OnCommit, called from the store's commit listener, notes which
//     subscriptions have new events; a goroutine turns that into "deliver"
//     tasks keyed by subscription id (deliver.go). The deliver task reads
//     the log from the subscription's cursor, POSTs, and advances the
//     cursor only after a 2xx.
//   - Run reconciles at start and periodically: each subscription whose
//     cursor is behind its topic's head gets a deliver task, and expired
//     leases are removed (sweep.go). This is the backstop that makes
//     delivery survive a dropped notification or a crash between a commit
//     and its enqueue.
//
// # Status codes
//
// Subscription requests get 202 Accepted (asynchronous verification), or
// with hub.verify=sync 204 No Content after a successful verification and
// 409 Conflict (PuSH 0.3: "verification failed") otherwise. Publish pings
// get 204 No Content when they name topics with hub.url (the PuSH 0.3 and
// Google form, whose publishers expect 204), 202 Accepted when they use only
// hub.topic (the WebSub-era form). Errors are 4xx with a text/plain reason.
package websub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/tasks"
)

// Task kinds registered by Register.
const (
	KindVerify  = "websub.verify"
	KindDeliver = "websub.deliver"
	KindFetch   = "websub.fetch"
)

// Defaults for Options fields left zero.
const (
	DefaultLease              = 10 * 24 * time.Hour
	DefaultMinLease           = 5 * time.Minute
	DefaultMaxLease           = 365 * 24 * time.Hour
	DefaultSignatureAlgorithm = "sha256"
	DefaultHTTPTimeout        = 30 * time.Second
	DefaultRetryBase          = 5 * time.Second
	DefaultRetryMax           = time.Hour
	DefaultFailingAfter       = 5
	DefaultReconcileInterval  = time.Minute
	DefaultDeliverConcurrency = 32
	DefaultPerHostConcurrency = 8
	DefaultMaxFetchBytes      = 1 << 20
	MaxSecretLen              = 199 // hub.secret must be under 200 bytes
	MaxBatch                  = 1000
	// MaxBatchBytes bounds hub.batch_bytes: the largest JSON batch body a
	// subscriber may ask for.
	MaxBatchBytes = 16 << 20
	// MaxBatchWaitMS bounds hub.batch_wait_ms: how long a subscriber may
	// ask a partial batch to wait for more events.
	MaxBatchWaitMS = 60_000
	// MaxBackfill bounds hub.backfill (history retention bounds it too).
	MaxBackfill = 100_000
)

// Options configure a Hub. Hub, Log, Records and Tasks are required.
type Options struct {
	Hub     *hub.Hub      // publishes thin-ping content, reads for deliveries
	Log     store.Log     // Head of topics (usually Hub.Log())
	Records Records       // subscriptions and fetch state
	Tasks   *tasks.Runner // the server's shared runner; Enqueue goes through it

	// PublicURL is hubbub's external base URL (--public-url): rel="hub"
	// links name PublicURL/hub, topic URLs PublicURL/topics/NAME, and it
	// goes in the User-Agent. Empty: derived from each subscription
	// request's scheme and Host.
	PublicURL string

	DefaultLease time.Duration // DefaultLease when zero
	MinLease     time.Duration // DefaultMinLease when zero; shorter requests are raised to it
	MaxLease     time.Duration // DefaultMaxLease when zero; longer requests are lowered to it
	// SignatureAlgorithm is used when a subscription asks for none:
	// sha1, sha256 (default), sha384 or sha512.
	SignatureAlgorithm string

	// AllowPrivate lets outgoing requests reach loopback, private,
	// link-local and multicast addresses (tests, self-hosters). Off by
	// default: such dials are refused when the address is resolved.
	AllowPrivate bool
	// Allow, when set, is asked before verifying a subscribe request; a
	// non-nil error denies it: the callback gets a hub.mode=denied GET with
	// the error's text as hub.reason.
	Allow func(topic, callback string) error
	// Authorize, when set, is asked about every subscribe, unsubscribe
	// and publish (thin ping) request, with the local topic: for
	// (un)subscribe the log topic after mapping BASE/topics/NAME to NAME,
	// for a ping each topic it publishes into. status 0 allows it;
	// otherwise the request is answered with status and reason as
	// text/plain (401 adds WWW-Authenticate: Bearer). A non-zero notAfter
	// on a subscribe caps the subscription: its lease (as sent in the
	// verification request) and its expiry end no later than notAfter.
	// nil allows everything. It is called on the request's goroutine and
	// may block only briefly.
	Authorize func(r *http.Request, mode, topic string) (notAfter time.Time, status int, reason string)
	// ClientAddr names a request's client for the subscription rate
	// limit (the host of RemoteAddr when nil; a trusted proxy's
	// X-Forwarded-For belongs here).
	ClientAddr func(*http.Request) string
	// MaxPerHost bounds the subscriptions whose callbacks are on one host
	// (CallbackHost), across topics: DefaultMaxPerHost when zero, none
	// when negative. Over it a new subscription gets 403.
	MaxPerHost int
	// SubscribeRate is how many subscribe and unsubscribe requests per
	// second one client (ClientAddr) may make, with a burst of twice that:
	// DefaultSubscribeRate when zero, no limit when negative. Over it a
	// request gets 429 with Retry-After.
	SubscribeRate float64

	Logger   *slog.Logger // slog.Default when nil
	Observer Observer     // metrics; none when nil

	HTTPTimeout time.Duration // per outgoing request (DefaultHTTPTimeout)
	// PerHostConcurrency is the requests in flight per host a host starts
	// with (DefaultPerHostConcurrency); deliveries to a host that answers
	// within 100 ms may grow it up to DeliverConcurrency, and slow (over
	// 1 s) or failed ones shrink it down to 1 (see hostLimiter).
	PerHostConcurrency int
	DeliverConcurrency int   // deliver tasks running at once (DefaultDeliverConcurrency)
	MaxFetchBytes      int64 // largest topic body fetched (DefaultMaxFetchBytes); a larger one fails the fetch

	// RetryBase and RetryMax bound the delay after a failed delivery:
	// after n consecutive failures it is drawn from [c/2, c] where
	// c = min(RetryMax, RetryBase*2^(n-1)); a Retry-After header (capped at
	// RetryMax) replaces it.
	RetryBase time.Duration
	RetryMax  time.Duration
	// FailingAfter consecutive failures mark a subscription failing
	// (DefaultFailingAfter).
	FailingAfter int
	// SuspendAfter is how long a subscription's deliveries may fail
	// without a success in between before it is suspended
	// (StateSuspended): counted from its first failure, checked at each
	// failure. 0 (the zero value) never suspends.
	SuspendAfter time.Duration
	// ReconcileInterval is how often Run looks for subscriptions behind
	// their topic's head and for expired leases (DefaultReconcileInterval).
	ReconcileInterval time.Duration
	// FetchMinInterval spaces the fetches of one topic URL on this node
	// (see fetchGate); 0 means no spacing.
	FetchMinInterval time.Duration

	// Now is the clock for leases and retry times (time.Now when nil).
	Now func() time.Time
}

// Hub is the WebSub hub. It is safe for concurrent use.
type Hub struct {
	o      Options
	retry  backoff.Policy // RetryBase, RetryMax
	log    *slog.Logger
	obs    Observer
	client *http.Client
	hosts  *hostLimiter
	// verifying bounds the verifications in flight per callback host
	// (verifyPerHost); rates the subscription requests per client.
	verifying *hostLimiter
	// advanceUpdate stores cursor advances: the records' UpdateLazy where
	// they have it (a crash re-delivers, never skips), else Update.
	advanceUpdate func(ctx context.Context, id string, fn func(s *Subscription) error) (Subscription, error)
	rates         *rateLimits
	gate          *fetchGate

	// pending holds the topics OnCommit saw events of that the enqueuer
	// has not looked at yet. It is a set, so it is bounded by the number
	// of topics written to whatever the event rate.
	pendMu  sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // 1-buffered
	quit    chan struct{}
	done    chan struct{}

	closeOnce sync.Once
}

// New checks o and returns a Hub. It starts the goroutine that turns
// OnCommit notifications into deliver tasks; Close stops it.
func New(o Options) (*Hub, error) {
	if o.Hub == nil || o.Records == nil || o.Tasks == nil {
		return nil, errors.New("websub: Options.Hub, Records and Tasks are required")
	}
	if o.Log == nil {
		o.Log = o.Hub.Log()
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = DefaultLease
	}
	if o.MinLease <= 0 {
		o.MinLease = min(DefaultMinLease, o.DefaultLease)
	}
	if o.MaxLease <= 0 {
		o.MaxLease = max(DefaultMaxLease, o.DefaultLease)
	}
	if o.MinLease > o.MaxLease || o.DefaultLease < o.MinLease || o.DefaultLease > o.MaxLease {
		return nil, fmt.Errorf("websub: leases must satisfy min %v <= default %v <= max %v", o.MinLease, o.DefaultLease, o.MaxLease)
	}
	if o.SignatureAlgorithm == "" {
		o.SignatureAlgorithm = DefaultSignatureAlgorithm
	}
	if !validAlgorithm(o.SignatureAlgorithm) {
		return nil, fmt.Errorf("websub: unknown signature algorithm %q (want sha1, sha256, sha384 or sha512)", o.SignatureAlgorithm)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.PerHostConcurrency <= 0 {
		o.PerHostConcurrency = DefaultPerHostConcurrency
	}
	if o.DeliverConcurrency <= 0 {
		o.DeliverConcurrency = DefaultDeliverConcurrency
	}
	if o.MaxFetchBytes <= 0 {
		o.MaxFetchBytes = DefaultMaxFetchBytes
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = max(DefaultRetryMax, o.RetryBase)
	}
	if o.FailingAfter <= 0 {
		o.FailingAfter = DefaultFailingAfter
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = DefaultReconcileInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPerHost == 0 {
		o.MaxPerHost = DefaultMaxPerHost
	}
	if o.SubscribeRate == 0 {
		o.SubscribeRate = DefaultSubscribeRate
	}
	h := &Hub{
		o:         o,
		retry:     backoff.Policy{Base: o.RetryBase, Max: o.RetryMax},
		log:       o.Logger.With("component", "websub"),
		obs:       o.Observer,
		client:    newClient(o.AllowPrivate, o.HTTPTimeout, max(o.PerHostConcurrency, o.DeliverConcurrency)),
		hosts:     newAdaptiveLimiter(o.PerHostConcurrency, o.DeliverConcurrency),
		verifying: newHostLimiter(verifyPerHost),
		rates:     newRateLimits(o.SubscribeRate),
		gate:      newFetchGate(o.FetchMinInterval),
		pending:   make(map[string]struct{}),
		wake:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	h.advanceUpdate = o.Records.Update
	if lu, ok := o.Records.(LazyUpdater); ok {
		h.advanceUpdate = lu.UpdateLazy
	}
	go h.enqueueLoop()
	return h, nil
}

// Register registers the handlers of the verify, deliver and fetch kinds
// on r (the runner given as Options.Tasks). Call it once, before r.Run.
func (h *Hub) Register(r *tasks.Runner) {
	// handleVerify counts its own tries and picks its own waits; the
	// runner's limit is only a backstop for errors of the hub's own
	// (records, queue).
	r.Handle(KindVerify, h.handleVerify, tasks.KindOptions{Concurrency: verifyConcurrency, MaxAttempts: 2 * verifyAttempts,
		Backoff: h.retry})
	// Unlimited attempts: a subscription is never dropped before its lease
	// ends; the handler picks its own delays (RetryAfter).
	r.Handle(KindDeliver, h.handleDeliver, tasks.KindOptions{Concurrency: h.o.DeliverConcurrency, MaxAttempts: -1})
	r.Handle(KindFetch, h.handleFetch, tasks.KindOptions{Concurrency: 4, MaxAttempts: 5,
		Backoff: h.retry})
}

// Close stops the enqueuer goroutine. Notifications not yet enqueued are
// dropped; Run's reconciliation at the next start delivers their events.
// It does not close Records, the runner or the store (their owner does).
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		close(h.quit)
		<-h.done
		h.client.CloseIdleConnections()
	})
	return nil
}

func (h *Hub) now() time.Time { return h.o.Now() }

// Observer receives the hub's countable outcomes (for metrics). Methods
// are called from task goroutines and must not block. Embed NopObserver to
// stay compatible when methods are added.
type Observer interface {
	// Verified reports a verification of intent (mode subscribe,
	// unsubscribe) or a denial notice (mode denied), and its outcome.
	Verified(topic, callback, mode string, err error)
	// Delivered reports one delivery POST: events is how many events it
	// carried, status the HTTP status (0 for a network error).
	Delivered(sub *Subscription, events int, status int, err error)
	// Fetched reports a thin-ping fetch: how many events it published.
	Fetched(topic string, published int, err error)
	// Dropped reports events a subscription never received because
	// history retention removed them first.
	Dropped(sub *Subscription, n uint64)
	// Removed reports a subscription's end: reason is "unsubscribed",
	// "expired" or "gone" (the callback answered 410).
	Removed(sub *Subscription, reason string)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Verified(string, string, string, error)   {}
func (NopObserver) Delivered(*Subscription, int, int, error) {}
func (NopObserver) Fetched(string, int, error)               {}
func (NopObserver) Dropped(*Subscription, uint64)            {}
func (NopObserver) Removed(*Subscription, string)            {}

var _ Observer = NopObserver{}

// bg is a context for work started by the hub itself.
func bg(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}
