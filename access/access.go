// Package access decides who may read, publish and administer a hub. It
// has one job and one door: a Policy built from the configuration that
// the server and the transports ask, per request, "who is this?"
// (Identify) and then "may they read these topics / publish to these
// topics / administer?" (Read, Publish, Admin).
//
// Credentials: "Authorization: Bearer VALUE", where VALUE is the admin
// key, a publish key or a JWT; else a JWT in ?access_token= or in the
// cookie hubbub_token. Keys are compared in constant time. A request with
// no credential may still count as local (see Policy.IsLocal), which
// stands in for keys only when none are configured.
//
// Reading is open except for $sys/ topics (admin only) and private topics
// (--private patterns, or every topic with --subscribe-auth required),
// which need admin rights or a token whose subscribe patterns cover them.
// Publishing needs a publish key, the admin key, a token whose publish
// patterns cover every topic, or, only when no publish key and no JWT
// verification is configured, a local client. Administering needs the
// admin key, a token with admin:true, or, with no admin key configured, a
// local client.
package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
)

// Options configure a Policy. The zero value is a hub with no keys: every
// topic but $sys/ is public and local clients may publish and administer.
type Options struct {
	PublishKeys []string
	AdminKey    string
	// JWT verification: any of an HMAC secret, a PEM public key file and a
	// JWKS URL. Each accepts only its own algorithms.
	JWTSecret        string
	JWTPublicKeyFile string
	JWKSURL          string
	JWTIssuer        string // "" accepts any issuer
	JWTAudience      string // "" accepts any audience
	// JWKSClient fetches the JWKS (nil: a default client).
	JWKSClient *http.Client
	// Private are the patterns of topics that need a covering token to
	// read. SubscribeAuthRequired makes every topic private.
	Private               []string
	SubscribeAuthRequired bool
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For,
	// Forwarded or X-Real-IP names the client.
	TrustedProxies []string
	Logger         *slog.Logger
	Now            func() time.Time // nil: time.Now
}

// Policy is the hub's access policy. It is immutable after New and safe
// for concurrent use.
type Policy struct {
	publishKeys [][32]byte // sha256 of each key
	adminKey    [32]byte
	hasAdminKey bool
	jwt         *verifier // nil: tokens are not accepted
	private     []*event.Pattern
	privateAll  bool
	proxies     []netip.Prefix
	log         *slog.Logger
	now         func() time.Time
}

// New builds a Policy. With a JWKS URL it starts fetching the key set;
// the background refresh ends when ctx ends.
func New(ctx context.Context, o Options) (*Policy, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Policy{log: o.Logger, now: o.Now, privateAll: o.SubscribeAuthRequired}
	for _, k := range o.PublishKeys {
		p.publishKeys = append(p.publishKeys, sha256.Sum256([]byte(k)))
	}
	if o.AdminKey != "" {
		p.adminKey, p.hasAdminKey = sha256.Sum256([]byte(o.AdminKey)), true
	}
	for _, s := range o.Private {
		pat, err := event.CompilePattern(s)
		if err != nil {
			return nil, fmt.Errorf("--private %q: %w", s, err)
		}
		p.private = append(p.private, pat)
	}
	for _, s := range o.TrustedProxies {
		pre, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxy %q: %w", s, err)
		}
		p.proxies = append(p.proxies, pre)
	}
	var err error
	if p.jwt, err = newVerifier(ctx, o, o.Logger); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pre, err := netip.ParsePrefix(strings.TrimSpace(s))
		return pre.Masked(), err
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Kind says what credential a request carried.
type Kind int

// Credential kinds.
const (
	Anonymous  Kind = iota // none, or one that was refused (see Identity.Err)
	PublishKey             // one of the publish keys
	AdminKey               // the admin key
	Token                  // a verified JWT
)

