package grip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/event"
)

// Publish serves POST /publish/ on the main listener: Pushpin's JSON
// publishing format ({"items":[{"channel","id","prev-id","formats"}]}),
// so GRIP libraries (@fanoutio/grip's Publisher, Django/Rails/Go GRIP)
// can point their control URI at hubbub. Every item is stored in its
// channel's topic log (item.go) before the answer, 200 "Published".
//
// Authorisation is POST /publish's, through the same policy and publish
// rate: "Authorization: Bearer VALUE" with a publish key, the admin key
// or a hubbub token whose publish patterns cover every channel; "Basic"
// credentials are read as the bearer VALUE being the password (the user
// name is ignored), for libraries configured with user and password; with
// no key and no JWT verification configured, local clients may publish. A
// GRIP library's own JWT (claims iss and exp, signed with a shared key) is
// a hubbub token only if signed with --jwt-secret, and then it must grant
// publishing like any other token.
func (p *Proxy) Publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		plainError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if p.cfg.Access == nil {
		plainError(w, http.StatusForbidden, "publishing is not configured")
		return
	}
	ar := basicAsBearer(r)
	id := p.cfg.Access.Identify(ar)
	if d := p.cfg.Access.Publish(id, nil); !d.Allowed() {
		access.WriteDenial(w, d)
		return
	}
	if p.cfg.AllowPublish != nil {
		if wait, ok := p.cfg.AllowPublish(ar, id); !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			plainError(w, http.StatusTooManyRequests, fmt.Sprintf("publish rate limit: try again in %ds", secs))
			return
		}
	}
	body, err := readBounded(http.MaxBytesReader(w, r.Body, p.cfg.MaxPublishBody), p.cfg.MaxPublishBody)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || strings.Contains(err.Error(), "larger than") {
			plainError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", p.cfg.MaxPublishBody))
			return
		}
		plainError(w, http.StatusBadRequest, "could not read the body")
		return
	}
	items, err := ParsePublish(body)
	if err != nil {
		plainError(w, http.StatusBadRequest, err.Error())
		return
	}
	drafts := make([]event.Draft, 0, len(items))
	channels := make([]string, 0, len(items))
	for i := range items {
		d, err := items[i].Draft()
		if err != nil {
			plainError(w, http.StatusBadRequest, err.Error())
			return
		}
		if items[i].ID != "" {
			// A repeated id on a channel is stored once (Pushpin drops
			// repeats too, for 60 s; hubbub for the idempotency window).
			d.IdempotencyKey = "grip:" + items[i].ID
		}
		drafts = append(drafts, d)
		channels = append(channels, items[i].Channel)
	}
	if d := p.cfg.Access.Publish(id, channels); !d.Allowed() {
		access.WriteDenial(w, d)
		return
	}
	if _, err := p.cfg.Hub.Publish(r.Context(), drafts); err != nil {
		if event.IsValidation(err) {
			plainError(w, http.StatusBadRequest, err.Error())
			return
		}
		if r.Context().Err() == nil {
			p.log.Error("grip: publish failed", "err", err)
			plainError(w, http.StatusServiceUnavailable, "the store could not take the items; try again")
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Published\n"))
}

// basicAsBearer returns r, or for "Authorization: Basic" credentials a
// shallow copy whose Authorization is "Bearer PASSWORD".
func basicAsBearer(r *http.Request) *http.Request {
	scheme, v, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return r
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return r
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	if !ok || pass == "" {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+pass)
	return r2
}
