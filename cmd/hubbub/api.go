package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// apiTimeout bounds one request of a command to the hub's API.
const apiTimeout = 30 * time.Second

// maxAnswer bounds how much of an answer the CLI reads.
const maxAnswer = 16 << 20

// apiClient talks to a hub's HTTP API with one bearer credential.
type apiClient struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	auth string // sent as "Authorization: Bearer AUTH" when not ""
	// authHint is added to a 401 or 403 answer: how to give a credential.
	authHint string
	hc       *http.Client
}

// newAPIClient checks base (--server) and returns a client for it.
func newAPIClient(base, auth, authHint string) (*apiClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want the hub's URL, such as http://127.0.0.1:8080", base)
	}
	return &apiClient{base: strings.TrimRight(base, "/"), auth: auth, authHint: authHint, hc: &http.Client{Timeout: apiTimeout}}, nil
}

// apiError is a non-2xx answer.
type apiError struct {
	status string // "404 Not Found"
	code   int
	msg    string // the answer's text
	hint   string
}

func (e *apiError) Error() string {
	s := e.status
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

// call sends method path; form goes in the query of a GET or DELETE and
// as a form body otherwise. It returns the body of a 2xx answer, else an
// *apiError.
func (c *apiClient) call(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	endpoint := c.base + path
	var body io.Reader
	if len(form) > 0 {
		if method == http.MethodGet || method == http.MethodDelete {
			endpoint += "?" + form.Encode()
		} else {
			body = strings.NewReader(form.Encode())
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return c.send(req)
}

// send sends req with the credential and reads the answer as call does.
func (c *apiClient) send(req *http.Request) ([]byte, error) {
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{status: resp.Status, code: resp.StatusCode, msg: strings.TrimSpace(string(b))}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden && c.auth == "" {
			e.hint = c.authHint
		}
		return nil, e
	}
	return b, nil
}

// getJSON calls and decodes a JSON answer into v; it returns the raw body
// too, for --json.
func (c *apiClient) getJSON(ctx context.Context, method, path string, form url.Values, v any) ([]byte, error) {
	b, err := c.call(ctx, method, path, form)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("the hub's answer is not the JSON expected (%v): %.200s", err, b)
		}
	}
	return b, nil
}

// printJSON writes a JSON answer indented, with a final newline.
func printJSON(w io.Writer, raw []byte) error {
	var out bytes.Buffer
	if json.Indent(&out, bytes.TrimSpace(raw), "", "  ") != nil {
		out.Reset()
		out.Write(bytes.TrimSpace(raw))
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row adds a row; tabs and newlines in cells become spaces.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fields writes "name: value" lines, aligned; empty values are left out.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
		}
	}
	return tw.Flush()
}

// when formats a time for people: UTC to the second, "" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// count says "1 event", "2 events".
func count(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}
