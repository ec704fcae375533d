package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func newPolicy(t *testing.T, o Options) *Policy {
	t.Helper()
	p, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func req(remote, host string, headers ...string) *http.Request {
	r := httptest.NewRequest("GET", "http://"+host+"/events", nil)
	r.RemoteAddr, r.Host = remote, host
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func TestLocalRule(t *testing.T) {
	plain := newPolicy(t, Options{})
	proxied := newPolicy(t, Options{TrustedProxies: []string{"127.0.0.1/32", "10.0.0.0/8"}})
	for _, c := range []struct {
		name   string
		p      *Policy
		r      *http.Request
		local  bool
		client string
	}{
		{"loopback, loopback host", plain, req("127.0.0.1:5000", "127.0.0.1:8080"), true, "127.0.0.1"},
		{"localhost name", plain, req("127.0.0.1:5000", "localhost:8080"), true, "127.0.0.1"},
		{"ipv6 loopback", plain, req("[::1]:5000", "[::1]:8080"), true, "::1"},
		{"no port in Host", plain, req("127.0.0.1:5000", "localhost"), true, "127.0.0.1"},
		{"remote peer", plain, req("192.0.2.7:5000", "127.0.0.1:8080"), false, "192.0.2.7"},
		// Finding 2: a same-host proxy makes every client loopback.
		{"proxied: X-Forwarded-For", plain, req("127.0.0.1:5000", "127.0.0.1:8080", "X-Forwarded-For", "198.51.100.77"), false, "127.0.0.1"},
		{"proxied: Forwarded", plain, req("127.0.0.1:5000", "127.0.0.1:8080", "Forwarded", "for=198.51.100.77"), false, "127.0.0.1"},
		{"proxied: X-Real-IP", plain, req("127.0.0.1:5000", "127.0.0.1:8080", "X-Real-IP", "198.51.100.77"), false, "127.0.0.1"},
		// Finding 5: DNS rebinding sends the attacker's name as Host.
		{"rebinding Host", plain, req("127.0.0.1:5000", "attacker.example:8080"), false, "127.0.0.1"},
		{"rebinding Host, no port", plain, req("127.0.0.1:5000", "attacker.example"), false, "127.0.0.1"},
		{"trusted proxy, remote client", proxied, req("127.0.0.1:5000", "127.0.0.1:8080", "X-Forwarded-For", "198.51.100.77"), false, "198.51.100.77"},
		{"trusted proxy, spoofed hop left of the real one", proxied, req("127.0.0.1:5000", "127.0.0.1:8080", "X-Forwarded-For", "127.0.0.1, 198.51.100.77"), false, "198.51.100.77"},
		{"trusted proxy chain", proxied, req("10.1.2.3:5000", "127.0.0.1:8080", "X-Forwarded-For", "203.0.113.9, 10.9.9.9"), false, "203.0.113.9"},
		{"trusted proxy, local client", proxied, req("127.0.0.1:5000", "localhost:8080", "X-Forwarded-For", "127.0.0.1"), true, "127.0.0.1"},
		{"trusted proxy, Forwarded", proxied, req("127.0.0.1:5000", "h.example", "Forwarded", `for="[2001:db8::1]:4711";proto=https`), false, "2001:db8::1"},
		{"trusted proxy, garbage hop", proxied, req("127.0.0.1:5000", "h.example", "X-Forwarded-For", "unknown"), false, "unknown"},
		{"untrusted peer's header is ignored", proxied, req("192.0.2.7:5000", "h.example", "X-Forwarded-For", "127.0.0.1"), false, "192.0.2.7"},
		{"trusted proxy, no header", proxied, req("10.0.0.1:5000", "h.example"), false, "10.0.0.1"},
	} {
		if got := c.p.IsLocal(c.r); got != c.local {
			t.Errorf("%s: IsLocal = %v, want %v", c.name, got, c.local)
		}
		if got := c.p.ClientAddr(c.r); got != c.client {
			t.Errorf("%s: ClientAddr = %q, want %q", c.name, got, c.client)
		}
	}
}

func mint(t testing.TB, c HubbubClaim, ttl time.Duration) string {
	t.Helper()
	tok, err := Mint(testSecret, c, "u1", "", "", time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) *http.Request {
	return req("192.0.2.7:5000", "hub.example", "Authorization", "Bearer "+tok)
}

func TestDecisions(t *testing.T) {
	p := newPolicy(t, Options{
		PublishKeys: []string{"pk"}, AdminKey: "ak", JWTSecret: testSecret,
		Private: []string{"user/*/**", "secret"},
	})
	cover := mint(t, HubbubClaim{Subscribe: []string{"user/42/**", "secret"}, Publish: []string{"chat/*"}}, time.Hour)
	other := mint(t, HubbubClaim{Subscribe: []string{"user/7/**"}}, time.Hour)
	admin := mint(t, HubbubClaim{Admin: true}, time.Hour)
	expired, err := Mint(testSecret, HubbubClaim{Subscribe: []string{"**"}}, "", "", "", time.Now().Add(-time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	anon := req("192.0.2.7:5000", "hub.example")
	for _, c := range []struct {
		name    string
		r       *http.Request
		read    []string
		publish []string
		want    int
	}{
		{"anonymous reads public", anon, []string{"news"}, nil, 0},
		{"anonymous reads a public pattern", anon, []string{"news/**"}, nil, 0},
		{"anonymous reads private", anon, []string{"user/42/inbox"}, nil, 401},
		{"anonymous pattern that can match private", anon, []string{"user/**"}, nil, 401},
		{"anonymous pattern that cannot", anon, []string{"user/x"}, nil, 0},
		{"covering token", bearer(cover), []string{"user/42/inbox", "secret", "news"}, nil, 0},
		{"covering token, sub-pattern", bearer(cover), []string{"user/42/a/**"}, nil, 0},
		{"token, pattern wider than it covers", bearer(cover), []string{"user/*/inbox"}, nil, 403},
		{"other user's token", bearer(other), []string{"user/42/inbox"}, nil, 403},
		{"expired token, private", bearer(expired), []string{"user/42/inbox"}, nil, 401},
		{"expired token, public", bearer(expired), []string{"news"}, nil, 0},
		{"bad token, private", bearer("nonsense"), []string{"secret"}, nil, 401},
		{"publish key reads private", bearer("pk"), []string{"secret"}, nil, 403},
		{"admin key reads private and $sys", bearer("ak"), []string{"secret", "$sys/stats/n"}, nil, 0},
		{"admin token reads $sys", bearer(admin), []string{"$sys/stats/*"}, nil, 0},
		{"token reads $sys", bearer(cover), []string{"$sys/stats/n"}, nil, 403},
		{"anonymous reads $sys", anon, []string{"$sys/stats/n"}, nil, 403},
		{"anonymous publishes", anon, nil, []string{"chat/a"}, 401},
		{"publish key publishes", bearer("pk"), nil, []string{"anything"}, 0},
		{"admin key publishes", bearer("ak"), nil, []string{"anything"}, 0},
		{"token publishes covered", bearer(cover), nil, []string{"chat/a", "chat/b"}, 0},
		{"token publishes partly covered", bearer(cover), nil, []string{"chat/a", "news"}, 403},
		{"token without publish", bearer(other), nil, []string{"chat/a"}, 403},
		{"expired token publishes", bearer(expired), nil, []string{"chat/a"}, 401},
		{"wrong key publishes", bearer("nope"), nil, []string{"chat/a"}, 401},
	} {
		id := p.Identify(c.r)
		var d Decision
		if c.read != nil {
			d = p.Read(id, c.read)
		} else {
			d = p.Publish(id, c.publish)
		}
		if d.Status != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.name, d.Status, d.Reason, c.want)
		}
		if d.Status != 0 && d.Reason == "" {
			t.Errorf("%s: no reason", c.name)
		}
	}
	// A read that relied on a token ends when it expires; one that did not
	// has no end.
	id := p.Identify(bearer(cover))
	if d := p.Read(id, []string{"secret"}); !d.NotAfter.Equal(id.Expires()) || d.NotAfter.IsZero() {
		t.Errorf("NotAfter %v, want the token's expiry %v", d.NotAfter, id.Expires())
	}
	if d := p.Read(id, []string{"news"}); !d.NotAfter.IsZero() {
		t.Errorf("public read has NotAfter %v", d.NotAfter)
	}
}

func TestAdminAndLocalPublish(t *testing.T) {
	open := newPolicy(t, Options{})
	local := req("127.0.0.1:5000", "127.0.0.1:8080")
	remote := req("192.0.2.7:5000", "hub.example")
	proxied := req("127.0.0.1:5000", "127.0.0.1:8080", "X-Forwarded-For", "198.51.100.77")
	check := func(name string, d Decision, want int) {
		t.Helper()
		if d.Status != want {
			t.Errorf("%s: %d (%s), want %d", name, d.Status, d.Reason, want)
		}
	}
	check("no keys: local publishes", open.Publish(open.Identify(local), []string{"a"}), 0)
	check("no keys: remote publishes", open.Publish(open.Identify(remote), []string{"a"}), 403)
	check("no keys: proxied publishes", open.Publish(open.Identify(proxied), []string{"a"}), 403)
	check("no keys: local administers", open.Admin(open.Identify(local)), 0)
	check("no keys: proxied administers", open.Admin(open.Identify(proxied)), 401)
	// With JWT verification but no publish key, local clients need a
	// credential too.
	jwtOnly := newPolicy(t, Options{JWTSecret: testSecret})
	check("jwt: local publishes without token", jwtOnly.Publish(jwtOnly.Identify(local), []string{"a"}), 401)
	check("jwt: local still administers", jwtOnly.Admin(jwtOnly.Identify(local)), 0)
	keyed := newPolicy(t, Options{AdminKey: "ak", JWTSecret: testSecret})
	check("admin key: local administers", keyed.Admin(keyed.Identify(local)), 401)
	check("admin key: key", keyed.Admin(keyed.Identify(bearer("ak"))), 0)
	check("admin key: token", keyed.Admin(keyed.Identify(bearer(mint(t, HubbubClaim{Admin: true}, time.Hour)))), 0)
	check("admin key: plain token", keyed.Admin(keyed.Identify(bearer(mint(t, HubbubClaim{}, time.Hour)))), 403)
}

func TestSubscribeAuthRequired(t *testing.T) {
	p := newPolicy(t, Options{JWTSecret: testSecret, SubscribeAuthRequired: true})
	anon := req("192.0.2.7:5000", "hub.example")
	if d := p.Read(p.Identify(anon), []string{"news"}); d.Status != 401 {
		t.Errorf("anonymous read with subscribe-auth required: %d", d.Status)
	}
	tok := mint(t, HubbubClaim{Subscribe: []string{"news/**"}}, time.Hour)
	if d := p.Read(p.Identify(bearer(tok)), []string{"news/a/*"}); d.Status != 0 {
		t.Errorf("covered pattern: %d %s", d.Status, d.Reason)
	}
	if d := p.Read(p.Identify(bearer(tok)), []string{"**"}); d.Status != 403 {
		t.Errorf("catch-all pattern: %d", d.Status)
	}
}

func TestCredentialSources(t *testing.T) {
	p := newPolicy(t, Options{JWTSecret: testSecret, Private: []string{"p"}})
	tok := mint(t, HubbubClaim{Subscribe: []string{"p"}}, time.Hour)
	q := req("192.0.2.7:5000", "hub.example")
	q.URL.RawQuery = "topic=p&access_token=" + tok
	ck := req("192.0.2.7:5000", "hub.example")
	ck.AddCookie(&http.Cookie{Name: CookieName, Value: tok})
	for name, r := range map[string]*http.Request{"header": bearer(tok), "query": q, "cookie": ck} {
		if d := p.Read(p.Identify(r), []string{"p"}); d.Status != 0 {
			t.Errorf("%s: %d %s", name, d.Status, d.Reason)
		}
	}
	// A key is accepted from the header only.
	kp := newPolicy(t, Options{PublishKeys: []string{"pk"}})
	kq := req("192.0.2.7:5000", "hub.example")
	kq.URL.RawQuery = "access_token=pk"
	if id := kp.Identify(kq); id.Kind != Anonymous {
		t.Errorf("a key in the query counted as %v", id.Kind)
	}
}

func TestWebSubHook(t *testing.T) {
	p := newPolicy(t, Options{PublishKeys: []string{"pk"}, JWTSecret: testSecret, Private: []string{"p/**"}})
	tok := mint(t, HubbubClaim{Subscribe: []string{"p/**"}, Publish: []string{"http:/**"}}, time.Hour)
	anon := req("192.0.2.7:5000", "hub.example")
	for _, c := range []struct {
		name, mode, topic string
		r                 *http.Request
		want              int
		capped            bool
	}{
		{"public subscribe", "subscribe", "news", anon, 0, false},
		{"private subscribe, anonymous", "subscribe", "p/x", anon, 401, false},
		{"private subscribe, token", "subscribe", "p/x", bearer(tok), 0, true},
		{"$sys subscribe", "subscribe", "$sys/stats/n", bearer(tok), 403, false},
		{"unsubscribe", "unsubscribe", "p/x", anon, 0, false},
		{"thin ping, anonymous", "publish", "http://blog.example/feed", anon, 401, false},
		{"thin ping, key", "publish", "http://blog.example/feed", bearer("pk"), 0, false},
		{"thin ping, token", "publish", "http://blog.example/feed", bearer(tok), 0, true},
		{"thin ping, token not covering", "publish", "https://blog.example/feed", bearer(tok), 403, false},
	} {
		notAfter, status, reason := p.WebSub(c.r, c.mode, c.topic)
		if status != c.want || (status != 0) != (reason != "") {
			t.Errorf("%s: %d %q, want %d", c.name, status, reason, c.want)
		}
		if c.capped == notAfter.IsZero() {
			t.Errorf("%s: notAfter %v, capped %v", c.name, notAfter, c.capped)
		}
	}
	// With no keys and no tokens, thin pings stay open.
	open := newPolicy(t, Options{})
	if _, status, _ := open.WebSub(anon, "publish", "http://blog.example/feed"); status != 0 {
		t.Errorf("open hub refuses a thin ping: %d", status)
	}
}

// signRaw signs a token with any method and key, bypassing Mint.
func signRaw(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writePEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hubbubClaims(exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"exp": exp.Unix(), "hubbub": map[string]any{"subscribe": []string{"p"}}}
}

func TestTokenVerification(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	later := time.Now().Add(time.Hour)
	pemPath := writePEM(t, &rsaKey.PublicKey)
	pemBytes, _ := os.ReadFile(pemPath)

	hs := newPolicy(t, Options{JWTSecret: testSecret, JWTIssuer: "iss", JWTAudience: "aud"})
	rs := newPolicy(t, Options{JWTPublicKeyFile: pemPath})
	es := newPolicy(t, Options{JWTPublicKeyFile: writePEM(t, &ecKey.PublicKey)})
	ed := newPolicy(t, Options{JWTPublicKeyFile: writePEM(t, edPub)})
	withIss := func(c jwt.MapClaims) jwt.MapClaims { c["iss"], c["aud"] = "iss", "aud"; return c }
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, hubbubClaims(later)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, c := range []struct {
		name string
		p    *Policy
		tok  string
		ok   bool
	}{
		{"HS256", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(hubbubClaims(later)), ""), true},
		{"HS512", hs, signRaw(t, jwt.SigningMethodHS512, []byte(testSecret), withIss(hubbubClaims(later)), ""), true},
		{"wrong secret", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), withIss(hubbubClaims(later)), ""), false},
		{"wrong issuer", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"iss": "other", "aud": "aud", "exp": later.Unix()}, ""), false},
		{"wrong audience", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"iss": "iss", "aud": "other", "exp": later.Unix()}, ""), false},
		{"alg none", hs, none, false},
		{"expired past the leeway", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(hubbubClaims(time.Now().Add(-2*Leeway))), ""), false},
		{"expired within the leeway", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(hubbubClaims(time.Now().Add(-Leeway/2))), ""), true},
		{"not yet valid", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(jwt.MapClaims{"nbf": time.Now().Add(time.Minute).Unix()}), ""), false},
		{"bad pattern in claim", hs, signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(jwt.MapClaims{"hubbub": map[string]any{"subscribe": []string{"a/**/**"}}}), ""), false},
		{"RS256", rs, signRaw(t, jwt.SigningMethodRS256, rsaKey, hubbubClaims(later), ""), true},
		{"PS384", rs, signRaw(t, jwt.SigningMethodPS384, rsaKey, hubbubClaims(later), ""), true},
		// Algorithm confusion: an HMAC token keyed with the public key's PEM.
		{"HS256 with the PEM as secret", rs, signRaw(t, jwt.SigningMethodHS256, pemBytes, hubbubClaims(later), ""), false},
		{"ES256 on an RSA key", rs, signRaw(t, jwt.SigningMethodES256, ecKey, hubbubClaims(later), ""), false},
		{"ES256", es, signRaw(t, jwt.SigningMethodES256, ecKey, hubbubClaims(later), ""), true},
		{"EdDSA", ed, signRaw(t, jwt.SigningMethodEdDSA, edKey, hubbubClaims(later), ""), true},
		{"EdDSA on an EC key", es, signRaw(t, jwt.SigningMethodEdDSA, edKey, hubbubClaims(later), ""), false},
	} {
		id := c.p.Identify(bearer(c.tok))
		if (id.Kind == Token) != c.ok {
			t.Errorf("%s: kind %v err %v, want ok=%v", c.name, id.Kind, id.Err, c.ok)
		}
	}
	id := hs.Identify(bearer(signRaw(t, jwt.SigningMethodHS256, []byte(testSecret), withIss(hubbubClaims(time.Now().Add(-time.Minute))), "")))
	if !errors.Is(id.Err, ErrTokenExpired) {
		t.Errorf("expired token: err %v", id.Err)
	}
}