// Identity is who a request is: its credential and whether it counts as
// local. It is a value; keep it for the life of a connection and pass it
// back to Read and Publish, which check a token's expiry at each call.
type Identity struct {
	Kind   Kind
	Claims *Claims // set for Token
	// Local: the request came from this host, directly (see IsLocal).
	Local bool
	// Err is why a credential that was sent was refused (invalid key,
	// invalid or expired token); Kind is then Anonymous.
	Err error
}

// Expires is when the identity's token expires; zero for no token or a
// token without exp.
func (id Identity) Expires() time.Time {
	if id.Kind == Token {
		return id.Claims.Expires
	}
	return time.Time{}
}

// Decision is the answer to one question. Status 0 allows; else it is
// 401 (a credential is missing, invalid or expired) or 403 (the
// credential does not grant this), with Reason in plain words.
type Decision struct {
	Status int
	Reason string
	// NotAfter, when not zero, is the expiry of the token the decision
	// relied on: what it allowed must end then.
	NotAfter time.Time
}

// Allowed reports whether the decision allows.
func (d Decision) Allowed() bool { return d.Status == 0 }

func deny(status int, format string, a ...any) Decision {
	return Decision{Status: status, Reason: fmt.Sprintf(format, a...)}
}

// WriteDenial answers a refused HTTP request: the status, a plain-text
// reason, and for 401 a WWW-Authenticate: Bearer challenge.
func WriteDenial(w http.ResponseWriter, d Decision) {
	if d.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hubbub"`)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	fmt.Fprintln(w, d.Reason)
}

// CookieName is the cookie that may carry a token (for EventSource and
// WebSocket in browsers, which cannot set headers).
const CookieName = "hubbub_token"

// Credential returns the credential a request carries and whether it
// came in the Authorization header: the bearer value, else
// ?access_token=, else the hubbub_token cookie. "" when there is none.
func Credential(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if v = strings.TrimSpace(v); v != "" {
				return v, true
			}
		}
	}
	if r.URL != nil && strings.Contains(r.URL.RawQuery, "access_token=") {
		if v := r.URL.Query().Get("access_token"); v != "" {
			return v, false
		}
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, false
	}
	return "", false
}

// Identify says who r is. It never fails: a refused credential gives an
// Anonymous identity with Err set.
func (p *Policy) Identify(r *http.Request) Identity {
	raw, header := Credential(r)
	return p.identify(r, raw, header)
}

// IdentifyToken says who a connection opened by r is once it sends
// token (the WebSocket auth and refresh ops): like a bearer value, it
// may be a key or a JWT.
func (p *Policy) IdentifyToken(r *http.Request, token string) Identity {
	return p.identify(r, strings.TrimSpace(token), true)
}

func (p *Policy) identify(r *http.Request, raw string, keysAllowed bool) Identity {
	id := Identity{Local: p.IsLocal(r)}
	if raw == "" {
		return id
	}
	if keysAllowed {
		sum := sha256.Sum256([]byte(raw))
		if p.hasAdminKey && subtle.ConstantTimeCompare(sum[:], p.adminKey[:]) == 1 {
			id.Kind = AdminKey
			return id
		}
		found := 0
		for _, k := range p.publishKeys {
			found |= subtle.ConstantTimeCompare(sum[:], k[:])
		}
		if found == 1 {
			id.Kind = PublishKey
			return id
		}
	}
	if p.jwt == nil {
		id.Err = errNotAKey
		p.log.Debug("credential refused", "client", p.ClientAddr(r), "reason", id.Err)
		return id
	}
	c, err := p.jwt.verify(raw)
	if err != nil {
		id.Err = err
		p.log.Debug("credential refused", "client", p.ClientAddr(r), "reason", err)
		return id
	}
	id.Kind, id.Claims = Token, c
	return id
}

var errNotAKey = fmt.Errorf("the key is not valid")

// current is id as of now: a token past its expiry (and the leeway) is
// refused from then on.
func (p *Policy) current(id Identity) Identity {
	if id.Kind == Token && !id.Claims.Expires.IsZero() && p.now().After(id.Claims.Expires.Add(Leeway)) {
		return Identity{Local: id.Local, Err: ErrTokenExpired}
	}
	return id
}

