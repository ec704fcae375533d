package websub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mmcdole/gofeed"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/internal/backoff"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/tasks"
)

// Event types of what thin pings publish.
const (
	TypeEntry    = "entry"    // one feed entry, as a one-entry feed document
	TypeDocument = "document" // a non-feed topic's whole body
)

// documentKey is the event key of a non-feed topic's body.
const documentKey = "document"

// userAgent names hubbub, its URL and the subscriber count of topic.
func (h *Hub) userAgent(topic string) string {
	u := h.o.PublicURL
	if u == "" {
		u = "https://github.com/hubbub/hubbub"
	}
	return "hubbub (+" + u + "; " + strconv.Itoa(h.o.Records.Count(topic)) + " subscribers)"
}

// handleFetch runs a fetch task: a conditional GET of the topic URL
// (redirects followed, at most maxRedirects), then publication of what is
// new. For Atom, RSS and JSON Feed content, each entry whose (id, updated)
// pair was not published before becomes one event: Type "entry", Key
// "entry:" + the entry id (so the log's latest-by-key view remembers what
// was published, beyond the idempotency window), IdempotencyKey a hash of
// id and updated time, ContentType the feed's canonical type and Data the
// entry as a one-entry feed. Other content becomes one event (Type
// "document") when its bytes or type changed. Entries are published oldest
// first, in one Publish.
//
// Fetches of one topic URL begin at least Options.FetchMinInterval apart on
// this node: a fetch task due earlier (pulled forward by another node's
// ping, say) queues itself again for the allowed time and does nothing.
// A body larger than Options.MaxFetchBytes fails the fetch, permanently,
// and nothing is published.
func (h *Hub) handleFetch(ctx context.Context, t tasks.Task) error {
	topic := string(t.Payload)
	if at, ok := h.gate.begin(topic, h.now()); !ok {
		return h.enqueueFetchAt(ctx, topic, at)
	}
	n, err := h.fetch(ctx, topic)
	h.obs.Fetched(topic, n, err)
	if err != nil {
		h.log.Info("websub: fetch failed", "topic", topic, "err", err)
	}
	return err
}

// enqueueFetchAt queues a fetch of topic to run at at.
func (h *Hub) enqueueFetchAt(ctx context.Context, topic string, at time.Time) error {
	if _, _, err := h.o.Tasks.Enqueue(ctx, tasks.Task{Kind: KindFetch, Key: topic, Payload: []byte(topic), RunAt: at}); err != nil {
		return fmt.Errorf("websub: enqueue fetch: %w", err)
	}
	return nil
}

func (h *Hub) fetch(ctx context.Context, topic string) (int, error) {
	st, _, err := h.o.Records.FetchState(ctx, topic)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, followRedirects{}, true), h.o.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, topic, nil)
	if err != nil {
		return 0, tasks.Permanent(fmt.Errorf("websub: fetch %s: %w", topic, err))
	}
	req.Header.Set("User-Agent", h.userAgent(topic))
	req.Header.Set("Accept", "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8")
	if st.ETag != "" {
		req.Header.Set("If-None-Match", st.ETag)
	}
	if st.LastModified != "" {
		req.Header.Set("If-Modified-Since", st.LastModified)
	}
	resp, release, err := h.do(req)
	if err != nil {
		if isRefused(err) {
			return 0, tasks.Permanent(fmt.Errorf("websub: fetch %s: %w", topic, err))
		}
		return 0, fmt.Errorf("websub: fetch %s: %w", topic, err)
	}
	defer release()
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return 0, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return 0, tasks.Permanent(fmt.Errorf("websub: fetch %s: status %d", topic, resp.StatusCode))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		err := fmt.Errorf("websub: fetch %s: status %d", topic, resp.StatusCode)
		if d := backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), h.now()); d > 0 {
			return 0, tasks.RetryAfter(min(d, h.o.RetryMax), err)
		}
		return 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.o.MaxFetchBytes+1))
	if err != nil {
		return 0, fmt.Errorf("websub: fetch %s: read: %w", topic, err)
	}
	if int64(len(body)) > h.o.MaxFetchBytes {
		return 0, tasks.Permanent(fmt.Errorf("websub: fetch %s: the body is larger than %d bytes (the hub's --max-body); nothing was published", topic, h.o.MaxFetchBytes))
	}
	drafts, err := h.drafts(ctx, topic, resp.Header.Get("Content-Type"), body)
	if err != nil {
		return 0, err
	}
	if len(drafts) > 0 {
		if _, err := h.o.Hub.Publish(ctx, drafts); err != nil {
			return 0, fmt.Errorf("websub: publish %s: %w", topic, err)
		}
	}
	// Remember validators only once what they cover is published.
	st = FetchState{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Fetched: h.now()}
	if err := h.o.Records.PutFetchState(ctx, topic, st); err != nil {
		h.log.Warn("websub: cannot remember fetch validators", "topic", topic, "err", err)
	}
	return len(drafts), nil
}

