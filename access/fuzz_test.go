package access

import (
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzIdentify feeds arbitrary credentials (header, query, cookie) to
// Identify: it never panics, and an identity it accepts as a token has
// valid claims.
func FuzzIdentify(f *testing.F) {
	tok, _ := Mint(testSecret, HubbubClaim{Subscribe: []string{"a/*"}}, "", "", "", time.Now(), time.Hour)
	f.Add("Bearer "+tok, "", "")
	f.Add("", "access_token="+url.QueryEscape(tok), "")
	f.Add("", "", tok)
	f.Add("Bearer pk", "", "")
	f.Add("bearer  ", "access_token=&access_token=x", "x")
	f.Add("Basic abc", "access_token=a.b.c", "e30.e30.")
	p, err := New(f.Context(), Options{PublishKeys: []string{"pk"}, AdminKey: "ak", JWTSecret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz, query, cookie string) {
		r := httptest.NewRequest("GET", "http://h/events", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authz)
		r.Header.Set("Cookie", CookieName+"="+cookie)
		id := p.Identify(r)
		switch id.Kind {
		case Token:
			if id.Claims == nil || id.Err != nil {
				t.Fatalf("token identity without claims or with an error: %+v", id)
			}
		case Anonymous:
		case AdminKey, PublishKey:
			if v, fromHeader := Credential(r); !fromHeader || (v != "pk" && v != "ak") {
				t.Fatalf("key identity from %q (header %v)", v, fromHeader)
			}
		}
		_ = p.Read(id, []string{"a/b", "$sys/x"})
		_ = p.Publish(id, []string{"a/b"})
		_ = p.Admin(id)
	})
}

// FuzzClaims signs arbitrary JSON as a token's body: verification never
// panics, and accepted claims hold only valid patterns, within limits.
func FuzzClaims(f *testing.F) {
	f.Add([]byte(`{"hubbub":{"subscribe":["user/42/**"],"publish":["chat/*"],"admin":true}}`))
	f.Add([]byte(`{"hubbub":{"subscribe":["a/**/**"]}}`))
	f.Add([]byte(`{"hubbub":{"subscribe":[""]}}`))
	f.Add([]byte(`{"hubbub":null,"exp":1}`))
	f.Add([]byte(`{"hubbub":{"subscribe":"x"}}`))
	f.Add([]byte(`{"exp":"soon","nbf":[],"aud":7}`))
	p, err := New(f.Context(), Options{JWTSecret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		signing := header + "." + enc.EncodeToString(body)
		sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "http://h/", nil)
		r.Header.Set("Authorization", "Bearer "+signing+"."+enc.EncodeToString(sig))
		id := p.Identify(r)
		if id.Kind != Token {
			return
		}
		c := id.Claims
		if len(c.Subscribe)+len(c.Publish) > MaxTokenPatterns {
			t.Fatalf("%d patterns accepted", len(c.Subscribe)+len(c.Publish))
		}
		for _, pat := range append(c.Subscribe, c.Publish...) {
			if pat == nil || pat.String() == "" {
				t.Fatal("an empty pattern was accepted")
			}
		}
		_ = p.Read(id, []string{"user/42/x", "user/**"})
		_ = p.Publish(id, []string{"chat/a"})
	})
}
