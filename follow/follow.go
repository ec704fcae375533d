// Package follow makes hubbub follow feeds it does not host, while someone
// listens (Superfeedr's model): a subscription of any kind that names an
// outside feed URL allowed by --feeds makes hubbub fetch the feed at once,
// then keep it fresh, publishing new and changed entries into the topic of
// that URL exactly as thin pings do (websub.PublishFeed).
//
// # Flow
//
//   - Listen (hub.Options.Interest) is called by the hub with the topics
//     of every subscription and read. For a topic that is an absolute
//     http(s) URL (not one of hubbub's own) it admits the URL (a --feeds
//     pattern covers it, it resolves to public addresses, fewer than Max
//     feeds are followed), counts the listener, and, for a feed not
//     followed yet, fetches it before returning (bounded by
//     Options.FirstFetch) so that the subscription's history holds the
//     feed's latest entries.
//   - Touch does the same for a WebSub subscribe request, without
//     waiting: the fetch runs as a task. A webhook subscription's lease
//     counts as listening for as long as it lasts (Options.Leases).
//   - Each followed feed has one durable poll task (KindPoll, keyed by
//     the topic) in the task queue, due at its next fetch, and a durable
//     State in the store the node already uses (StateStore: the webhook
//     records, Pebble or Redis). Both survive restarts.
//   - A poll task fetches with a conditional GET, within per-host bounds
//     (HostConcurrency in flight, fetches of one host HostInterval apart),
//     follows redirects (a 301 or 308 moves the feed for good, the topic
//     stays), publishes what is new, finds the feed's hub, and schedules
//     the next poll (Schedule). A 410 stops following.
//   - A feed that names a WebSub hub is subscribed to through the conduit
//     (Upstreams: package upstream, with its renewals and signatures), and
//     polled only every MaxInterval as a safety net.
//   - When a poll finds nobody listening (no live subscriber on this node,
//     no webhook lease) for Linger, the feed is no longer followed: its
//     upstream subscription is removed and no poll is scheduled. Nodes
//     sharing a store record when they last had listeners (Run), so one
//     node's poll does not stop a feed another node's subscribers hear.
package follow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"code.dny.dev/ssrf"

	"github.com/hubbub/hubbub/hub"
	"github.com/hubbub/hubbub/tasks"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/websub"
)

// KindPoll is the task kind of a followed feed's next fetch.
const KindPoll = "follow.poll"

// Defaults for Options fields left zero.
const (
	DefaultMax             = 1000
	DefaultLinger          = time.Hour
	DefaultMinInterval     = time.Minute
	DefaultMaxInterval     = time.Hour
	DefaultHostConcurrency = 2
	DefaultHostInterval    = time.Second
	DefaultFirstFetch      = 5 * time.Second
	DefaultHTTPTimeout     = 30 * time.Second
	DefaultMaxBytes        = 1 << 20
)

// maxRedirects bounds the redirects one fetch follows.
const maxRedirects = 5

// StateStore keeps the State of followed feeds durably; websub.Records
// (Pebble or Redis) is one. Keys are "follow:" + topic.
type StateStore interface {
	FetchState(ctx context.Context, key string) (websub.FetchState, bool, error)
	PutFetchState(ctx context.Context, key string, st websub.FetchState) error
}

// Upstreams subscribes to other hubs (*upstream.Manager).
type Upstreams interface {
	Add(ctx context.Context, s upstream.Spec) (upstream.Upstream, error)
	Get(ctx context.Context, id string) (upstream.Upstream, bool, error)
	Remove(ctx context.Context, id string) (bool, error)
}

// Observer is told of fetches, for metrics. Calls may come from any
// goroutine.
type Observer interface {
	// Fetched reports one fetch by its HTTP status ("200", "304", ...),
	// or "error" when there was no answer.
	Fetched(status string)
	// Entries reports entries published by a fetch (n > 0).
	Entries(n int)
}

