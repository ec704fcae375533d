package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
)

// Validate reports the first invalid setting, naming its flag and
// environment variable.
func (c Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		for _, s := range settings {
			if s.field.Name == field {
				return fmt.Errorf("invalid %s (--%s, %s, YAML %s): %s", s.yaml, s.flag, s.env, s.yaml, fmt.Sprintf(format, a...))
			}
		}
		panic("config: no setting " + field)
	}
	switch {
	case c.Listen == "":
		return bad("Listen", "must not be empty")
	case c.WebSubMinLease <= 0 || c.WebSubLease < c.WebSubMinLease || c.WebSubMaxLease < c.WebSubLease:
		return bad("WebSubLease", "leases must satisfy 0 < min <= default <= max")
	case c.WebSubSignature != "sha1" && c.WebSubSignature != "sha256" && c.WebSubSignature != "sha384" && c.WebSubSignature != "sha512":
		return bad("WebSubSignature", "%q: use sha1, sha256, sha384 or sha512", c.WebSubSignature)
	case c.WebhookConcurrency < 1:
		return bad("WebhookConcurrency", "must be at least 1")
	case c.WebhookRetryBase <= 0:
		return bad("WebhookRetryBase", "must be positive")
	case c.WebhookRetryMax < c.WebhookRetryBase:
		return bad("WebhookRetryMax", "must be at least --webhook-retry-base (%v)", c.WebhookRetryBase)
	case c.WebhookSuspendAfter < 0:
		return bad("WebhookSuspendAfter", "must not be negative (0 = never suspend)")
	case c.WebSubMaxPerHost < 0:
		return bad("WebSubMaxPerHost", "must not be negative (0 = no limit)")
	case c.WebSubRate < 0:
		return bad("WebSubRate", "must not be negative (0 = no limit)")
	case c.TaskLease < time.Second:
		return bad("TaskLease", "must be at least 1s (it is renewed every half)")
	case c.Store != "" && !hasAnyPrefix(c.Store, "redis://", "rediss://", "redis+cluster://", "rediss+cluster://"):
		return bad("Store", "%q: give redis://HOST:PORT/DB, redis+cluster://HOST:PORT, or leave it empty for the embedded store", c.Store)
	case c.Data == "":
		return bad("Data", "must not be empty")
	case c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}"):
		return bad("RedisPrefix", "%q: must be non-empty, without '{' or '}'", c.RedisPrefix)
	case strings.ContainsAny(c.NodeID, " \t\n*?[]"):
		return bad("NodeID", "%q: must not contain blanks or glob characters", c.NodeID)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("PublicURL", "%q is not an absolute http or https URL", c.PublicURL)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("TLSCert", "give both --tls-cert and --tls-key, or neither")
	}
	if c.AdminListen != "" && c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		return bad("AdminListen", "%q is also --listen: give another address, or leave it empty", c.AdminListen)
	}
	if err := c.validateGrip(bad); err != nil {
		return err
	}
	for _, o := range c.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			return bad("CORSOrigins", "%q: %v", o, err)
		}
	}
	for _, f := range c.FrameAncestors {
		if !frameSource.MatchString(f) {
			return bad("FrameAncestors", "%q: want 'self', *, or an origin such as https://cms.example.com or https://*.example.com", f)
		}
	}
	for _, k := range c.PublishKeys {
		if strings.TrimSpace(k) == "" {
			return bad("PublishKeys", "a key is empty")
		}
	}
	if err := c.validateAccess(bad); err != nil {
		return err
	}
	switch {
	case c.MaxBody <= 0:
		return bad("MaxBody", "must be positive, got %d", c.MaxBody)
	case c.MaxResponseBytes <= 0:
		return bad("MaxResponseBytes", "must be positive, got %d", c.MaxResponseBytes)
	case c.FeedsMax <= 0:
		return bad("FeedsMax", "must be positive, got %d", c.FeedsMax)
	case c.FeedsLinger <= 0:
		return bad("FeedsLinger", "must be positive, got %s", c.FeedsLinger)
	case c.FeedsMinInterval <= 0:
		return bad("FeedsMinInterval", "must be positive, got %s", c.FeedsMinInterval)
	case c.FeedsMaxInterval < c.FeedsMinInterval:
		return bad("FeedsMaxInterval", "must be at least --feeds-min-interval (%s), got %s", c.FeedsMinInterval, c.FeedsMaxInterval)
	case c.FeedsHostConcurrency <= 0:
		return bad("FeedsHostConcurrency", "must be positive, got %d", c.FeedsHostConcurrency)
	case c.FeedsHostInterval < 0:
		return bad("FeedsHostInterval", "must not be negative, got %s", c.FeedsHostInterval)
	case c.FetchMinInterval < 0:
		return bad("FetchMinInterval", "must not be negative, got %s", c.FetchMinInterval)
	case c.HistoryMaxEvents < 0:
		return bad("HistoryMaxEvents", "must not be negative, got %d", c.HistoryMaxEvents)
	case c.HistoryMaxAge < 0:
		return bad("HistoryMaxAge", "must not be negative, got %s", c.HistoryMaxAge)
	case c.Heartbeat < time.Second:
		return bad("Heartbeat", "must be at least 1s, got %s", c.Heartbeat)
	case c.SubscriberBuffer < 1:
		return bad("SubscriberBuffer", "must be at least 1, got %d", c.SubscriberBuffer)
	case c.PollTimeout <= 0:
		return bad("PollTimeout", "must be positive, got %s", c.PollTimeout)
	case c.PollMaxTimeout < c.PollTimeout:
		return bad("PollMaxTimeout", "must be at least poll-timeout (%s), got %s", c.PollTimeout, c.PollMaxTimeout)
	case c.SSERetry < 0:
		return bad("SSERetry", "must not be negative, got %s", c.SSERetry)
	case c.ShutdownTimeout < 0:
		return bad("ShutdownTimeout", "must not be negative, got %s", c.ShutdownTimeout)
	case c.ShutdownDelay < 0 || c.ShutdownDelay > 10*time.Minute:
		return bad("ShutdownDelay", "must be between 0 and 10m, got %s", c.ShutdownDelay)
	case c.ReadTimeout < 0:
		return bad("ReadTimeout", "must not be negative, got %s", c.ReadTimeout)
	case c.IdleTimeout <= 0:
		return bad("IdleTimeout", "must be positive, got %s", c.IdleTimeout)
	case c.MaxConnsPerIP < 0:
		return bad("MaxConnsPerIP", "must not be negative, got %d", c.MaxConnsPerIP)
	case c.PublishRate < 0 || math.IsNaN(c.PublishRate) || math.IsInf(c.PublishRate, 0):
		return bad("PublishRate", "must be a number of at least 0, got %v", c.PublishRate)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return bad("LogLevel", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		return bad("LogFormat", "%q is not text or json", c.LogFormat)
	}
	return nil
}

// checkOrigin accepts "*" or a web origin: scheme://host[:port], nothing
// after it, as a browser sends in its Origin header.
// frameSource is a CSP frame-ancestors source hubbub accepts: 'self', *,
// or an http(s) origin whose host may start with a *. wildcard. Nothing
// else can reach the header (no spaces, quotes, commas or semicolons).
var frameSource = regexp.MustCompile(`^(?:'self'|\*|https?://(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?)$`)

func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("want * or scheme://host[:port], e.g. https://app.example.com")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errors.New("an origin has no path, query or user: e.g. https://app.example.com")
	}
	return nil
}

// validateAccess checks the settings of who may read and publish.
func (c Config) validateAccess(bad func(field, format string, a ...any) error) error {
	jwt := c.JWTSecret != "" || c.JWTPublicKey != "" || c.JWKSURL != ""
	switch {
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		return bad("JWTSecret", "is %d bytes; use at least 32 (e.g. openssl rand -hex 32)", len(c.JWTSecret))
	case c.SubscribeAuth != "optional" && c.SubscribeAuth != "required":
		return bad("SubscribeAuth", "%q: use optional or required", c.SubscribeAuth)
	case c.SubscribeAuth == "required" && !jwt:
		return bad("SubscribeAuth", "required needs a way to verify tokens: --jwt-secret, --jwt-public-key or --jwks-url")
	case len(c.Private) > 0 && !jwt:
		return bad("Private", "private topics need a way to verify tokens: --jwt-secret, --jwt-public-key or --jwks-url")
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("JWKSURL", "%q is not an absolute http or https URL", c.JWKSURL)
		}
	}
	for _, p := range c.Private {
		if _, err := event.CompilePattern(p); err != nil {
			return bad("Private", "%q: %v", p, err)
		}
	}
	for _, s := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				return bad("TrustedProxies", "%q is not a CIDR (10.0.0.0/8) or an address", s)
			}
		}
	}
	return nil
}

// parseLevel reads debug, info, warn or error, in any case.

// validateGrip checks the GRIP proxy settings (the grip package checks
// routes again when it builds them).
func (c *Config) validateGrip(bad func(field, format string, a ...any) error) error {
	switch {
	case c.GripMaxHeld < 1:
		return bad("GripMaxHeld", "must be at least 1, got %d", c.GripMaxHeld)
	case c.GripMaxWebSockets < 1:
		return bad("GripMaxWebSockets", "must be at least 1, got %d", c.GripMaxWebSockets)
	case c.GripMaxOriginBody < 1:
		return bad("GripMaxOriginBody", "must be positive, got %d", c.GripMaxOriginBody)
	case c.GripOriginTimeout <= 0:
		return bad("GripOriginTimeout", "must be positive, got %s", c.GripOriginTimeout)
	}
	if c.GripListen == "" {
		return nil
	}
	if c.GripListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		return bad("GripListen", "%q is also --listen: give another address", c.GripListen)
	}
	if c.GripOrigin == "" && len(c.GripRoutes) == 0 {
		return bad("GripOrigin", "--grip-listen needs --grip-origin or a --grip-route to proxy to")
	}
	key, err := GripKey(c.GripSigKey)
	if err != nil {
		return bad("GripSigKey", "%v", err)
	}
	if len(key) < 32 {
		return bad("GripSigKey", "--grip-listen needs --grip-sig-key, a secret of at least 32 bytes that the origin is given too (it checks Grip-Sig with it)")
	}
	origins := []string{c.GripOrigin}
	for _, r := range c.GripRoutes {
		prefix, target, ok := strings.Cut(r, "=")
		if !ok || !strings.HasPrefix(prefix, "/") {
			return bad("GripRoutes", "%q: want /PREFIX=http://HOST:PORT", r)
		}
		origins = append(origins, target)
	}
	for _, o := range origins {
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			return bad("GripOrigin", "%q: want http://HOST:PORT or https://HOST:PORT", o)
		}
	}
	return nil
}
