package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hubbub/hubbub/event"
)

// Leeway is the clock skew allowed on a token's exp and nbf.
const Leeway = 5 * time.Second

// Limits on what a token may carry, so that checking one is cheap.
const (
	MaxTokenLen      = 8 << 10 // bytes of the encoded token
	MaxTokenPatterns = 256     // subscribe plus publish patterns
)

// Claims are what hubbub reads from a verified token.
type Claims struct {
	Subject   string
	Expires   time.Time // zero: the token never expires
	Subscribe []*event.Pattern
	Publish   []*event.Pattern
	Admin     bool
}

// HubbubClaim is the token's "hubbub" claim as sent.
type HubbubClaim struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	Admin     bool     `json:"admin,omitempty"`
}

// tokenClaims is the JWT body hubbub reads and writes.
type tokenClaims struct {
	jwt.RegisteredClaims
	Hubbub *HubbubClaim `json:"hubbub,omitempty"`
}

// ErrTokenExpired is wrapped by the error of a token past its exp.
var ErrTokenExpired = errors.New("the token has expired")

// verifier checks JWTs with the keys configured. It is immutable after
// newVerifier and safe for concurrent use; the JWKS key set refreshes
// itself in the background until the context given to newVerifier ends.
type verifier struct {
	secret []byte
	public any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	jwks   keyfunc.Keyfunc
	parser *jwt.Parser
	now    func() time.Time
}

// newVerifier returns nil when no key is configured.
func newVerifier(ctx context.Context, o Options, log *slog.Logger) (*verifier, error) {
	if o.JWTSecret == "" && o.JWTPublicKeyFile == "" && o.JWKSURL == "" {
		return nil, nil
	}
	v := &verifier{now: o.Now}
	var algs []string
	if o.JWTSecret != "" {
		v.secret = []byte(o.JWTSecret)
		algs = append(algs, "HS256", "HS384", "HS512")
	}
	if o.JWTPublicKeyFile != "" {
		key, kAlgs, err := readPublicKey(o.JWTPublicKeyFile)
		if err != nil {
			return nil, err
		}
		v.public = key
		algs = append(algs, kAlgs...)
	}
	if o.JWKSURL != "" {
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{o.JWKSURL}, keyfunc.Override{
			Client: o.JWKSClient,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					log.Warn("refreshing the JWKS key set failed", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("--jwks-url %s: %w", o.JWKSURL, err)
		}
		v.jwks = k
		algs = append(algs, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(dedupe(algs)), jwt.WithLeeway(Leeway), jwt.WithTimeFunc(v.now)}
	if o.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(o.JWTIssuer))
	}
	if o.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(o.JWTAudience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// readPublicKey reads a PEM public key (PKIX "PUBLIC KEY", PKCS#1 "RSA
// PUBLIC KEY", or a certificate) and the algorithms it may verify.
func readPublicKey(path string) (any, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--jwt-public-key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("--jwt-public-key %s: no PEM block found", path)
	}
	var key any
	switch block.Type {
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--jwt-public-key %s: %w", path, err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("--jwt-public-key %s: unsupported key type %T (use RSA, ECDSA P-256/384/521 or Ed25519)", path, key)
}

// key finds the verification key for a token: the secret for HMAC, else
// the JWKS key named by kid, else the public key file. The parser has
// already refused algorithms outside the configured kinds.
func (v *verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		if v.secret == nil {
			return nil, errors.New("HMAC tokens are not accepted")
		}
		return v.secret, nil
	}
	_, hasKID := t.Header["kid"]
	switch {
	case v.jwks != nil && (hasKID || v.public == nil):
		return v.jwks.Keyfunc(t)
	case v.public != nil:
		return v.public, nil
	}
	return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
}

// verify checks a token's signature, times, issuer and audience, and
// reads its claims. Its errors are fit to show the client.
func (v *verifier) verify(raw string) (*Claims, error) {
	if len(raw) > MaxTokenLen {
		return nil, fmt.Errorf("the token is longer than %d bytes", MaxTokenLen)
	}
	var tc tokenClaims
	if _, err := v.parser.ParseWithClaims(raw, &tc, v.key); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, ErrTokenExpired
		}
		return nil, fmt.Errorf("the token is not valid: %w", err)
	}
	return claimsOf(&tc)
}

// claimsOf reads the hubbub claim; an invalid pattern makes the whole
// token invalid.
func claimsOf(tc *tokenClaims) (*Claims, error) {
	c := &Claims{Subject: tc.Subject}
	if tc.ExpiresAt != nil {
		c.Expires = tc.ExpiresAt.Time
	}
	h := tc.Hubbub
	if h == nil {
		return c, nil
	}
	if len(h.Subscribe)+len(h.Publish) > MaxTokenPatterns {
		return nil, fmt.Errorf("the token is not valid: more than %d patterns in its hubbub claim", MaxTokenPatterns)
	}
	var err error
	if c.Subscribe, err = compileAll("subscribe", h.Subscribe); err != nil {
		return nil, err
	}
	if c.Publish, err = compileAll("publish", h.Publish); err != nil {
		return nil, err
	}
	c.Admin = h.Admin
	return c, nil
}

func compileAll(field string, patterns []string) ([]*event.Pattern, error) {
	out := make([]*event.Pattern, 0, len(patterns))
	for _, s := range patterns {
		p, err := event.CompilePattern(s)
		if err == nil && !event.IsPattern(s) {
			err = event.ValidateTopic(s)
		}
		if err != nil {
			return nil, fmt.Errorf("the token is not valid: hubbub.%s: %w", field, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Mint signs a token with an HMAC secret (HS256): the hubbub claim, the
// subject, issuer and audience when not empty, iat now and exp after ttl
// (no exp when ttl is 0). It is for scripts, tests and `hubbub token`.
func Mint(secret string, claim HubbubClaim, subject, issuer, audience string, now time.Time, ttl time.Duration) (string, error) {
	if secret == "" {
		return "", errors.New("no secret given")
	}
	for _, list := range [][]string{claim.Subscribe, claim.Publish} {
		if _, err := compileAll("pattern", list); err != nil {
			return "", err
		}
	}
	tc := tokenClaims{Hubbub: &claim}
	tc.Subject, tc.Issuer = subject, issuer
	tc.IssuedAt = jwt.NewNumericDate(now)
	if audience != "" {
		tc.Audience = jwt.ClaimStrings{audience}
	}
	if ttl > 0 {
		tc.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString([]byte(secret))
}
