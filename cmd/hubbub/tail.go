package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hubbub/hubbub/client"
)

// tail follows topics over SSE, printing each event's JSON on its own line
// (resets as {"reset":...}), and reconnects after any drop with the last id
// it saw, backing off up to 10 s. It stops on interrupt, or after --max
// events, then says on stderr the cursor to resume with (--after), which
// for several topics or a pattern is the whole subscription's cursor.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("hubbub tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var topics stringList
	fs.Var(&topics, "t", "topic or pattern to follow (repeatable)")
	after := fs.String("after", "", "cursor to resume after (an event id)")
	maxEvents := fs.Int("max", 0, "stop after this many events (0: never)")
	base := serverFlag(fs, getenv)
	auth := fs.String("auth", getenv("HUBBUB_TOKEN"), "token (or admin key) sent as a bearer credential, for private and $sys/ topics (env HUBBUB_TOKEN)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hubbub tail -t TOPIC [--after ID] [flags]\n\nPrints events as JSON lines as they arrive, resuming after dropped connections.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if len(topics) == 0 {
		fmt.Fprintln(stderr, "hubbub tail: name a topic with -t TOPIC")
		fs.Usage()
		return errUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	q := url.Values{"topic": topics}
	endpoint := strings.TrimRight(*base, "/") + "/events?" + q.Encode()
	last := *after
	defer func() {
		if last != "" {
			fmt.Fprintf(stderr, "hubbub tail: resume with --after %s\n", last)
		}
	}()
	seen := 0
	backoff := 250 * time.Millisecond
	for {
		n, err := tailOnce(ctx, endpoint, *auth, &last, stdout, *maxEvents-seen)
		seen += n
		if *maxEvents > 0 && seen >= *maxEvents {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return err
		}
		if n > 0 {
			backoff = 250 * time.Millisecond
		}
		fmt.Fprintf(stderr, "hubbub tail: connection lost (%v); reconnecting in %v\n", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

type permanentError struct{ error }

// tailOnce runs one SSE connection, updating *last, and returns how many
// events it printed. limit <= 0 means no limit.
func tailOnce(ctx context.Context, endpoint, auth string, last *string, out io.Writer, limit int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return 0, permanentError{err}
		}
		return 0, err
	}
	r := client.NewSSEReader(resp.Body)
	n := 0
	for {
		ev, err := r.Next()
		if err != nil {
			return n, err
		}
		*last = ev.ID
		if ev.Event == "reset" {
			fmt.Fprintf(out, "{\"reset\":%s}\n", ev.Data)
			continue
		}
		if _, err := fmt.Fprintln(out, ev.Data); err != nil {
			return n, permanentError{err}
		}
		n++
		if limit > 0 && n >= limit {
			return n, nil
		}
	}
}
