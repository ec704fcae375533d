package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hubbub/hubbub/access"
)

// token prints a signed HS256 token for a hub started with --jwt-secret.
func token(_ context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub token", `hubbub token --secret S [--subscribe PATTERN]... [--publish PATTERN]... [--admin] [flags]

Prints an HS256 token with the hubbub claim, for scripts and tests, for a hub
started with --jwt-secret S.`)
	secret := f.String("secret", e.getenv("HUBBUB_JWT_SECRET"), "HMAC `SECRET` the hub verifies with (env HUBBUB_JWT_SECRET, as the server)")
	var subscribe, publish stringList
	f.Var(&subscribe, "subscribe", "`PATTERN` (or topic) the token may read (repeatable)")
	f.Var(&publish, "publish", "`PATTERN` (or topic) the token may publish to (repeatable)")
	admin := f.Bool("admin", false, "grant admin rights (the admin API and $sys/ topics)")
	sub := f.String("sub", "", "`SUBJECT` (who the token is for), as the sub claim")
	ttl := f.Duration("ttl", time.Hour, "lifetime: the token expires this `DURATION` from now (0: never)")
	issuer := f.String("issuer", "", "iss claim: the `ISSUER` (for a hub started with --jwt-issuer)")
	audience := f.String("audience", "", "aud claim: the `AUDIENCE` (for a hub started with --jwt-audience)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs(); err != nil {
		return err
	}
	if *secret == "" {
		return f.fail("missing --secret (or set HUBBUB_JWT_SECRET)")
	}
	if *ttl < 0 {
		return f.fail("--ttl must not be negative")
	}
	tok, err := access.Mint(*secret, access.HubbubClaim{Subscribe: subscribe, Publish: publish, Admin: *admin},
		*sub, *issuer, *audience, time.Now(), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
