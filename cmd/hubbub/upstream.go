package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

const upstreamUsage = `Usage:
  hubbub upstream add --hub URL --topic URL --into LOCAL_TOPIC [flags]
  hubbub upstream list [flags]
  hubbub upstream remove ID [flags]

Manages the hub's subscriptions to other WebSub hubs (the conduit) through
/api/upstreams: add prints the upstream, list a table of them, remove the
state it is left in (unsubscribing until the remote hub confirms, or
removed). Every command takes --server URL (env HUBBUB_URL), --admin-key KEY
(env HUBBUB_ADMIN_KEY) and --json (the hub's JSON answer).
Run 'hubbub upstream COMMAND --help' for a command's flags.
`

// upstreamView is an upstream as GET /api/upstreams shows it.
type upstreamView struct {
	ID        string    `json:"id"`
	Hub       string    `json:"hub"`
	Topic     string    `json:"topic"`
	Into      string    `json:"into"`
	State     string    `json:"state"`
	Expires   time.Time `json:"expires"`
	LastError string    `json:"last_error"`
	Callback  string    `json:"callback"`
}

// upstreamCmd runs "hubbub upstream SUBCOMMAND".
func upstreamCmd(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, upstreamUsage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, upstreamUsage)
		return nil
	}
	sub := args[0]
	synopsis := map[string]string{
		"add":    "hubbub upstream add --hub URL --topic URL --into LOCAL_TOPIC [flags]\n\nSubscribes the hub to TOPIC at the remote HUB and republishes what it pushes into LOCAL_TOPIC.",
		"list":   "hubbub upstream list [flags]\n\nLists the upstreams: state (pending, active, failed, denied, unsubscribing), lease expiry, last error.",
		"remove": "hubbub upstream remove ID [flags]\n\nUnsubscribes the upstream ID at its remote hub and stops republishing it.",
	}[sub]
	if synopsis == "" {
		fmt.Fprintf(e.stderr, "hubbub upstream: unknown command %q\n\n%s", sub, upstreamUsage)
		return errUsage
	}
	f := newFlags(e, "hubbub upstream "+sub, synopsis)
	base := serverFlag(f)
	key := adminKeyFlag(f)
	asJSON := jsonFlag(f)
	var hubURL, topic, into *string
	if sub == "add" {
		hubURL = f.String("hub", "", "the remote hub's `URL`")
		topic = f.String("topic", "", "the remote topic's `URL` (hub.topic)")
		into = f.String("into", "", "the local `TOPIC` to republish into")
	}
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	var err error
	switch sub {
	case "add":
		if err = f.wantArgs(); err == nil {
			err = f.require("hub", "topic", "into")
		}
	case "list":
		err = f.wantArgs()
	default:
		err = f.wantArgs("ID")
	}
	if err != nil {
		return err
	}
	c, err := newAPIClient(*base, *key, "the admin API needs --admin-key or HUBBUB_ADMIN_KEY")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	switch sub {
	case "add":
		var u upstreamView
		raw, err := c.getJSON(ctx, "POST", "/api/upstreams", url.Values{"hub": {*hubURL}, "topic": {*topic}, "into": {*into}}, &u)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, raw)
		}
		return fields(e.stdout, "id", u.ID, "state", u.State, "hub", u.Hub, "topic", u.Topic, "into", u.Into, "callback", u.Callback)
	case "list":
		var body struct {
			Upstreams []upstreamView `json:"upstreams"`
		}
		raw, err := c.getJSON(ctx, "GET", "/api/upstreams", nil, &body)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, raw)
		}
		if len(body.Upstreams) == 0 {
			_, err := fmt.Fprintln(e.stdout, "no upstreams")
			return err
		}
		t := newTable(e.stdout, "ID", "STATE", "INTO", "TOPIC", "HUB", "LEASE EXPIRES", "LAST ERROR")
		for _, u := range body.Upstreams {
			t.row(u.ID, u.State, u.Into, u.Topic, u.Hub, when(u.Expires), u.LastError)
		}
		return t.flush()
	default: // remove
		raw, err := c.getJSON(ctx, "DELETE", "/api/upstreams/"+url.PathEscape(f.args()[0]), nil, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, raw)
		}
		var r struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		if json.Unmarshal(raw, &r) != nil || r.State == "" {
			r.State = "removed"
		}
		_, err = fmt.Fprintf(e.stdout, "upstream %s: %s\n", f.args()[0], r.State)
		return err
	}
}
