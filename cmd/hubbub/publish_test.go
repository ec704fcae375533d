package main

import (
	"bytes"
	"strings"
	"testing"
)

// The CLI reads the publish key from the server's own variable, so one
// shell can run `hubbub serve` and `hubbub publish` (newcomer report 12);
// the CLI's old name still works, with a note that it is deprecated.
func TestPublishKeyDefault(t *testing.T) {
	for _, tc := range []struct {
		env        map[string]string
		args       []string
		want, note string
	}{
		{map[string]string{}, nil, "", ""},
		{map[string]string{"HUBBUB_PUBLISH_KEYS": " k1 ,k2"}, nil, "k1", ""},
		{map[string]string{"HUBBUB_PUBLISH_KEYS": "k1", "HUBBUB_PUBLISH_KEY": "k"}, nil, "k1", ""},
		{map[string]string{"HUBBUB_PUBLISH_KEY": "k"}, nil, "k", "HUBBUB_PUBLISH_KEY is deprecated"},
		{map[string]string{"HUBBUB_PUBLISH_KEY": "k"}, []string{"--auth", "x"}, "x", ""},
	} {
		var stderr bytes.Buffer
		f := newFlags(env{stdout: &stderr, stderr: &stderr, getenv: func(k string) string { return tc.env[k] }}, "t", "t")
		got := publishKeyFlag(f)
		if err := f.parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if *got != tc.want || (tc.note == "") != (stderr.Len() == 0) || !strings.Contains(stderr.String(), tc.note) {
			t.Errorf("env %v args %v: auth %q (want %q), stderr %q (want %q)", tc.env, tc.args, *got, tc.want, stderr.String(), tc.note)
		}
	}
}

// --server defaults to HUBBUB_URL, else to the address the server's own
// HUBBUB_LISTEN names.
func TestDefaultServer(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "http://127.0.0.1:8080"},
		{map[string]string{"HUBBUB_LISTEN": ":9000"}, "http://127.0.0.1:9000"},
		{map[string]string{"HUBBUB_LISTEN": "0.0.0.0:9000"}, "http://127.0.0.1:9000"},
		{map[string]string{"HUBBUB_LISTEN": "[::]:9000"}, "http://127.0.0.1:9000"},
		{map[string]string{"HUBBUB_LISTEN": "127.0.0.2:9000"}, "http://127.0.0.2:9000"},
		{map[string]string{"HUBBUB_LISTEN": "[::1]:9000"}, "http://[::1]:9000"},
		{map[string]string{"HUBBUB_LISTEN": "nonsense"}, "http://127.0.0.1:8080"},
		{map[string]string{"HUBBUB_LISTEN": ":9000", "HUBBUB_URL": "https://hub.example"}, "https://hub.example"},
	} {
		if got := defaultServer(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("env %v: %q, want %q", tc.env, got, tc.want)
		}
	}
}
