package main

import (
	"flag"
	"testing"
)

// The CLI finds the publish key in the server's own variable too, so one
// shell can run `hubbub serve` and `hubbub publish` (newcomer report 12).
func TestAuthFlagDefault(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"HUBBUB_PUBLISH_KEY": "k"}, "k"},
		{map[string]string{"HUBBUB_PUBLISH_KEYS": " k1 ,k2"}, "k1"},
		{map[string]string{"HUBBUB_PUBLISH_KEY": "k", "HUBBUB_PUBLISH_KEYS": "k1"}, "k"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		got := authFlag(fs, func(k string) string { return tc.env[k] })
		if *got != tc.want {
			t.Errorf("env %v: auth %q, want %q", tc.env, *got, tc.want)
		}
	}
}
