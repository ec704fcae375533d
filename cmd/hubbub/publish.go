package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

func publish(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub publish", `hubbub publish -t TOPIC [-k KEY] [flags] DATA|-

DATA is sent as the event's JSON data when it is valid JSON, else as a JSON
string; '-' reads it from standard input. Prints where each event was stored
(topic, seq and id), or with --json the hub's answer.`)
	var topics stringList
	f.Var(&topics, "t", "`TOPIC` to publish to (repeatable)")
	key := f.String("k", "", "document `KEY` of the event")
	typ := f.String("type", "", "event `TYPE` (default message)")
	idem := f.String("idempotency-key", "", "idempotency `KEY`: a repeat within 24 h stores nothing new")
	contentType := f.String("content-type", "", "publish DATA as a raw body of this media `TYPE` instead of JSON")
	auth := publishKeyFlag(f)
	base := serverFlag(f)
	asJSON := jsonFlag(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if len(topics) == 0 {
		return f.fail("name a topic with -t TOPIC")
	}
	if err := f.wantArgs("DATA (or - to read it from standard input)"); err != nil {
		return err
	}
	data := []byte(f.args()[0])
	if f.args()[0] == "-" {
		var err error
		if data, err = io.ReadAll(e.stdin); err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
	}
	c, err := newAPIClient(*base, *auth, "publishing needs --auth or HUBBUB_PUBLISH_KEYS")
	if err != nil {
		return err
	}

	endpoint := c.base + "/publish"
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
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	out, err := c.send(req)
	if err != nil {
		return fmt.Errorf("publish refused: %w", err)
	}
	if *asJSON {
		_, err = e.stdout.Write(out)
		return err
	}
	var answer struct {
		Events []struct {
			Topic     string `json:"topic"`
			ID        string `json:"id"`
			Seq       uint64 `json:"seq"`
			Time      string `json:"time"`
			Duplicate bool   `json:"duplicate"`
		} `json:"events"`
	}
	if err := json.Unmarshal(out, &answer); err != nil {
		return fmt.Errorf("the hub's answer is not the JSON expected (%v): %.200s", err, out)
	}
	for _, ev := range answer.Events {
		note := ""
		if ev.Duplicate {
			note = " (a repeat of this idempotency key: stored before, nothing new)"
		}
		fmt.Fprintf(e.stdout, "%s #%d id %s at %s%s\n", ev.Topic, ev.Seq, ev.ID, ev.Time, note)
	}
	return nil
}
