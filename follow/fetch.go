package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/upstream"
	"github.com/hubbub/hubbub/websub"
)

// Methods of following a feed.
const (
	MethodPoll = "poll" // fetched on a schedule
	MethodPush = "push" // its hub pushes updates (upstream); polled every MaxInterval
)

// Reasons a feed is no longer followed (State.Stopped).
const (
	StopIdle = "idle" // nobody listened for Linger
	StopGone = "gone" // the feed answered 410 Gone
)

// State is the durable state of one followed feed.
type State struct {
	Topic string `json:"topic"`
	// URL is where the feed is fetched: the topic, or where a 301 or 308
	// moved it.
	URL      string        `json:"url"`
	Method   string        `json:"method"`             // MethodPoll or MethodPush
	Hub      string        `json:"hub,omitempty"`      // the hub the feed names
	Upstream string        `json:"upstream,omitempty"` // the conduit's upstream id while pushed
	Interval time.Duration `json:"interval"`           // the current poll interval

	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Started      time.Time `json:"started"`
	LastFetch    time.Time `json:"last_fetch,omitzero"`
	LastChange   time.Time `json:"last_change,omitzero"` // last fetch that published entries
	LastStatus   int       `json:"last_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	NextFetch    time.Time `json:"next_fetch,omitzero"`
	// LastListened is when a listener was last known (on any node).
	LastListened time.Time `json:"last_listened,omitzero"`
	// Stopped is why the feed is no longer followed ("" while it is).
	Stopped string `json:"stopped,omitempty"`
	Fetches uint64 `json:"fetches,omitempty"`
	Entries uint64 `json:"entries,omitempty"` // entries published
}

// poll fetches st's feed once and updates st: validators, outcome,
// method, interval and next fetch (or Stopped on a 410).
func (f *Follower) poll(ctx context.Context, st *State) {
	now := f.o.Now()
	out, links, status, err := f.fetch(ctx, st)
	st.LastFetch, st.LastStatus = now, status
	st.Fetches++
	st.LastError = ""
	if err != nil {
		st.LastError = err.Error()
		out.Failed = true
	}
	if status == http.StatusGone {
		f.stop(ctx, st, StopGone)
		return
	}
	if status >= 200 && status < 300 {
		out.Pushed = f.push(ctx, st, links)
	} else if st.Method == MethodPush {
		out.Pushed = f.pushing(ctx, st)
	}
	st.Interval = f.sched.Next(st.Interval, out)
	st.NextFetch = now.Add(st.Interval)
}

// fetch GETs st.URL conditionally, following redirects, and publishes
// what is new. It returns the outcome for the schedule, the links the
// feed advertises, and the last status (0 without an answer).
func (f *Follower) fetch(ctx context.Context, st *State) (Outcome, Links, int, error) {
	var out Outcome
	target := st.URL
	for range maxRedirects + 1 {
		u, err := url.Parse(target)
		if err != nil {
			return out, Links{}, 0, fmt.Errorf("bad feed URL %q: %w", target, err)
		}
		rctx, cancel := context.WithTimeout(ctx, f.o.HTTPTimeout)
		resp, err := f.get(rctx, u, st, target == st.URL)
		if err != nil {
			cancel()
			f.observe("error", 0)
			return out, Links{}, 0, err
		}
		f.observe(strconv.Itoa(resp.StatusCode), 0)
		out.MaxAge = ParseMaxAge(resp.Header.Get("Cache-Control"))
		out.RetryAfter = backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), f.o.Now())
		switch code := resp.StatusCode; {
		case code == http.StatusMovedPermanently || code == http.StatusPermanentRedirect ||
			code == http.StatusFound || code == http.StatusSeeOther || code == http.StatusTemporaryRedirect:
			loc, err := u.Parse(resp.Header.Get("Location"))
			drain(resp)
			cancel()
			if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") || loc.Host == "" {
				return out, Links{}, code, fmt.Errorf("redirect %d without a usable Location", code)
			}
			if !slices.ContainsFunc(f.patterns, func(p Pattern) bool { return p.Match(loc) }) {
				return out, Links{}, code, fmt.Errorf("redirected to %s, which no --feeds pattern covers", loc)
			}
			target = loc.String()
			if code == http.StatusMovedPermanently || code == http.StatusPermanentRedirect {
				st.URL, st.ETag, st.LastModified = target, "", ""
			}
			continue
		case code == http.StatusNotModified:
			drain(resp)
			cancel()
			return out, Links{}, code, nil
		case code < 200 || code > 299:
			drain(resp)
			cancel()
			return out, Links{}, code, fmt.Errorf("status %d", code)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, f.o.MaxBytes+1))
		_ = resp.Body.Close()
		cancel()
		if err != nil {
			return out, Links{}, resp.StatusCode, fmt.Errorf("read: %w", err)
		}
		if int64(len(body)) > f.o.MaxBytes {
			return out, Links{}, resp.StatusCode, fmt.Errorf("the feed is larger than %d bytes", f.o.MaxBytes)
		}
		links := Discover(resp.Header, body, u)
		n, err := websub.PublishFeed(ctx, f.o.Hub, st.Topic, websub.PublicHub(f.o.PublicURL), body)
		if errors.Is(err, websub.ErrNotFeed) {
			return out, links, resp.StatusCode, errors.New("not an Atom, RSS or JSON Feed document")
		}
		if err != nil {
			return out, links, resp.StatusCode, err
		}
		st.ETag, st.LastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		if n > 0 {
			out.Changed = true
			st.LastChange = f.o.Now()
			st.Entries += uint64(n)
			f.observe("", n)
		}
		return out, links, resp.StatusCode, nil
	}
	return out, Links{}, 0, fmt.Errorf("more than %d redirects", maxRedirects)
}

// get sends one GET of u, conditional when validators apply (the feed's
// own URL).
func (f *Follower) get(ctx context.Context, u *url.URL, st *State, own bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	ua := "hubbub feeds"
	if f.o.PublicURL != "" {
		ua += " (+" + f.o.PublicURL + ")"
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept", "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8")
	if own {
		if st.ETag != "" {
			req.Header.Set("If-None-Match", st.ETag)
		}
		if st.LastModified != "" {
			req.Header.Set("If-Modified-Since", st.LastModified)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	return resp, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func (f *Follower) observe(status string, entries int) {
	if f.o.Observer == nil {
		return
	}
	if status != "" {
		f.o.Observer.Fetched(status)
	}
	if entries > 0 {
		f.o.Observer.Entries(entries)
	}
}

// push makes st follow the hub the feed names, through the conduit: a new
// or changed hub is subscribed to (the old one unsubscribed); no hub ends
// an upstream subscription. It reports whether the feed is pushed.
func (f *Follower) push(ctx context.Context, st *State, links Links) bool {
	if links.Hub == "" || f.o.Upstreams == nil || f.o.PublicURL == "" {
		if st.Upstream != "" && f.o.Upstreams != nil {
			if _, err := f.o.Upstreams.Remove(ctx, st.Upstream); err != nil {
				f.log.Warn("follow: cannot remove the upstream subscription", "topic", st.Topic, "err", err)
			}
		}
		st.Hub, st.Upstream, st.Method = links.Hub, "", MethodPoll
		return false
	}
	self := links.Self
	if self == "" {
		self = st.URL
	}
	spec := upstream.Spec{Hub: links.Hub, Topic: self, Into: st.Topic}
	id := upstream.ID(spec.Hub, spec.Topic, spec.Into)
	if st.Upstream != id {
		if st.Upstream != "" {
			if _, err := f.o.Upstreams.Remove(ctx, st.Upstream); err != nil {
				f.log.Warn("follow: cannot remove the upstream subscription", "topic", st.Topic, "err", err)
			}
		}
		if _, err := f.o.Upstreams.Add(ctx, spec); err != nil {
			st.Hub, st.Upstream, st.Method = links.Hub, "", MethodPoll
			st.LastError = "subscribing at the feed's hub: " + err.Error()
			return false
		}
		st.Hub, st.Upstream = links.Hub, id
	}
	return f.pushing(ctx, st)
}

// pushing reports whether st's upstream subscription is pending or
// active (else the feed is polled), setting st.Method.
func (f *Follower) pushing(ctx context.Context, st *State) bool {
	st.Method = MethodPoll
	if st.Upstream == "" || f.o.Upstreams == nil {
		return false
	}
	u, ok, err := f.o.Upstreams.Get(ctx, st.Upstream)
	if err != nil || !ok {
		return false
	}
	switch u.State {
	case upstream.StatePending, upstream.StateActive:
		st.Method = MethodPush
		return true
	}
	if u.LastError != "" {
		st.LastError = "the feed's hub: " + u.LastError
	}
	return false
}

// hostGate bounds the fetches of one host.
type hostGate struct {
	inflight int
	next     time.Time // when the next fetch may begin
}

// enterHost takes a fetch slot for u's host: release, to call once the
// fetch is done, or nil and how long to wait before trying again.
func (f *Follower) enterHost(u *url.URL) (release func(), wait time.Duration) {
	host := strings.ToLower(u.Hostname())
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.hosts[host]
	if g == nil {
		g = &hostGate{}
		f.hosts[host] = g
	}
	if g.inflight >= f.o.HostConcurrency {
		return nil, max(f.o.HostInterval, 100*time.Millisecond)
	}
	if g.next.After(now) {
		return nil, g.next.Sub(now)
	}
	g.inflight++
	if f.o.HostInterval > 0 {
		g.next = now.Add(f.o.HostInterval)
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		g.inflight--
		if g.inflight == 0 && !g.next.After(f.o.Now()) {
			delete(f.hosts, host)
		}
	}, 0
}