// admin reports whether id has admin rights, and when they end.
func (p *Policy) admin(id Identity) (bool, time.Time) {
	switch {
	case id.Kind == AdminKey:
		return true, time.Time{}
	case id.Kind == Token && id.Claims.Admin:
		return true, id.Claims.Expires
	case !p.hasAdminKey && id.Local:
		return true, time.Time{}
	}
	return false, time.Time{}
}

// Admin decides whether id may use the admin API.
func (p *Policy) Admin(id Identity) Decision {
	id = p.current(id)
	if ok, until := p.admin(id); ok {
		return Decision{NotAfter: until}
	}
	switch {
	case id.Err != nil:
		return deny(http.StatusUnauthorized, "%v", id.Err)
	case id.Kind == Anonymous && p.hasAdminKey:
		return deny(http.StatusUnauthorized, "this needs admin rights: send Authorization: Bearer ADMIN_KEY, or a token with \"admin\": true")
	case id.Kind == Anonymous:
		return deny(http.StatusUnauthorized, "this needs admin rights: a token with \"admin\": true, or a local client (loopback address and Host, no forwarding headers); or configure --admin-key")
	}
	return deny(http.StatusForbidden, "this credential does not grant admin rights")
}

// RequireAdmin lets through only requests with admin rights; others get
// 401 or 403 (see Admin).
func (p *Policy) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := p.Admin(p.Identify(r)); !d.Allowed() {
			p.log.Info("admin request refused", "client", p.ClientAddr(r), "path", r.URL.Path, "status", d.Status)
			WriteDenial(w, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isPrivate reports whether reading topic (or a pattern: any topic it can
// match) needs a covering token.
func (p *Policy) isPrivate(topic string) bool {
	if p.privateAll {
		return true
	}
	pattern := event.IsPattern(topic)
	for _, x := range p.private {
		if pattern && Intersects(topic, x.String()) || !pattern && x.Match(topic) {
			return true
		}
	}
	return false
}

// covers reports whether some pattern of list covers topic: matches it,
// or for a pattern, matches every topic it can match.
func covers(list []*event.Pattern, topic string) bool {
	pattern := event.IsPattern(topic)
	for _, q := range list {
		if pattern && Subset(topic, q.String()) || !pattern && q.Match(topic) {
			return true
		}
	}
	return false
}

// Read decides whether id may read topics (concrete topics and patterns).
// $sys/ topics need admin rights. A private topic needs admin rights or a
// token whose subscribe patterns cover it; a pattern that can match a
// private topic must be covered as a whole by one of the token's
// patterns. Public topics need nothing, whatever credential comes with
// them.
func (p *Policy) Read(id Identity, topics []string) Decision {
	id = p.current(id)
	var d Decision
	isAdmin, adminUntil := p.admin(id)
	for _, t := range topics {
		reserved := event.IsReserved(t)
		if !reserved && !p.isPrivate(t) {
			continue
		}
		if isAdmin {
			d.NotAfter = earliest(d.NotAfter, adminUntil)
			continue
		}
		switch {
		case id.Err != nil:
			return deny(http.StatusUnauthorized, "topic %q needs a valid token: %v", t, id.Err)
		case reserved:
			return deny(http.StatusForbidden, "topics under $sys/ are the hub's own: reading them needs admin rights (the admin key, or a token with \"admin\": true)")
		case id.Kind == Anonymous:
			return deny(http.StatusUnauthorized, "topic %q is private: send a token (Authorization: Bearer TOKEN, ?access_token=TOKEN or the cookie %s)", t, CookieName)
		case id.Kind != Token:
			return deny(http.StatusForbidden, "topic %q is private: a publish key does not grant reading it; send a token whose subscribe patterns cover it", t)
		case !covers(id.Claims.Subscribe, t):
			return deny(http.StatusForbidden, "the token does not cover reading %q", t)
		}
		d.NotAfter = earliest(d.NotAfter, id.Claims.Expires)
	}
	return d
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// keyed reports whether publishing is guarded: a publish key or JWT
// verification is configured.
func (p *Policy) keyed() bool { return len(p.publishKeys) > 0 || p.jwt != nil }

// Publish decides whether id may publish to topics. With no topics it
// decides whether id may publish at all (to answer before reading a
// body). The $sys/ rule is the caller's.
func (p *Policy) Publish(id Identity, topics []string) Decision {
	id = p.current(id)
	switch {
	case id.Kind == AdminKey || id.Kind == PublishKey:
		return Decision{}
	case id.Kind == Token && id.Claims.Admin:
		return Decision{NotAfter: id.Claims.Expires}
	case id.Kind == Token:
		if len(id.Claims.Publish) == 0 {
			return deny(http.StatusForbidden, "the token grants no publishing")
		}
		for _, t := range topics {
			if !covers(id.Claims.Publish, t) {
				return deny(http.StatusForbidden, "the token does not cover publishing to %q", t)
			}
		}
		return Decision{NotAfter: id.Claims.Expires}
	case id.Err != nil:
		return deny(http.StatusUnauthorized, "publishing: %v", id.Err)
	case p.keyed():
		return deny(http.StatusUnauthorized, "publishing needs Authorization: Bearer with a publish key or a token")
	case id.Local:
		return Decision{}
	}
	return deny(http.StatusForbidden, "with no publish key or token configured, only local clients may publish (loopback address and Host, no forwarding headers): configure --publish-key or --jwt-secret to publish from elsewhere")
}

// WebSub authorises a WebSub hub request (mode subscribe, unsubscribe or
// publish) for topic: it returns status 0 when allowed, else 401 or 403
// and the reason. A subscription to a private topic needs a token as a
// read does, and notAfter, when not zero, is when the token expires: the
// lease must end by then. Unsubscribing is always allowed (the callback's
// verification proves consent). A thin ping is a publish: when publish
// keys or tokens are configured it needs what POST /publish needs; with
// neither, pings stay open as WebSub expects.
func (p *Policy) WebSub(r *http.Request, mode, topic string) (notAfter time.Time, status int, reason string) {
	var d Decision
	switch mode {
	case "subscribe":
		d = p.Read(p.Identify(r), []string{topic})
	case "publish":
		if p.keyed() {
			d = p.Publish(p.Identify(r), []string{topic})
		}
	}
	if !d.Allowed() {
		p.log.Debug("websub request refused", "client", p.ClientAddr(r), "mode", mode, "topic", topic, "status", d.Status)
	}
	return d.NotAfter, d.Status, d.Reason
}

// Summary says in words who may publish, subscribe and administer, for
// the startup log.
func (p *Policy) Summary() (publish, subscribe, admin string) {
	var pub []string
	if len(p.publishKeys) > 0 {
		pub = append(pub, fmt.Sprintf("%d publish key(s)", len(p.publishKeys)))
	}
	if p.hasAdminKey {
		pub = append(pub, "the admin key")
	}
	if p.jwt != nil {
		pub = append(pub, "tokens whose publish patterns cover the topics")
	}
	if !p.keyed() {
		pub = append(pub, "local clients only (loopback address and Host, no forwarding headers)")
	}
	publish = strings.Join(pub, ", ")
	switch {
	case p.privateAll:
		subscribe = "tokens whose subscribe patterns cover the topics, and admins (--subscribe-auth required)"
	case len(p.private) > 0:
		subscribe = fmt.Sprintf("anyone, except %d private pattern(s) that need a covering token", len(p.private))
	default:
		subscribe = "anyone (no --private topics)"
	}
	var adm []string
	if p.hasAdminKey {
		adm = append(adm, "the admin key")
	} else {
		adm = append(adm, "local clients (no --admin-key)")
	}
	if p.jwt != nil {
		adm = append(adm, "tokens with admin:true")
	}
	admin = strings.Join(adm, ", ")
	return publish, subscribe, admin
}
