package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Exit codes and messages of the CLI's usage paths (newcomer report 12):
// help is 0 on stdout, bad usage is 2 and says what is wrong once.
func TestUsageExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, noOut string // in stdout+stderr; must not appear
	}{
		{[]string{}, 2, "Usage:", ""},
		{[]string{"--help"}, 0, "Usage:", ""},
		{[]string{"upstream", "--help"}, 0, "hubbub upstream add", ""},
		{[]string{"version", "--help"}, 0, "Usage: hubbub version", ""},
		{[]string{"version"}, 0, "hubbub ", ""},
		{[]string{"version", "--json"}, 0, `"go_version":`, ""},
		{[]string{"version", "x"}, 2, "Usage: hubbub version", ""},
		{[]string{"backup"}, 2, "Usage: hubbub backup", ""},
		{[]string{"backup", "a", "b"}, 2, "Usage: hubbub backup", ""},
		{[]string{"restore", "--help"}, 0, "Usage: hubbub restore", ""},
		{[]string{"restore"}, 2, "Usage: hubbub restore", ""},
		{[]string{"healthcheck", "--help"}, 0, "Usage: hubbub healthcheck", ""},
		{[]string{"config-reference", "--help"}, 0, "Usage: hubbub config-reference", "| `--listen`"},
		{[]string{"serve", "--help"}, 0, "Usage: hubbub serve [flags]", ""},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined", "configuration:"},
		{[]string{"tail"}, 2, "name a topic with -t TOPIC", ""},
		{[]string{"publish", "x"}, 2, "name a topic with -t TOPIC", ""},
		{[]string{"nope"}, 2, `unknown command "nope"`, ""},
	} {
		var out bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &out, func(string) string { return "" })
		if code != tc.code || !strings.Contains(out.String(), tc.out) || tc.noOut != "" && strings.Contains(out.String(), tc.noOut) {
			t.Errorf("hubbub %v: exit %d, want %d; output (want %q, not %q):\n%s", tc.args, code, tc.code, tc.out, tc.noOut, out.String())
		}
	}
}
