package websub

import (
	"github.com/hubbub/hubbub/topicurl"

	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/hub"
)

// ErrNotFeed is returned by PublishFeed for a body that is not an Atom, RSS
// or JSON Feed document; nothing is published.
var ErrNotFeed = errors.New("websub: not an Atom, RSS or JSON Feed document")

// PublishFeed publishes the entries of the feed document body into topic
// of h exactly as a thin-ping fetch does (see Hub.handleFetch): one event
// per entry whose (id, updated) pair topic's log does not hold as the
// latest of that entry's key, oldest first, in one Publish. It returns how
// many events it published. Publishing the same body again publishes
// nothing. A body that is not a feed gives ErrNotFeed; contentType is not
// trusted for that, only the body. hubURL, if not empty, is the rel="hub"
// link of the one-entry documents.
func PublishFeed(ctx context.Context, h *hub.Hub, topic, hubURL string, body []byte) (int, error) {
	drafts, isFeed, err := feedDrafts(ctx, h.Log(), topic, hubURL, body, time.Now())
	if err != nil {
		return 0, err
	}
	if !isFeed {
		return 0, ErrNotFeed
	}
	if len(drafts) == 0 {
		return 0, nil
	}
	if _, err := h.Publish(ctx, drafts); err != nil {
		return 0, fmt.Errorf("websub: publish %s: %w", topic, err)
	}
	return len(drafts), nil
}

// PublicHub is the hub URL to name in rel="hub" links for a hub whose
// public URL is publicURL: publicURL/hub, or "" when it is "".
func PublicHub(publicURL string) string {
	if publicURL == "" {
		return ""
	}
	return topicurl.Hub(publicURL)
}

// NewClient returns an HTTP client guarded like the hub's own outgoing
// requests: unless allowPrivate, dials to loopback, private, link-local
// and other non-public addresses are refused once the address is resolved
// (so DNS rebinding cannot get around it); environment proxies are not
// used, and redirects are not followed. timeout bounds each request.
func NewClient(allowPrivate bool, timeout time.Duration) *http.Client {
	return newClient(allowPrivate, timeout, DefaultPerHostConcurrency)
}
