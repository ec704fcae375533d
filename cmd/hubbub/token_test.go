package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/access"
)

func TestTokenCommand(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	env := func(k string) string {
		if k == "HUBBUB_JWT_SECRET" {
			return secret
		}
		return ""
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"token", "--subscribe", "user/42/**", "--publish", "chat/*", "--admin", "--sub", "u42", "--ttl", "1h"}, nil, &out, &errb, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	p, err := access.New(t.Context(), access.Options{JWTSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://h/", nil)
	r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out.String()))
	id := p.Identify(r)
	if id.Kind != access.Token || id.Claims.Subject != "u42" || !id.Claims.Admin || id.Expires().IsZero() {
		t.Fatalf("printed token reads as %+v (err %v)", id.Claims, id.Err)
	}
	for _, args := range [][]string{
		{"token", "--secret", ""},           // no secret
		{"token", "--subscribe", "a/**/**"}, // invalid pattern
		{"token", "--ttl", "-1h"},           // negative lifetime
		{"token", "extra"},                  // stray argument
	} {
		out.Reset()
		getenv := env
		if args[1] == "--secret" {
			getenv = func(string) string { return "" }
		}
		if code := run(context.Background(), args, nil, &out, &errb, getenv); code == 0 || out.Len() > 0 {
			t.Errorf("%v: exit %d, printed %q", args, code, out.String())
		}
	}
}
