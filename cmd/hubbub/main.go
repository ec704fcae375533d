// Command hubbub is the realtime push hub: `hubbub serve` runs it, and
// `publish`, `tail` and `version` talk to a running one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/server"
)

const usage = `hubbub: a realtime push hub

Usage:
  hubbub serve [flags]                      run the hub (embedded store in ./hubbub-data)
  hubbub publish -t TOPIC [-k KEY] DATA|-   publish an event and print where it was stored
  hubbub tail -t TOPIC [--after ID]         print a topic's events as they come (SSE), resuming after drops
  hubbub upstream add|list|remove           subscribe to another hub's topic and republish it here
  hubbub bench [flags]                      load a running hub; report throughput and latency
  hubbub token --secret S [flags]           print a signed token (--subscribe, --publish, --admin, --ttl)
  hubbub config-reference                   print every setting (flag, env, YAML key, default) as Markdown
  hubbub version                            print the version

Run 'hubbub COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 success,
// 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr, getenv)
	case "publish":
		err = publish(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "tail":
		err = tail(ctx, args[1:], stdout, stderr, getenv)
	case "upstream":
		err = upstreamCmd(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		err = bench(ctx, args[1:], stdout, stderr, getenv)
	case "token":
		err = token(ctx, args[1:], stdout, stderr, getenv)
	case "config-reference":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprintln(stdout, "Usage: hubbub config-reference\n\nPrints every setting of 'hubbub serve' (flag, environment variable, YAML key, default, meaning) as a Markdown table.")
			break
		}
		config.Reference(stdout)
	case "version", "--version":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprintln(stdout, "Usage: hubbub version\n\nPrints the version of this binary.")
			break
		}
		fmt.Fprintln(stdout, "hubbub", server.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "hubbub: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "hubbub:", err)
		return 1
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// errUsage marks errors already explained to the user by a FlagSet.
var errUsage = errors.New("usage")

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if errors.Is(err, config.ErrFlags) {
			return errUsage // Load has said what is wrong
		}
		return fmt.Errorf("configuration: %w", err)
	}
	logger := cfg.Logger(stderr)
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
