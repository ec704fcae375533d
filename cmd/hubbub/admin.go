package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// adminCmd is one leaf of `hubbub admin`: its words after "admin", its
// arguments and summary for the usage, and setup, which adds its own flags
// and returns what runs once they are parsed.
type adminCmd struct {
	path    string // "topics trim"
	args    string // "TOPIC --keep N"
	summary string
	setup   func(f *flagSet) func(ctx context.Context, a *adminRun) error
}

// adminRun is what an admin command runs with.
type adminRun struct {
	f    *flagSet
	c    *apiClient
	json bool
	out  io.Writer
}

// adminCmds lists every admin command, in the order the usage shows them.
var adminCmds = []adminCmd{
	{"topics list", "[--limit N]", "the busiest topics this node has seen: rate, history held, subscribers", adminTopicsList},
	{"topics stats", "TOPIC...", "the named topics, busy or not: epoch, history held, subscribers, rate", adminTopicsStats},
	{"topics trim", "TOPIC --keep N", "remove all but the newest N events of TOPIC (subscribers behind get a reset)", adminTopicsTrim},
	{"subscriptions list", "[--after ID] [--limit N]", "webhook (WebSub) subscriptions: state, lag, failures, lease", adminSubsList},
	{"subscriptions show", "ID", "one webhook subscription in full (never its secret)", adminSubsShow},
	{"subscriptions resume", "ID", "resume a suspended subscription, or retry a failing one now, skipping its backoff", adminSubsResume},
	{"subscriptions replay", "ID (--after CURSOR | --backfill N)", "deliver a subscription's events again from CURSOR, or its last N events, then live ones", adminSubsReplay},
	{"subscriptions delete", "ID", "end a webhook subscription now, without asking the subscriber", adminSubsDelete},
	{"nodes", "", "the hub's nodes (one, or every node sharing a Redis store)", adminNodes},
	{"stats", "", "this node's counters and busiest topics", adminStats},
}

// adminUsage is the usage of `hubbub admin` and of its groups (prefix
// "topics " for `hubbub admin topics`).
func adminUsage(prefix string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, c := range adminCmds {
		if !strings.HasPrefix(c.path+" ", prefix) {
			continue
		}
		line := "hubbub admin " + c.path
		if c.args != "" {
			line += " " + c.args
		}
		fmt.Fprintf(&b, "  %s\n      %s\n", line, c.summary)
	}
	b.WriteString(`
Administers a running hub through its admin API (/api/...). Every command
takes --server URL (env HUBBUB_URL), --admin-key KEY (env HUBBUB_ADMIN_KEY,
as the server) and --json (print the hub's JSON answer instead of a table).
Run 'hubbub admin COMMAND --help' for a command's flags.
`)
	return b.String()
}

// admin runs `hubbub admin ...`.
func admin(ctx context.Context, e env, args []string) error {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	for n := len(words); n > 0; n-- {
		path := strings.Join(words[:n], " ")
		for _, c := range adminCmds {
			if c.path == path {
				return runAdmin(ctx, e, c, args[n:])
			}
		}
	}
	// A group (or nothing): help, or what is missing.
	prefix := ""
	if len(words) > 0 {
		prefix = words[0] + " "
	}
	known := false
	for _, c := range adminCmds {
		known = known || strings.HasPrefix(c.path+" ", prefix)
	}
	rest := args[len(words):]
	switch {
	case !known:
		fmt.Fprintf(e.stderr, "hubbub admin: unknown command %q\n\n%s", words[0], adminUsage(""))
		return errUsage
	case len(words) <= 1 && len(rest) > 0 && isHelp(rest[0]), len(words) == 0 && len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(e.stdout, adminUsage(prefix))
		return nil
	case len(words) > 1:
		fmt.Fprintf(e.stderr, "hubbub admin: unknown command %q\n\n%s", strings.Join(words, " "), adminUsage(prefix))
		return errUsage
	default:
		fmt.Fprint(e.stderr, adminUsage(prefix))
		return errUsage
	}
}