// TestJWKS serves a key set from an httptest server: a token signed by
// a key in it verifies; after the set changes (an unknown kid makes the
// hub fetch it again), a token of the new key verifies too.
func TestJWKS(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := []map[string]any{rsaJWK("k1", &k1.PublicKey)}
	fetches := make(chan struct{}, 100)
	var current []byte
	set := func() { current, _ = json.Marshal(map[string]any{"keys": keys}) }
	set()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(current)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, Options{JWKSURL: srv.URL, JWKSClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if id := p.Identify(bearer(signRaw(t, jwt.SigningMethodRS256, k1, hubbubClaims(later), "k1"))); id.Kind != Token {
		t.Fatalf("k1 token refused: %v", id.Err)
	}
	if id := p.Identify(bearer(signRaw(t, jwt.SigningMethodHS256, []byte("x"), hubbubClaims(later), "k1"))); id.Kind == Token {
		t.Fatal("an HMAC token was accepted with only a JWKS configured")
	}
	keys = append(keys, ecJWK("k2", &k2.PublicKey))
	set()
	if id := p.Identify(bearer(signRaw(t, jwt.SigningMethodES256, k2, hubbubClaims(later), "k2"))); id.Kind != Token {
		t.Fatalf("k2 token refused after the set changed: %v", id.Err)
	}
	if len(fetches) < 2 {
		t.Fatalf("the key set was fetched %d times, want a refetch for the unknown kid", len(fetches))
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	raw, _ := k.Bytes() // uncompressed point: 0x04 || X || Y
	return map[string]any{"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
		"x": b64(pad(raw[1:33])), "y": b64(pad(raw[33:]))}
}

func TestMintRoundTrip(t *testing.T) {
	tok, err := Mint(testSecret, HubbubClaim{Subscribe: []string{"user/42/**"}, Publish: []string{"chat/*"}, Admin: true}, "sub-1", "iss", "aud", time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p := newPolicy(t, Options{JWTSecret: testSecret, JWTIssuer: "iss", JWTAudience: "aud"})
	id := p.Identify(bearer(tok))
	if id.Kind != Token || id.Claims.Subject != "sub-1" || !id.Claims.Admin || len(id.Claims.Subscribe) != 1 || len(id.Claims.Publish) != 1 {
		t.Fatalf("round trip: %+v %v", id.Claims, id.Err)
	}
	if _, err := Mint(testSecret, HubbubClaim{Subscribe: []string{"a/**/**"}}, "", "", "", time.Now(), 0); err == nil {
		t.Fatal("Mint signed an invalid pattern")
	}
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("not a JWS: %s", tok)
	}
}

// The WebSub hub's Authorize option has exactly this type.
var _ func(r *http.Request, mode, topic string) (time.Time, int, string) = (*Policy)(nil).WebSub
