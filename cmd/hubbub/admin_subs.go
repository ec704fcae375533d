package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// subscription is a webhook subscription as the admin API shows it.
type subscription struct {
	ID           string          `json:"id"`
	Topic        string          `json:"topic"`
	Callback     string          `json:"callback"`
	LogTopic     string          `json:"log_topic"`
	Batch        int             `json:"batch"`
	BatchBytes   int             `json:"batch_bytes"`
	BatchWaitMS  int             `json:"batch_wait_ms"`
	Filter       json.RawMessage `json:"filter"`
	LeaseSeconds int64           `json:"lease_seconds"`
	LeaseExpires time.Time       `json:"lease_expires"`
	Created      time.Time       `json:"created"`
	Verified     time.Time       `json:"verified"`
	Failures     int             `json:"failures"`
	FailingSince time.Time       `json:"failing_since"`
	State        string          `json:"state"`
	LastError    string          `json:"last_error"`
	LastSuccess  time.Time       `json:"last_success"`
	NextAttempt  time.Time       `json:"next_attempt"`
	Dropped      uint64          `json:"dropped"`
	Cursor       string          `json:"cursor"`
	Lag          uint64          `json:"lag"`
	Signed       bool            `json:"signed"`
}

func adminSubsList(f *flagSet) func(context.Context, *adminRun) error {
	after := f.String("after", "", "list the subscriptions after `ID` (the \"next\" of the previous page)")
	limit := f.Int("limit", 100, "list at most `N` (1..1000)")
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs(); err != nil {
			return err
		}
		if *limit < 1 || *limit > 1000 {
			return f.fail("--limit must be 1..1000")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		var body struct {
			Subscriptions []subscription `json:"subscriptions"`
			Next          string         `json:"next"`
		}
		raw, err := a.c.getJSON(ctx, "GET", "/api/subscriptions", q, &body)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		if len(body.Subscriptions) == 0 {
			_, err := fmt.Fprintln(a.out, "no webhook subscriptions")
			return err
		}
		t := newTable(a.out, "ID", "STATE", "TOPIC", "CALLBACK", "LAG", "FAILURES", "LEASE EXPIRES", "LAST ERROR")
		for _, s := range body.Subscriptions {
			t.row(s.ID, s.State, s.Topic, s.Callback, u64(s.Lag), strconv.Itoa(s.Failures), when(s.LeaseExpires), s.LastError)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if body.Next != "" {
			fmt.Fprintf(a.f.e.stderr, "more: hubbub admin subscriptions list --after %s\n", body.Next)
		}
		return nil
	}
}

// showSubscription prints one subscription as fields.
func showSubscription(a *adminRun, s subscription) error {
	signed := "no"
	if s.Signed {
		signed = "yes (hub.secret; never shown)"
	}
	batch := ""
	if s.Batch > 1 {
		batch = strconv.Itoa(s.Batch) + " events per POST"
		if s.BatchBytes > 0 {
			batch += ", at most " + strconv.Itoa(s.BatchBytes) + " bytes"
		}
		if s.BatchWaitMS > 0 {
			batch += ", waiting up to " + strconv.Itoa(s.BatchWaitMS) + " ms to fill"
		}
	}
	failures := ""
	if s.Failures > 0 {
		failures = strconv.Itoa(s.Failures) + " in a row"
	}
	dropped := ""
	if s.Dropped > 0 {
		dropped = count(s.Dropped, "event") + " trimmed before delivery"
	}
	logTopic := ""
	if s.LogTopic != s.Topic {
		logTopic = s.LogTopic
	}
	return fields(a.out,
		"id", s.ID, "topic", s.Topic, "log topic", logTopic, "callback", s.Callback, "state", s.State,
		"lag", count(s.Lag, "event"), "failures", failures, "failing since", when(s.FailingSince), "last error", s.LastError,
		"next attempt", when(s.NextAttempt), "last success", when(s.LastSuccess), "dropped", dropped,
		"signed", signed, "batch", batch, "filter", string(s.Filter),
		"lease", strconv.FormatInt(s.LeaseSeconds, 10)+" s, expires "+when(s.LeaseExpires),
		"created", when(s.Created), "verified", when(s.Verified))
}

func adminSubsShow(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("ID"); err != nil {
			return err
		}
		var s subscription
		raw, err := a.c.getJSON(ctx, "GET", "/api/subscriptions/"+url.PathEscape(f.args()[0]), nil, &s)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		return showSubscription(a, s)
	}
}

