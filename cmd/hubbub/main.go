// Command hubbub is the realtime push hub: `hubbub serve` runs it, and the
// other commands talk to a running one (publish, tail, admin, upstream,
// bench) or help set one up (token, config-reference, version).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/server"
)

// command is one subcommand of hubbub.
type command struct {
	name     string
	synopsis string // what follows "hubbub NAME" in the usage
	summary  string
	run      func(ctx context.Context, e env, args []string) error
}

// commands lists every subcommand, in the order the usage shows them.
// README.md's CLI section lists them all (TestReadmeListsEveryCommand).
func commands() []command {
	return []command{
		{"serve", "[flags]", "run the hub (embedded store in ./hubbub-data)", serve},
		{"publish", "-t TOPIC [-k KEY] DATA|-", "publish an event and say where it was stored", publish},
		{"tail", "-t TOPIC [--after CURSOR]", "print a topic's events as they come (SSE), resuming after drops", tail},
		{"admin", "topics|subscriptions|nodes|stats ...", "administer a running hub (topics, webhook subscriptions, nodes)", admin},
		{"upstream", "add|list|remove ...", "subscribe to another hub's topic and republish it here", upstreamCmd},
		{"bench", "[flags]", "load a running hub; report throughput and latency", bench},
		{"token", "--secret S [flags]", "print a signed token (--subscribe, --publish, --admin, --ttl)", token},
		{"config-reference", "", "print every setting (flag, env, YAML key, default) as Markdown", configReference},
		{"backup", "[--server URL] DIR", "copy a running hub's embedded store into DIR", backupCmd},
		{"restore", "[--data D] DIR", "restore a backup into a new data directory (hub stopped)", restoreCmd},
		{"healthcheck", "[--ready]", "exit 0 if the hub of this environment answers /healthz", healthcheck},
		{"version", "[--json]", "print the version (release, revision, Go)", version},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("hubbub: a realtime push hub\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-55s %s\n", strings.TrimSpace("hubbub "+c.name+" "+c.synopsis), c.summary)
	}
	b.WriteString(`
Commands that talk to a hub take --server URL (env HUBBUB_URL, default
http://127.0.0.1:8080) and --json, for the hub's JSON instead of text for people.
Run 'hubbub COMMAND --help' for a command's flags.
`)
	return b.String()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 success
// (and --help), 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name := args[0]
	if name == "--version" {
		name = "version"
	}
	if isHelp(name) {
		if len(args) == 1 {
			fmt.Fprint(stdout, usage())
			return 0
		}
		name, args = args[1], []string{args[1], "--help"} // hubbub help COMMAND
	}
	var err error
	found := false
	for _, c := range commands() {
		if c.name == name {
			found = true
			err = c.run(ctx, e, args[1:])
			break
		}
	}
	if !found {
		fmt.Fprintf(stderr, "hubbub: unknown command %q\n\n%s", name, usage())
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "hubbub:", err)
		return 1
	}
}

func serve(ctx context.Context, e env, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			// config.Load prints the help on the writer it is given.
			_, err := config.Load([]string{"--help"}, e.getenv, e.stdout)
			return err
		}
	}
	cfg, err := config.Load(args, e.getenv, e.stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if errors.Is(err, config.ErrFlags) {
			return errUsage // Load has said what is wrong
		}
		return fmt.Errorf("configuration: %w", err)
	}
	logger := cfg.Logger(e.stderr)
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	runErr := srv.Run(ctx)
	if err := srv.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("closing the store: %w", err)
	}
	return runErr
}

func configReference(_ context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub config-reference", "hubbub config-reference\n\nPrints every setting of 'hubbub serve' (flag, environment variable, YAML key,\ndefault, meaning) as a Markdown table.")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs(); err != nil {
		return err
	}
	config.Reference(e.stdout)
	return nil
}