// drafts turns a fetched body into the drafts not published before.
func (h *Hub) drafts(ctx context.Context, topic, ctype string, body []byte) ([]event.Draft, error) {
	out, isFeed, err := feedDrafts(ctx, h.o.Log, topic, PublicHub(h.o.PublicURL), body, h.now())
	if err != nil || isFeed {
		return out, err
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(append([]byte(ctype+"\x00"), body...))
	idem := hex.EncodeToString(sum[:])
	if seen, err := seen(ctx, h.o.Log, topic, documentKey, idem); err != nil || seen {
		return nil, err
	}
	return []event.Draft{{Topics: []string{topic}, Type: TypeDocument, Key: documentKey,
		ContentType: ctype, Data: body, IdempotencyKey: idem}}, nil
}

// feedDrafts parses body as an Atom, RSS or JSON Feed document and returns
// the drafts of its entries not published into topic before (see
// handleFetch), oldest first. isFeed is false, with no drafts, when body is
// not a feed. An entry id that occurs more than once counts once, as its
// last (newest) occurrence, so publishing the drafts makes a second call
// with the same body return none. hubURL goes in rel="hub" links; now
// dates entries that carry no time.
func feedDrafts(ctx context.Context, log store.Log, topic, hubURL string, body []byte, now time.Time) (out []event.Draft, isFeed bool, err error) {
	kind := ""
	switch gofeed.DetectFeedType(bytes.NewReader(body)) {
	case gofeed.FeedTypeAtom:
		kind = "atom"
	case gofeed.FeedTypeRSS:
		kind = "rss"
	case gofeed.FeedTypeJSON:
		if isJSONFeed(body) {
			kind = "json"
		}
	}
	if kind == "" {
		return nil, false, nil
	}
	f, err := gofeed.NewParser().Parse(bytes.NewReader(body))
	if err != nil {
		return nil, false, nil // not a feed after all: the caller publishes the body as it is
	}
	items := slices.Clone(f.Items)
	items = slices.DeleteFunc(items, func(it *gofeed.Item) bool { return it == nil })
	ordered := true
	for _, it := range items {
		if itemTime(it) == nil {
			ordered = false
		}
	}
	if ordered {
		slices.SortStableFunc(items, func(a, b *gofeed.Item) int { return itemTime(a).Compare(*itemTime(b)) })
	} else {
		slices.Reverse(items) // feeds list the newest first
	}
	// One draft per entry id: the last occurrence wins.
	last := make(map[string]int, len(items))
	for i, it := range items {
		id, _ := entryIdentity(it)
		last[id] = i
	}
	ct := map[string]string{"atom": AtomContentType, "rss": RSSContentType, "json": JSONFeedContentType}[kind]
	meta := feedMeta{Title: f.Title, Link: f.Link, Description: f.Description, Topic: topic, Hub: hubURL}
	for i, it := range items {
		id, version := entryIdentity(it)
		if last[id] != i {
			continue
		}
		key := "entry:" + id
		if event.ValidateKey(key) != nil { // too long, or controls in the id
			sum := sha256.Sum256([]byte(id))
			key = "entry-sha256:" + hex.EncodeToString(sum[:])
		}
		sum := sha256.Sum256([]byte(id + "\x00" + version))
		idem := hex.EncodeToString(sum[:])
		seen, err := seen(ctx, log, topic, key, idem)
		if err != nil {
			return nil, true, err
		}
		if seen {
			continue
		}
		updated := now
		if t := itemTime(it); t != nil {
			updated = *t
		}
		data, err := renderEntry(kind, meta, it, id, updated)
		if err != nil {
			return nil, true, err
		}
		out = append(out, event.Draft{Topics: []string{topic}, Type: TypeEntry, Key: key,
			ContentType: ct, Data: data, IdempotencyKey: idem})
	}
	return out, true, nil
}

// seen reports whether the latest event of topic with key has idem as its
// idempotency key: the same thing was published already.
func seen(ctx context.Context, log store.Log, topic, key, idem string) (bool, error) {
	e, ok, err := log.Latest(ctx, topic, key)
	if err != nil {
		return false, fmt.Errorf("websub: latest %q of %q: %w", key, topic, err)
	}
	return ok && e.IdempotencyKey == idem, nil
}

// entryIdentity returns an entry's id (its guid, else its link, else a
// hash of its text) and version (its updated time, else published time,
// else a hash of its content).
func entryIdentity(it *gofeed.Item) (id, version string) {
	text := sha256.Sum256([]byte(it.Title + "\x00" + it.Link + "\x00" + it.Description + "\x00" + it.Content))
	id = it.GUID
	if id == "" {
		id = it.Link
	}
	if id == "" {
		id = "sha256:" + hex.EncodeToString(text[:])
	}
	switch {
	case it.UpdatedParsed != nil:
		version = it.UpdatedParsed.UTC().Format(time.RFC3339Nano)
	case it.Updated != "":
		version = it.Updated
	case it.PublishedParsed != nil:
		version = it.PublishedParsed.UTC().Format(time.RFC3339Nano)
	case it.Published != "":
		version = it.Published
	default:
		version = "sha256:" + hex.EncodeToString(text[:])
	}
	return id, version
}

func itemTime(it *gofeed.Item) *time.Time {
	if it.UpdatedParsed != nil {
		return it.UpdatedParsed
	}
	return it.PublishedParsed
}
