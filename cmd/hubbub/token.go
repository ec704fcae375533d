package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hubbub/hubbub/access"
)

// token prints a signed HS256 token for a hub started with --jwt-secret.
func token(_ context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("hubbub token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", getenv("HUBBUB_JWT_SECRET"), "HMAC secret the hub verifies with (env HUBBUB_JWT_SECRET)")
	var subscribe, publish stringList
	fs.Var(&subscribe, "subscribe", "topic or pattern the token may read (repeatable)")
	fs.Var(&publish, "publish", "topic or pattern the token may publish to (repeatable)")
	admin := fs.Bool("admin", false, "grant admin rights (the admin API and $sys/ topics)")
	sub := fs.String("sub", "", "subject (who the token is for), as the sub claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: the token expires this long from now (0: never)")
	issuer := fs.String("issuer", "", "iss claim (for a hub started with --jwt-issuer)")
	audience := fs.String("audience", "", "aud claim (for a hub started with --jwt-audience)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hubbub token --secret S [--subscribe PATTERN]... [--publish PATTERN]... [--admin] [flags]\n\nPrints an HS256 token with the hubbub claim, for scripts and tests.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubbub token: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *secret == "" {
		fmt.Fprintln(stderr, "hubbub token: give --secret or set HUBBUB_JWT_SECRET")
		return errUsage
	}
	if *ttl < 0 {
		fmt.Fprintln(stderr, "hubbub token: --ttl must not be negative")
		return errUsage
	}
	tok, err := access.Mint(*secret, access.HubbubClaim{Subscribe: subscribe, Publish: publish, Admin: *admin},
		*sub, *issuer, *audience, time.Now(), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
