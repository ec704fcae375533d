package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const upstreamUsage = `Usage:
  hubbub upstream add --hub URL --topic URL --into LOCAL_TOPIC [--server URL] [--admin-key K]
  hubbub upstream list [--server URL] [--admin-key K]
  hubbub upstream remove ID [--server URL] [--admin-key K]

Manages the hub's subscriptions to other WebSub hubs (conduit) through
/api/upstreams. Prints the server's JSON answer (remove: the status).
`

// upstreamCmd runs "hubbub upstream SUBCOMMAND".
func upstreamCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, upstreamUsage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, upstreamUsage)
		return nil
	}
	fs := flag.NewFlagSet("hubbub upstream "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := serverFlag(fs, getenv)
	key := fs.String("admin-key", getenv("HUBBUB_ADMIN_KEY"), "admin key sent as a bearer token (env HUBBUB_ADMIN_KEY)")
	hubURL := fs.String("hub", "", "the remote hub's URL (add)")
	topic := fs.String("topic", "", "the remote topic URL (add)")
	into := fs.String("into", "", "the local topic to republish into (add)")
	fs.Usage = func() { fmt.Fprint(stderr, upstreamUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	endpoint := strings.TrimRight(*base, "/") + "/api/upstreams"
	var req *http.Request
	var err error
	switch {
	case args[0] == "add" && fs.NArg() == 0 && *hubURL != "" && *topic != "" && *into != "":
		form := url.Values{"hub": {*hubURL}, "topic": {*topic}, "into": {*into}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	case args[0] == "list" && fs.NArg() == 0:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	case args[0] == "remove" && fs.NArg() == 1:
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, endpoint+"/"+url.PathEscape(fs.Arg(0)), nil)
	default:
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	if *key != "" {
		req.Header.Set("Authorization", "Bearer "+*key)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if len(body) == 0 {
		fmt.Fprintln(stdout, resp.Status)
		return nil
	}
	var out bytes.Buffer
	if json.Indent(&out, body, "", "  ") != nil {
		out.Reset()
		out.Write(body)
	}
	fmt.Fprintln(stdout, strings.TrimSpace(out.String()))
	return nil
}