func adminSubsResume(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("ID"); err != nil {
			return err
		}
		var s subscription
		// /resume lifts a suspension; for a subscription that is not
		// suspended it is /retry-now.
		raw, err := a.c.getJSON(ctx, "POST", "/api/subscriptions/"+url.PathEscape(f.args()[0])+"/resume", nil, &s)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		fmt.Fprintf(a.out, "delivery to %s queued now (%s behind); state %s\n", s.Callback, count(s.Lag, "event"), s.State)
		if s.Failures > 0 {
			fmt.Fprintf(a.out, "it stays %s (%d failures in a row) until a delivery succeeds; last error: %s\n", s.State, s.Failures, s.LastError)
		}
		return nil
	}
}

func adminSubsReplay(f *flagSet) func(context.Context, *adminRun) error {
	after := f.String("after", "", "deliver the events after `CURSOR` (an event's id, EPOCH:SEQ)")
	backfill := f.String("backfill", "", "deliver the last `N` events again")
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("ID"); err != nil {
			return err
		}
		q := url.Values{}
		switch {
		case (*after == "") == (*backfill == ""):
			return f.fail("name where to replay from: --after CURSOR or --backfill N")
		case *after != "":
			q.Set("after", *after)
		default:
			q.Set("backfill", *backfill)
		}
		var s subscription
		raw, err := a.c.getJSON(ctx, "POST", "/api/subscriptions/"+url.PathEscape(f.args()[0])+"/replay", q, &s)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		_, err = fmt.Fprintf(a.out, "delivery to %s queued from %s (%s behind); state %s\n", s.Callback, s.Cursor, count(s.Lag, "event"), s.State)
		return err
	}
}

func adminSubsDelete(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs("ID"); err != nil {
			return err
		}
		raw, err := a.c.getJSON(ctx, "DELETE", "/api/subscriptions/"+url.PathEscape(f.args()[0]), nil, nil)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		_, err = fmt.Fprintf(a.out, "removed subscription %s\n", f.args()[0])
		return err
	}
}

func adminNodes(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs(); err != nil {
			return err
		}
		var body struct {
			Self  string `json:"self"`
			Nodes []struct {
				ID          string    `json:"id"`
				Address     string    `json:"address"`
				Version     string    `json:"version"`
				Started     time.Time `json:"started"`
				Connections int64     `json:"connections"`
				Heartbeat   time.Time `json:"heartbeat"`
			} `json:"nodes"`
		}
		raw, err := a.c.getJSON(ctx, "GET", "/api/nodes", nil, &body)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		t := newTable(a.out, "NODE", "ADDRESS", "VERSION", "STARTED", "CONNECTIONS", "HEARTBEAT")
		for _, n := range body.Nodes {
			id := n.ID
			if id == body.Self {
				id += " (answering)"
			}
			t.row(id, n.Address, n.Version, when(n.Started), strconv.FormatInt(n.Connections, 10), when(n.Heartbeat))
		}
		return t.flush()
	}
}

func adminStats(f *flagSet) func(context.Context, *adminRun) error {
	return func(ctx context.Context, a *adminRun) error {
		if err := f.wantArgs(); err != nil {
			return err
		}
		var st struct {
			Node        string           `json:"node"`
			Time        string           `json:"time"`
			Connections map[string]int64 `json:"connections"`
			Published   uint64           `json:"published"`
			Delivered   uint64           `json:"delivered"`
			CutOff      uint64           `json:"cut_off"`
			Live        int64            `json:"live_subscriptions"`
			Topics      []topicRow       `json:"topics"`
		}
		raw, err := a.c.getJSON(ctx, "GET", "/api/stats", nil, &st)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(a.out, raw)
		}
		var conns []string
		for _, tr := range []string{"sse", "ws", "poll", "stream"} {
			conns = append(conns, fmt.Sprintf("%s %d", tr, st.Connections[tr]))
		}
		if err := fields(a.out, "node", st.Node, "time", st.Time, "connections", strings.Join(conns, ", "),
			"live subscriptions", strconv.FormatInt(st.Live, 10), "published", count(st.Published, "event"),
			"delivered", count(st.Delivered, "event"), "cut off", count(st.CutOff, "slow subscriber")); err != nil {
			return err
		}
		if len(st.Topics) == 0 {
			return nil
		}
		fmt.Fprintln(a.out)
		t := newTable(a.out, "TOPIC", "RATE/MIN", "HISTORY", "SUBSCRIBERS")
		for _, tp := range st.Topics {
			t.row(tp.Topic, strconv.FormatFloat(tp.RatePerMin, 'f', -1, 64), u64(tp.History), strconv.Itoa(tp.Subscribers))
		}
		return t.flush()
	}
}
