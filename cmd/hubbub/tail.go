package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/client"
	"github.com/hubbub/hubbub/event"
)

// tail follows topics over SSE and prints each event as it arrives: a line
// for people, or with --json the event's JSON with "cursor" added (the
// cursor to resume after it: the event's id for one topic, the whole
// subscription's m.… cursor for several or a pattern; resets are
// {"reset":{...},"cursor":...}). It reconnects after any drop with the last
// cursor it saw, backing off up to 10 s. It stops on interrupt, or after
// --max events, then says on stderr the cursor to resume with (--after).
func tail(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub tail", `hubbub tail -t TOPIC [--after CURSOR] [flags]

Prints events as they arrive, resuming after dropped connections: one line
per event for people, or with --json one JSON object per line, each with the
"cursor" to resume after it. --after takes any cursor the hub gave: an
event's id, or for several topics or a pattern the m.… cursor.`)
	var topics stringList
	f.Var(&topics, "t", "`TOPIC` or pattern to follow (repeatable)")
	after := f.String("after", "", "`CURSOR` to resume after (an event's id, or an m.… cursor)")
	maxEvents := f.Int("max", 0, "stop after `N` events (0: never)")
	base := serverFlag(f)
	authDef := e.getenv("HUBBUB_TOKEN")
	if authDef == "" {
		authDef = e.getenv("HUBBUB_ADMIN_KEY")
	}
	auth := f.String("auth", authDef, "`TOKEN` (or admin key) sent as a bearer credential, for private and $sys/ topics (env HUBBUB_TOKEN, else HUBBUB_ADMIN_KEY)")
	asJSON := jsonFlag(f)
	f.Lookup("json").Usage = "print each event's JSON, with the cursor to resume after it"
	if err := f.parse(args); err != nil {
		return err
	}
	if len(topics) == 0 {
		return f.fail("name a topic with -t TOPIC")
	}
	if err := f.wantArgs(); err != nil {
		return err
	}
	if *maxEvents < 0 {
		return f.fail("--max must not be negative")
	}
	c, err := newAPIClient(*base, *auth, "")
	if err != nil {
		return err
	}
	endpoint := c.base + "/events?" + url.Values{"topic": topics}.Encode()
	p := &tailPrinter{out: e.stdout, json: *asJSON}
	last := *after
	var refused bool // the hub refused the request: the cursor may be why
	defer func() {
		if last != "" && !(refused && last == *after) {
			fmt.Fprintf(e.stderr, "hubbub tail: resume with --after %s\n", last)
		}
	}()
	seen := 0
	backoff := 250 * time.Millisecond
	for {
		n, err := tailOnce(ctx, endpoint, *auth, &last, p, *maxEvents-seen)
		seen += n
		if *maxEvents > 0 && seen >= *maxEvents {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			refused = true
			return err
		}
		if n > 0 {
			backoff = 250 * time.Millisecond
		}
		fmt.Fprintf(e.stderr, "hubbub tail: connection lost (%v); reconnecting in %v\n", err, backoff)
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
func tailOnce(ctx context.Context, endpoint, auth string, last *string, p *tailPrinter, limit int) (int, error) {
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
		if ev.ID != "" {
			*last = ev.ID
		}
		switch ev.Event {
		case "auth-expired":
			return n, permanentError{errors.New("the token (--auth) expired; start again with a fresh one and --after the cursor below")}
		case "reset":
			err = p.reset(ev.Data, *last)
		case "message", "":
			err = p.event(ev.Data, *last)
			n++
		default: // an event whose type is not "message"
			if !strings.HasPrefix(ev.Data, "{") || !json.Valid([]byte(ev.Data)) {
				continue
			}
			err = p.event(ev.Data, *last)
			n++
		}
		if err != nil {
			return n, permanentError{err}
		}
		if limit > 0 && n >= limit {
			return n, nil
		}
	}
}

// tailPrinter prints tail's lines.
type tailPrinter struct {
	out  io.Writer
	json bool
}

// withCursor returns the JSON object obj with "cursor":cursor added.
func withCursor(obj, cursor string) string {
	obj = strings.TrimSpace(obj)
	c, _ := json.Marshal(cursor)
	if obj == "{}" {
		return `{"cursor":` + string(c) + `}`
	}
	return obj[:len(obj)-1] + `,"cursor":` + string(c) + `}`
}

func (p *tailPrinter) event(data, cursor string) error {
	if p.json {
		_, err := fmt.Fprintln(p.out, withCursor(data, cursor))
		return err
	}
	var w event.Wire
	if err := json.Unmarshal([]byte(data), &w); err != nil || w.Topic == "" {
		_, err := fmt.Fprintln(p.out, data) // not an event the hub's way: as it came
		return err
	}
	line := fmt.Sprintf("%s  %s #%d", shortTime(w.Time), w.Topic, w.Seq)
	if w.Type != "" && w.Type != "message" {
		line += " " + w.Type
	}
	if w.Key != "" {
		line += " key=" + w.Key
	}
	if len(w.Tags) > 0 {
		line += " tags=" + strings.Join(w.Tags, ",")
	}
	switch {
	case w.DataBase64 != nil:
		line += fmt.Sprintf("  (%d bytes of %s)", len(w.DataBase64), w.ContentType)
	case w.Data != nil:
		line += "  " + string(w.Data)
	}
	_, err := fmt.Fprintln(p.out, line)
	return err
}

func (p *tailPrinter) reset(data, cursor string) error {
	if p.json {
		_, err := fmt.Fprintln(p.out, withCursor(`{"reset":`+data+`}`, cursor))
		return err
	}
	var r struct {
		Topic  string `json:"topic"`
		Reason string `json:"reason"`
		Cursor string `json:"cursor"`
	}
	_ = json.Unmarshal([]byte(data), &r)
	_, err := fmt.Fprintf(p.out, "-- reset %s: %s; going on from %s\n", r.Topic, resetReason(r.Reason), strconv.Quote(r.Cursor))
	return err
}

func resetReason(reason string) string {
	switch reason {
	case "trimmed":
		return "events were trimmed from history before they could be read"
	case "epoch":
		return "the topic's log is not the one the cursor came from"
	case "unknown-position":
		return "the cursor points past the end of the log"
	}
	return reason
}

// shortTime shows an event time (RFC 3339, microseconds) to the millisecond.
func shortTime(t string) string {
	if tt, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return tt.UTC().Format("2006-01-02 15:04:05.000Z")
	}
	return t
}
