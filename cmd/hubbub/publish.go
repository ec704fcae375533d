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

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// serverFlag adds --server (env HUBBUB_URL) to fs.
func serverFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("HUBBUB_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	return fs.String("server", def, "hub base URL (env HUBBUB_URL)")
}

// authFlag is the publish credential the CLI sends: HUBBUB_PUBLISH_KEY, else
// the first of the server's own HUBBUB_PUBLISH_KEYS, so a shell set up for
// the server can publish too.
func authFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("HUBBUB_PUBLISH_KEY")
	if def == "" {
		def, _, _ = strings.Cut(getenv("HUBBUB_PUBLISH_KEYS"), ",")
		def = strings.TrimSpace(def)
	}
	return fs.String("auth", def, "publish key or token sent as a bearer token (env HUBBUB_PUBLISH_KEY, else the first of HUBBUB_PUBLISH_KEYS)")
}

func publish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("hubbub publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var topics stringList
	fs.Var(&topics, "t", "topic to publish to (repeatable)")
	key := fs.String("k", "", "document key of the event")
	typ := fs.String("type", "", "event type (default message)")
	idem := fs.String("idempotency-key", "", "idempotency key: a repeat within 24 h stores nothing new")
	contentType := fs.String("content-type", "", "publish DATA as a raw body of this type instead of JSON")
	auth := authFlag(fs, getenv)
	base := serverFlag(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hubbub publish -t TOPIC [-k KEY] [flags] DATA|-\n\nDATA is sent as the event's JSON data when it is valid JSON, else as a JSON string;\n'-' reads it from standard input. Prints the server's answer.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if len(topics) == 0 {
		fmt.Fprintln(stderr, "hubbub publish: name a topic with -t TOPIC")
		fs.Usage()
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	data := []byte(fs.Arg(0))
	if fs.Arg(0) == "-" {
		var err error
		if data, err = io.ReadAll(stdin); err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
	}

	endpoint := strings.TrimRight(*base, "/") + "/publish"
	var body []byte
	ct := "application/json"
	if *contentType != "" {
		q := url.Values{"topic": topics}
		if *typ != "" {
			q.Set("type", *typ)
		}
		if *key != "" {
			q.Set("key", *key)
		}
		if *idem != "" {
			q.Set("idempotency_key", *idem)
		}
		endpoint += "?" + q.Encode()
		body, ct = data, *contentType
	} else {
		raw := json.RawMessage(bytes.TrimSpace(data))
		if !json.Valid(raw) {
			raw, _ = json.Marshal(string(data))
		}
		msg := map[string]any{"topics": []string(topics), "data": raw}
		if *typ != "" {
			msg["type"] = *typ
		}
		if *key != "" {
			msg["key"] = *key
		}
		if *idem != "" {
			msg["idempotency_key"] = *idem
		}
		body, _ = json.Marshal(msg)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	if *auth != "" {
		req.Header.Set("Authorization", "Bearer "+*auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish refused: %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	_, err = stdout.Write(out)
	return err
}
