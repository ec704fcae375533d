package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// leafCommands returns every runnable command, as its words after
// "hubbub", and every group of commands (which only prints its usage).
func leafCommands() (leaves, groups [][]string) {
	for _, c := range commands() {
		switch c.name {
		case "admin":
			groups = append(groups, []string{"admin"}, []string{"admin", "topics"}, []string{"admin", "subscriptions"})
			for _, ac := range adminCmds {
				leaves = append(leaves, append([]string{"admin"}, strings.Fields(ac.path)...))
			}
		case "upstream":
			groups = append(groups, []string{"upstream"})
			for _, sub := range []string{"add", "list", "remove"} {
				leaves = append(leaves, []string{"upstream", sub})
			}
		default:
			leaves = append(leaves, []string{c.name})
		}
	}
	return leaves, groups
}

func runCLI(args []string, env map[string]string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// --help works the same everywhere: exit 0, the usage on stdout naming
// the command as typed, nothing on stderr; -h and `hubbub help X` too.
func TestHelpEverywhere(t *testing.T) {
	leaves, groups := leafCommands()
	if len(leaves) < 18 {
		t.Fatalf("only %d commands found: %v", len(leaves), leaves)
	}
	for _, words := range leaves {
		name := "hubbub " + strings.Join(words, " ")
		for _, help := range []string{"--help", "-h", "-help"} {
			code, out, errOut := runCLI(append(append([]string{}, words...), help), nil)
			if code != 0 || !strings.HasPrefix(out, "Usage: "+name) || errOut != "" {
				t.Errorf("%s %s: exit %d, stdout %.80q, stderr %.200q; want 0, %q", name, help, code, out, errOut, "Usage: "+name)
			}
		}
		// Flags after the positional arguments are flags too.
		code, out, _ := runCLI(append(append([]string{}, words...), "ARG", "--help"), nil)
		if words[0] != "serve" && (code != 0 || !strings.HasPrefix(out, "Usage: "+name)) {
			t.Errorf("%s ARG --help: exit %d, %.80q", name, code, out)
		}
	}
	if code, out, _ := runCLI([]string{"help", "tail"}, nil); code != 0 || !strings.HasPrefix(out, "Usage: hubbub tail") {
		t.Errorf("hubbub help tail: exit %d, %.80q", code, out)
	}
	for _, words := range groups {
		name := "hubbub " + strings.Join(words, " ")
		code, out, errOut := runCLI(append(append([]string{}, words...), "--help"), nil)
		if code != 0 || !strings.HasPrefix(out, "Usage:\n  "+name+" ") || errOut != "" {
			t.Errorf("%s --help: exit %d, stdout %.80q, stderr %.80q", name, code, out, errOut)
		}
		// Without a command: the same usage, on stderr, exit 2.
		code, out, errOut = runCLI(words, nil)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "Usage:\n  "+name+" ") {
			t.Errorf("%s: exit %d, stdout %.80q, stderr %.80q; want 2 and the usage on stderr", name, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		if code, out, _ := runCLI(args, nil); code != 0 || !strings.Contains(out, "Usage:\n  hubbub serve") {
			t.Errorf("hubbub %v: exit %d, %.80q", args, code, out)
		}
	}
}

// Bad usage exits 2 and says what is wrong, naming a missing flag or
// argument; a hub that cannot be reached is a failure (exit 1), not bad
// usage.
func TestUsageErrors(t *testing.T) {
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	env := map[string]string{"HUBBUB_URL": dead}
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{}, 2, "Usage:"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"serve", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"publish", "x"}, 2, "name a topic with -t TOPIC"},
		{[]string{"publish", "-t", "a"}, 2, "missing DATA"},
		{[]string{"publish", "-t", "a", "1", "2"}, 2, `unexpected argument "2"`},
		{[]string{"tail"}, 2, "name a topic with -t TOPIC"},
		{[]string{"tail", "-t", "a", "--max", "-1"}, 2, "--max must not be negative"},
		{[]string{"tail", "-t", "a", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"admin", "nope"}, 2, `unknown command "nope"`},
		{[]string{"admin", "topics", "nope"}, 2, `unknown command "topics nope"`},
		{[]string{"admin", "topics", "trim", "t"}, 2, "missing --keep N"},
		{[]string{"admin", "topics", "trim", "--keep", "1"}, 2, "missing TOPIC"},
		{[]string{"admin", "topics", "trim", "t", "--keep", "-1"}, 2, "want a whole number"},
		{[]string{"admin", "topics", "stats"}, 2, "missing TOPIC"},
		{[]string{"admin", "topics", "list", "x"}, 2, `unexpected argument "x"`},
		{[]string{"admin", "subscriptions", "show"}, 2, "missing ID"},
		{[]string{"admin", "subscriptions", "resume"}, 2, "missing ID"},
		{[]string{"admin", "subscriptions", "delete", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"admin", "subscriptions", "list", "--limit", "0"}, 2, "--limit must be 1..1000"},
		{[]string{"upstream"}, 2, "Usage:"},
		{[]string{"upstream", "nope"}, 2, `unknown command "nope"`},
		{[]string{"upstream", "add", "--hub", "h", "--topic", "t"}, 2, "missing --into TOPIC"},
		{[]string{"upstream", "remove"}, 2, "missing ID"},
		{[]string{"bench", "--publishers", "0"}, 2, "--publishers must be at least 1"},
		{[]string{"token"}, 2, "missing --secret"},
		{[]string{"version", "x"}, 2, `unexpected argument "x"`},
		{[]string{"config-reference", "x"}, 2, `unexpected argument "x"`},
		// Well formed, but nobody answers: 1.
		{[]string{"publish", "-t", "a", "1"}, 1, "connection refused"},
		{[]string{"admin", "nodes"}, 1, "connection refused"},
		{[]string{"upstream", "list"}, 1, "connection refused"},
		{[]string{"admin", "stats", "--server", "ftp://x"}, 1, "want the hub's URL"},
	} {
		code, out, errOut := runCLI(tc.args, env)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("hubbub %q: exit %d, stderr %.300q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if code != 0 && out != "" {
			t.Errorf("hubbub %q: exit %d but printed %q on stdout", tc.args, code, out)
		}
	}
}

// The README's CLI section lists every command.
func TestReadmeListsEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## CLI\n.*?```sh\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no ```sh block in its ## CLI section")
	}
	block := string(m[1])
	leaves, _ := leafCommands()
	for _, words := range leaves {
		if name := "hubbub " + strings.Join(words, " "); !strings.Contains(block, name) {
			t.Errorf("README's CLI block does not show %q", name)
		}
	}
}