// Options configure a Follower. Hub, Runner and State are required.
type Options struct {
	Hub    *hub.Hub      // where entries are published
	Runner *tasks.Runner // the server's shared runner
	State  StateStore
	// Leases counts the webhook subscriptions of a topic (websub
	// Records.Count); nil counts none.
	Leases func(topic string) int
	// Upstreams, when set with PublicURL, subscribes to the hubs feeds
	// name; nil polls every feed.
	Upstreams Upstreams
	// Patterns are the --feeds patterns: nothing is followed without one.
	Patterns []string
	// PublicURL is hubbub's own URL: its topic URLs are not outside
	// feeds, and it names the hub in the published entries.
	PublicURL string
	// AllowPrivate lets feeds be on loopback and private addresses
	// (tests, self-hosters), as websub.Options.AllowPrivate.
	AllowPrivate bool

	Max             int           // feeds followed at once on this node (DefaultMax)
	Linger          time.Duration // following goes on this long after the last listener (DefaultLinger)
	MinInterval     time.Duration // shortest poll interval (DefaultMinInterval)
	MaxInterval     time.Duration // longest poll interval, and the safety-net poll of pushed feeds (DefaultMaxInterval)
	HostConcurrency int           // fetches in flight per host (DefaultHostConcurrency)
	HostInterval    time.Duration // fetches of one host begin at least this far apart (DefaultHostInterval; negative: none)
	FirstFetch      time.Duration // how long a first subscription waits for the first fetch (DefaultFirstFetch)
	HTTPTimeout     time.Duration // per fetch (DefaultHTTPTimeout)
	MaxBytes        int64         // largest feed body (DefaultMaxBytes); larger fails the fetch

	Client   *http.Client // websub.NewClient(AllowPrivate, HTTPTimeout) when nil
	Logger   *slog.Logger // slog.Default when nil
	Observer Observer     // none when nil
	Now      func() time.Time
	// Resolve looks up a host's addresses (net.DefaultResolver when nil).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Follower follows outside feeds. It is safe for concurrent use.
type Follower struct {
	o        Options
	log      *slog.Logger
	patterns []Pattern
	sched    Schedule
	client   *http.Client
	guard    *ssrf.Guardian

	mu    sync.Mutex
	feeds map[string]*feed // by topic: feeds known to this node
	hosts map[string]*hostGate
}

// feed is what this node knows of one followed feed; the fields but sem
// are under Follower.mu.
type feed struct {
	sem       chan struct{} // held by whoever fetches or changes the state on this node
	listeners int           // live subscribers on this node
	listened  time.Time     // when the last of them left (or the last read)
	active    bool          // followed: a poll task is scheduled
	st        State         // the last state seen, for List
}

// New checks o and returns a Follower. Register it with the runner before
// the runner runs.
func New(o Options) (*Follower, error) {
	if o.Hub == nil || o.Runner == nil || o.State == nil {
		return nil, errors.New("follow: Hub, Runner and State are required")
	}
	f := &Follower{o: o, feeds: map[string]*feed{}, hosts: map[string]*hostGate{}}
	for _, s := range o.Patterns {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		f.patterns = append(f.patterns, p)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&f.o.Linger, DefaultLinger)
	def(&f.o.MinInterval, DefaultMinInterval)
	def(&f.o.MaxInterval, DefaultMaxInterval)
	def(&f.o.HostInterval, DefaultHostInterval)
	def(&f.o.FirstFetch, DefaultFirstFetch)
	def(&f.o.HTTPTimeout, DefaultHTTPTimeout)
	if f.o.MaxInterval < f.o.MinInterval {
		return nil, fmt.Errorf("follow: the longest interval (%s) is shorter than the shortest (%s)", f.o.MaxInterval, f.o.MinInterval)
	}
	if f.o.Max <= 0 {
		f.o.Max = DefaultMax
	}
	if f.o.HostConcurrency <= 0 {
		f.o.HostConcurrency = DefaultHostConcurrency
	}
	if f.o.MaxBytes <= 0 {
		f.o.MaxBytes = DefaultMaxBytes
	}
	if f.o.Logger == nil {
		f.o.Logger = slog.Default()
	}
	if f.o.Now == nil {
		f.o.Now = time.Now
	}
	if f.o.Resolve == nil {
		f.o.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	f.o.PublicURL = strings.TrimRight(f.o.PublicURL, "/")
	f.log = f.o.Logger
	f.sched = Schedule{Min: f.o.MinInterval, Max: f.o.MaxInterval}
	f.client = o.Client
	if f.client == nil {
		f.client = websub.NewClient(o.AllowPrivate, f.o.HTTPTimeout)
	}
	f.guard = ssrf.New(ssrf.WithAnyPort())
	return f, nil
}

// Register registers the handler of KindPoll with r. Call it once, before
// r runs.
func (f *Follower) Register(r *tasks.Runner) {
	r.Handle(KindPoll, f.handlePoll, tasks.KindOptions{MaxAttempts: -1})
}

// Enabled reports whether any --feeds pattern is set: without one,
// nothing is followed and nothing refused.
func (f *Follower) Enabled() bool { return len(f.patterns) > 0 }

// outside returns the parsed topic when it is an absolute http(s) URL
// that is not one of hubbub's own.
func (f *Follower) outside(topic string) (*url.URL, bool) {
	if !strings.HasPrefix(topic, "http://") && !strings.HasPrefix(topic, "https://") {
		return nil, false
	}
	if f.o.PublicURL != "" && strings.HasPrefix(topic, f.o.PublicURL+"/") {
		return nil, false
	}
	u, err := url.Parse(topic)
	if err != nil || u.Host == "" {
		return nil, false
	}
	return u, true
}

func refuse(status int, format string, a ...any) *hub.Refusal {
	return &hub.Refusal{Status: status, Reason: fmt.Sprintf(format, a...)}
}

// admit decides whether topic (u) may be followed: a pattern covers it,
// and, unless this node follows it already, fewer than Max feeds are
// followed and its host resolves to public addresses only.
func (f *Follower) admit(ctx context.Context, topic string, u *url.URL) error {
	if !slices.ContainsFunc(f.patterns, func(p Pattern) bool { return p.Match(u) }) {
		return refuse(http.StatusForbidden, "hubbub does not follow %s: no --feeds pattern covers it", topic)
	}
	f.mu.Lock()
	fd := f.feeds[topic]
	known := fd != nil && fd.active
	full := !known && f.followedLocked() >= f.o.Max
	f.mu.Unlock()
	if known {
		return nil
	}
	if full {
		return refuse(http.StatusTooManyRequests, "hubbub follows as many feeds as it may (--feeds-max %d); try again later", f.o.Max)
	}
	if f.o.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if f.guard.SafeAddr(a) != nil {
			return refuse(http.StatusForbidden, "hubbub does not follow %s: its host is a non-public address", topic)
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := f.o.Resolve(rctx, host)
	if err != nil || len(addrs) == 0 {
		return refuse(http.StatusBadRequest, "hubbub cannot follow %s: its host does not resolve (in time)", topic)
	}
	for _, a := range addrs {
		if f.guard.SafeAddr(a.Unmap()) != nil {
			return refuse(http.StatusForbidden, "hubbub does not follow %s: its host resolves to a non-public address", topic)
		}
	}
	return nil
}

func (f *Follower) followedLocked() int {
	n := 0
	for _, fd := range f.feeds {
		if fd.active {
			n++
		}
	}
	return n
}

// Followed returns how many feeds this node follows.
func (f *Follower) Followed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.followedLocked()
}

// feedOf returns this node's entry of topic, creating it.
func (f *Follower) feedOf(topic string) *feed {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd := f.feeds[topic]
	if fd == nil {
		fd = &feed{sem: make(chan struct{}, 1), st: State{Topic: topic, URL: topic}}
		f.feeds[topic] = fd
	}
	return fd
}

// Listen implements hub.Interest: for each outside feed among topics it
// admits the feed (or refuses the whole request with a *hub.Refusal),
// counts a listener, and starts following a feed not followed yet,
// fetching it before it returns. FirstFetch bounds the whole call (every
// name resolved and every first fetch of the request); a failed or slow
// first fetch does not fail the request.
func (f *Follower) Listen(ctx context.Context, topics []string) (func(), error) {
	if !f.Enabled() {
		return func() {}, nil
	}
	var held []*feed
	release := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		now := f.o.Now()
		for _, fd := range held {
			fd.listeners--
			fd.listened = now
		}
	}
	lctx, cancel := context.WithTimeout(ctx, f.o.FirstFetch)
	defer cancel()
	var names []string
	for _, t := range topics {
		u, ok := f.outside(t)
		if !ok {
			continue
		}
		if err := f.admit(lctx, t, u); err != nil {
			release()
			return nil, err
		}
		fd := f.feedOf(t)
		f.mu.Lock()
		fd.listeners++
		fd.listened = f.o.Now()
		f.mu.Unlock()
		held, names = append(held, fd), append(names, t)
	}
	for i, fd := range held {
		if err := f.start(lctx, fd, names[i], true); err != nil {
			// Cut short: follow without waiting (the fetch is a task).
			bctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := f.start(bctx, fd, names[i], false); err != nil {
				f.log.Warn("follow: cannot start following", "topic", names[i], "err", err)
			}
			stop()
		}
	}
	return release, nil
}

// Touch admits topic for a webhook subscription and, if it is an outside
// feed not followed yet, starts following it without waiting (its first
// fetch runs as a task). It returns a *hub.Refusal when the feed may not
// be followed, nil for a topic that is no outside feed.
func (f *Follower) Touch(ctx context.Context, topic string) error {
	if !f.Enabled() {
		return nil
	}
	u, ok := f.outside(topic)
	if !ok {
		return nil
	}
	if err := f.admit(ctx, topic, u); err != nil {
		return err
	}
	fd := f.feedOf(topic)
	f.mu.Lock()
	fd.listened = f.o.Now()
	f.mu.Unlock()
	return f.start(ctx, fd, topic, false)
}

// start makes fd followed unless it is: from its durable state when that
// says followed, else afresh, with a first fetch now (inline) or as a task.
func (f *Follower) start(ctx context.Context, fd *feed, topic string, inline bool) error {
	f.mu.Lock()
	active := fd.active
	f.mu.Unlock()
	if active {
		return nil
	}
	select {
	case fd.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-fd.sem }()
	f.mu.Lock()
	active = fd.active
	f.mu.Unlock()
	if active {
		return nil
	}
	// The state is read and written even when ctx (the first-fetch bound)
	// ends meanwhile: the feed is then followed, its fetch left to a task.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st, ok, err := f.load(pctx, topic)
	if err != nil {
		return err
	}
	now := f.o.Now()
	if ok && st.Stopped == "" {
		st.LastListened = now
		return f.activate(pctx, fd, st)
	}
	prev := st
	st = State{Topic: topic, URL: topic, Method: MethodPoll, Started: now, LastListened: now}
	if ok && prev.Stopped == StopIdle && prev.URL != "" {
		st.URL, st.ETag, st.LastModified = prev.URL, prev.ETag, prev.LastModified
	}
	if inline {
		if release, err := f.waitHost(ctx, st.URL); err == nil {
			f.poll(ctx, &st)
			release()
		}
		if ctx.Err() != nil {
			// Cut short by the first-fetch bound: the task tries at
			// once, without it.
			st.NextFetch = now
		}
	} else {
		st.NextFetch = now
	}
	return f.activate(pctx, fd, st)
}

// activate saves st and schedules its next poll (none when stopped).
func (f *Follower) activate(ctx context.Context, fd *feed, st State) error {
	if err := f.save(ctx, st); err != nil {
		return err
	}
	f.mu.Lock()
	fd.st, fd.active = st, st.Stopped == ""
	f.mu.Unlock()
	if st.Stopped != "" {
		return nil
	}
	return f.enqueue(ctx, st.Topic, st.NextFetch)
}

func (f *Follower) enqueue(ctx context.Context, topic string, at time.Time) error {
	if _, _, err := f.o.Runner.Enqueue(ctx, tasks.Task{Kind: KindPoll, Key: topic, Payload: []byte(topic), RunAt: at}); err != nil {
		return fmt.Errorf("follow: enqueue poll: %w", err)
	}
	return nil
}

// handlePoll runs a poll task: it stops following a feed nobody has
// listened to for Linger, and fetches the others (see the package doc).
func (f *Follower) handlePoll(ctx context.Context, t tasks.Task) error {
	topic := string(t.Payload)
	fd := f.feedOf(topic)
	select {
	case fd.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-fd.sem }()
	st, ok, err := f.load(ctx, topic)
	if err != nil {
		return err
	}
	if !ok || st.Stopped != "" {
		f.mu.Lock()
		fd.active = false
		f.mu.Unlock()
		return nil
	}
	now := f.o.Now()
	if st.NextFetch.After(now.Add(time.Second)) {
		return f.enqueue(ctx, topic, st.NextFetch) // pulled forward; not due
	}
	f.mu.Lock()
	listeners, listened := fd.listeners, fd.listened
	fd.active = true
	f.mu.Unlock()
	leases := 0
	if f.o.Leases != nil {
		leases = f.o.Leases(topic)
	}
	if listeners > 0 || leases > 0 {
		st.LastListened = now
	} else if listened.After(st.LastListened) {
		st.LastListened = listened
	}
	if listeners == 0 && leases == 0 && now.Sub(st.LastListened) >= f.o.Linger {
		f.stop(ctx, &st, StopIdle)
		return f.activate(ctx, fd, st)
	}
	u, err := url.Parse(st.URL)
	if err != nil {
		f.stop(ctx, &st, StopGone)
		return f.activate(ctx, fd, st)
	}
	release, wait := f.enterHost(u)
	if release == nil {
		return f.enqueue(ctx, topic, now.Add(wait))
	}
	f.poll(ctx, &st)
	release()
	return f.activate(ctx, fd, st)
}

// waitHost waits, within ctx, for a fetch slot for rawURL's host.
func (f *Follower) waitHost(ctx context.Context, rawURL string) (func(), error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	for {
		release, wait := f.enterHost(u)
		if release != nil {
			return release, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// stop ends the following of st for reason, removing its upstream.
func (f *Follower) stop(ctx context.Context, st *State, reason string) {
	st.Stopped, st.NextFetch = reason, time.Time{}
	if st.Upstream != "" && f.o.Upstreams != nil {
		if _, err := f.o.Upstreams.Remove(ctx, st.Upstream); err != nil {
			f.log.Warn("follow: cannot remove the upstream subscription", "topic", st.Topic, "err", err)
		}
	}
	st.Upstream, st.Method = "", MethodPoll
	f.log.Info("follow: no longer following", "topic", st.Topic, "reason", reason)
}

func stateKey(topic string) string { return "follow:" + topic }

func (f *Follower) load(ctx context.Context, topic string) (State, bool, error) {
	fs, ok, err := f.o.State.FetchState(ctx, stateKey(topic))
	if err != nil {
		return State{}, false, fmt.Errorf("follow: load %s: %w", topic, err)
	}
	if !ok || len(fs.Follow) == 0 {
		return State{Topic: topic, URL: topic}, false, nil
	}
	var st State
	if err := json.Unmarshal(fs.Follow, &st); err != nil {
		return State{Topic: topic, URL: topic}, false, nil // unreadable: start afresh
	}
	st.Topic = topic
	if st.URL == "" {
		st.URL = topic
	}
	return st, true, nil
}

func (f *Follower) save(ctx context.Context, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("follow: encode state: %w", err)
	}
	if err := f.o.State.PutFetchState(ctx, stateKey(st.Topic), websub.FetchState{Fetched: st.LastFetch, Follow: b}); err != nil {
		return fmt.Errorf("follow: save %s: %w", st.Topic, err)
	}
	return nil
}

// Run, until ctx ends, every Linger/4 (at most a minute): records that
// this node's feeds with live subscribers are listened to, for the polls
// of other nodes sharing the store; takes in what other nodes' polls
// changed; and forgets feeds nobody here follows or has heard for twice
// Linger (List shows them until then). It returns nil when ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	every := min(max(f.o.Linger/4, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.heartbeat(ctx)
	}
}

func (f *Follower) heartbeat(ctx context.Context) {
	var topics []string
	now := f.o.Now()
	f.mu.Lock()
	for topic, fd := range f.feeds {
		switch {
		case fd.active:
			topics = append(topics, topic)
		case fd.listeners == 0 && len(fd.sem) == 0 && now.Sub(fd.listened) > 2*f.o.Linger:
			delete(f.feeds, topic) // listed for a while after it stopped, then forgotten
		}
	}
	f.mu.Unlock()
	for _, topic := range topics {
		if err := f.refresh(ctx, topic); err != nil && ctx.Err() == nil {
			f.log.Warn("follow: cannot record listeners", "topic", topic, "err", err)
		}
	}
}

// refresh reads the durable state of a feed this node follows: another
// node may have polled it, or stopped following it. While this node has
// listeners, it records that someone listens.
func (f *Follower) refresh(ctx context.Context, topic string) error {
	fd := f.feedOf(topic)
	select {
	case fd.sem <- struct{}{}:
	default:
		return nil // a poll runs: it records the listeners itself
	}
	defer func() { <-fd.sem }()
	st, ok, err := f.load(ctx, topic)
	if err != nil || !ok {
		return err
	}
	f.mu.Lock()
	listeners := fd.listeners
	f.mu.Unlock()
	if st.Stopped == StopIdle && listeners > 0 {
		// Another node let go while this one's listeners were not yet
		// recorded: follow again.
		now := f.o.Now()
		st = State{Topic: topic, URL: st.URL, ETag: st.ETag, LastModified: st.LastModified, Method: MethodPoll,
			Started: now, LastListened: now, NextFetch: now}
		return f.activate(ctx, fd, st)
	}
	if st.Stopped == "" && listeners > 0 {
		st.LastListened = f.o.Now()
		if err := f.save(ctx, st); err != nil {
			return err
		}
	}
	f.mu.Lock()
	fd.st, fd.active = st, st.Stopped == ""
	f.mu.Unlock()
	return nil
}