// runAdmin parses one admin command's flags and runs it.
func runAdmin(ctx context.Context, e env, c adminCmd, args []string) error {
	synopsis := "hubbub admin " + c.path
	if c.args != "" {
		synopsis += " " + c.args
	}
	f := newFlags(e, "hubbub admin "+c.path, synopsis+" [flags]\n\n"+upperFirst(c.summary)+".")
	base := serverFlag(f)
	key := adminKeyFlag(f)
	asJSON := jsonFlag(f)
	run := c.setup(f)
	if err := f.parse(args); err != nil {
		return err
	}
	client, err := newAPIClient(*base, *key, "the admin API needs --admin-key or HUBBUB_ADMIN_KEY")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return run(ctx, &adminRun{f: f, c: client, json: *asJSON, out: e.stdout})
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// topicRow is a row of GET /api/topics.
type topicRow struct {
	Topic       string         `json:"topic"`
	Events      uint64         `json:"events"`
	LastSeq     uint64         `json:"last_seq"`
	LastTime    time.Time      `json:"last_time"`
	RatePerMin  float64        `json:"rate_per_min"`
	Epoch       string         `json:"epoch"`
	History     uint64         `json:"history"`
	Subscribers int            `json:"subscribers"`
	ByTransport map[string]int `json:"subscribers_by_transport"`
}

func adminTopicsList(f *flagSet) func(context.Context, *adminRun) error {
	limit := f.Int("limit", 100, "show at most `N` topics, busiest first")
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs(); err != nil {
			return err
		}
		if *limit < 1 {
			return f.fail("--limit must be at least 1")
		}
		var body struct {
			Topics []topicRow `json:"topics"`
		}
		raw, err := a.c.getJSON(ctx, "GET", "/api/topics", nil, &body)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		if len(body.Topics) == 0 {
			_, err := fmt.Fprintln(a.out, "no topics seen on this node since it started")
			return err
		}
		t := newTable(a.out, "TOPIC", "RATE/MIN", "HISTORY", "SUBSCRIBERS", "LAST SEQ", "LAST EVENT")
		for i, tp := range body.Topics {
			if i == *limit {
				break
			}
			t.row(tp.Topic, strconv.FormatFloat(tp.RatePerMin, 'f', -1, 64), u64(tp.History),
				strconv.Itoa(tp.Subscribers), u64(tp.LastSeq), when(tp.LastTime))
		}
		return t.flush()
	}
}

func adminTopicsStats(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("TOPIC..."); err != nil {
			return err
		}
		var body struct {
			Topics []topicRow `json:"topics"`
		}
		raw, err := a.c.getJSON(ctx, "GET", "/api/topics", url.Values{"topic": f.args()}, &body)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		for i, tp := range body.Topics {
			if i > 0 {
				fmt.Fprintln(a.out)
			}
			epoch := tp.Epoch
			if epoch == "" {
				epoch = "(none: never published to)"
			}
			var by []string
			for _, tr := range []string{"sse", "ws", "poll", "stream"} {
				if n := tp.ByTransport[tr]; n > 0 {
					by = append(by, fmt.Sprintf("%s %d", tr, n))
				}
			}
			subs := strconv.Itoa(tp.Subscribers)
			if len(by) > 0 {
				subs += " (" + strings.Join(by, ", ") + ")"
			}
			kv := []string{"topic", tp.Topic, "epoch", epoch, "history", count(tp.History, "event"), "subscribers", subs + " on this node"}
			if tp.Events > 0 {
				kv = append(kv, "seen", count(tp.Events, "event")+" since this node started",
					"rate", strconv.FormatFloat(tp.RatePerMin, 'f', -1, 64)+" events/min",
					"last event", "#"+u64(tp.LastSeq)+" at "+when(tp.LastTime))
			}
			if err := fields(a.out, kv...); err != nil {
				return err
			}
		}
		return nil
	}
}

func adminTopicsTrim(f *flagSet) func(context.Context, *adminRun) error {
	keep := f.String("keep", "", "keep the newest `N` events (0: none)")
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("TOPIC"); err != nil {
			return err
		}
		if err := f.require("keep"); err != nil {
			return err
		}
		if _, err := strconv.ParseUint(*keep, 10, 64); err != nil {
			return f.fail("--keep %q: want a whole number of events, 0 or more", *keep)
		}
		var body struct {
			Topic   string `json:"topic"`
			First   uint64 `json:"first"`
			Last    uint64 `json:"last"`
			History uint64 `json:"history"`
			Removed uint64 `json:"removed"`
		}
		raw, err := a.c.getJSON(ctx, "POST", "/api/topics/trim", url.Values{"topic": {f.args()[0]}, "keep": {*keep}}, &body)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		held := "nothing"
		if body.History > 0 {
			held = fmt.Sprintf("%s (#%d..#%d)", count(body.History, "event"), body.First, body.Last)
		}
		_, err = fmt.Fprintf(a.out, "%s: removed %s; it holds %s\n", body.Topic, count(body.Removed, "event"), held)
		return err
	}
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }
