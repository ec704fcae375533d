package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/limit"
)

// newAccess builds the access policy from the configuration. With
// --jwks-url the key set refreshes in the background until ctx ends.
func newAccess(ctx context.Context, cfg config.Config, log *slog.Logger) (*access.Policy, error) {
	return access.New(ctx, access.Options{
		PublishKeys: cfg.PublishKeys, AdminKey: cfg.AdminKey,
		JWTSecret: cfg.JWTSecret, JWTPublicKeyFile: cfg.JWTPublicKey, JWKSURL: cfg.JWKSURL,
		JWTIssuer: cfg.JWTIssuer, JWTAudience: cfg.JWTAudience,
		Private: cfg.Private, SubscribeAuthRequired: cfg.SubscribeAuth == "required",
		TrustedProxies: cfg.TrustedProxies, Logger: log,
	})
}

// logAccess states at startup who may publish, subscribe and administer.
// What is risky about it is said by risks, at warn level.
func (s *Server) logAccess() {
	publish, subscribe, admin := s.access.Summary()
	jwt := s.cfg.JWTSecret != "" || s.cfg.JWTPublicKey != "" || s.cfg.JWKSURL != ""
	if len(s.cfg.PublishKeys) == 0 && !jwt {
		publish += " (set --publish-key or --jwt-secret to publish from elsewhere)"
	}
	s.log.Info("who may publish: "+publish, "publish_keys", len(s.cfg.PublishKeys), "jwt", jwt)
	s.log.Info("who may subscribe: "+subscribe, "private", len(s.cfg.Private), "subscribe_auth", s.cfg.SubscribeAuth)
	s.log.Info("who may administer: "+admin, "admin_key", s.cfg.AdminKey != "", "trusted_proxies", len(s.cfg.TrustedProxies))
}

// ClientAddr is the address of r's client, behind --trusted-proxy too
// (for rate limits and logs).
func (s *Server) ClientAddr(r *http.Request) string { return s.access.ClientAddr(r) }

// rateKey names the publisher whose --publish-rate bucket a publish draws
// on: a token's subject (so one subject's many tokens share a bucket), a
// key (by its hash, never the key itself), else the client address.
func (s *Server) rateKey(r *http.Request, id access.Identity) string {
	switch {
	case id.Kind == access.Token && id.Claims.Subject != "":
		return "sub:" + id.Claims.Subject
	case id.Kind != access.Anonymous:
		return limit.DefaultRateKey(r, s.access.ClientAddr)
	}
	return "addr:" + s.access.ClientAddr(r)
}
