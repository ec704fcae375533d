package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
)

// env is what a command may touch outside its arguments.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// errUsage marks errors already explained to the user: the command has
// printed what is wrong and its usage on stderr; the exit code is 2.
var errUsage = errors.New("usage")

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// flagSet is one command's flags and usage. Every command parses through
// it, so that all behave alike: --help prints the usage on stdout and
// exits 0; a bad flag or a missing argument prints the problem and the
// usage on stderr and exits 2 (errUsage); flags may come before or after
// the positional arguments.
type flagSet struct {
	*flag.FlagSet
	e     env
	name  string // "hubbub admin topics trim"
	usage string // the usage line(s) and description, without the flags
	pos   []string
	// notes are printed on stderr after a successful parse, for the flags
	// the command line did not set (a default from a deprecated variable).
	notes map[string]string
}

// newFlags returns the flags of the command name ("hubbub tail"). usage
// starts with the synopsis after "Usage: ".
func newFlags(e env, name, usage string) *flagSet {
	f := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), e: e, name: name, usage: usage}
	f.SetOutput(e.stderr)
	f.Usage = func() {} // parse prints the usage where it belongs
	return f
}

// secretFlags are flags whose default (from the environment) --help must
// not print.
var secretFlags = map[string]bool{"admin-key": true, "auth": true, "secret": true}

// printUsage writes the usage and the flags, with their defaults, to w,
// in the form `hubbub serve --help` uses.
func (f *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n", strings.TrimRight(f.usage, "\n"))
	first := true
	f.VisitAll(func(fl *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		typ, usage := flag.UnquoteUsage(fl)
		dash := "--"
		if len(fl.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + fl.Name
		if typ != "" {
			line += " " + strings.ToUpper(typ)
		}
		switch {
		case fl.DefValue == "" || fl.DefValue == "false" || fl.DefValue == "0":
		case secretFlags[fl.Name]:
			usage += " (set from the environment)"
		case typ == "string":
			usage += fmt.Sprintf(" (default %q)", fl.DefValue)
		default:
			usage += fmt.Sprintf(" (default %s)", fl.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
}

// parse parses args, allowing flags after positional arguments (up to a
// "--"); the positional ones are in f.args(). It returns flag.ErrHelp after
// printing the usage on stdout, or errUsage after explaining a bad flag.
func (f *flagSet) parse(args []string) error {
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printUsage(f.e.stdout)
				return flag.ErrHelp
			}
			// The flag package has printed the error itself.
			fmt.Fprintln(f.e.stderr)
			f.printUsage(f.e.stderr)
			return errUsage
		}
		rest := f.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			f.pos = append(f.pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		f.pos = append(f.pos, rest[0])
		args = rest[1:]
	}
	f.Visit(func(fl *flag.Flag) { delete(f.notes, fl.Name) })
	for _, note := range f.notes {
		fmt.Fprintln(f.e.stderr, note)
	}
	return nil
}

// note arranges for msg to be printed after parsing unless the command
// line sets the flag name.
func (f *flagSet) note(name, msg string) {
	if f.notes == nil {
		f.notes = map[string]string{}
	}
	f.notes[name] = msg
}

// args returns the positional arguments.
func (f *flagSet) args() []string { return f.pos }

// fail prints "NAME: message" and the usage on stderr and returns
// errUsage.
func (f *flagSet) fail(format string, a ...any) error {
	fmt.Fprintf(f.e.stderr, "%s: %s\n\n", f.name, fmt.Sprintf(format, a...))
	f.printUsage(f.e.stderr)
	return errUsage
}

// wantArgs checks the number of positional arguments: names are their
// names for the error ("TOPIC", "ID"); the last may end in "..." for one
// or more.
func (f *flagSet) wantArgs(names ...string) error {
	n := len(f.pos)
	variadic := len(names) > 0 && strings.HasSuffix(names[len(names)-1], "...")
	switch {
	case n < len(names):
		return f.fail("missing %s", strings.TrimSuffix(names[n], "..."))
	case n > len(names) && !variadic:
		return f.fail("unexpected argument %q", f.pos[len(names)])
	}
	return nil
}

// require fails naming the first flag of names ("hub") whose value is "".
func (f *flagSet) require(names ...string) error {
	for _, name := range names {
		if fl := f.Lookup(name); fl != nil && fl.Value.String() == "" {
			typ, usage := flag.UnquoteUsage(fl)
			return f.fail("missing --%s %s: %s", name, strings.ToUpper(typ), usage)
		}
	}
	return nil
}

// serverFlag adds --server: HUBBUB_URL, else the server's own
// HUBBUB_LISTEN (so a shell set up for `hubbub serve` reaches it), else
// http://127.0.0.1:8080.
func serverFlag(f *flagSet) *string {
	return f.String("server", defaultServer(f.e.getenv), "the hub's base `URL` (env HUBBUB_URL, else http://HUBBUB_LISTEN)")
}

func defaultServer(getenv func(string) string) string {
	if u := getenv("HUBBUB_URL"); u != "" {
		return u
	}
	if l := getenv("HUBBUB_LISTEN"); l != "" {
		if host, port, err := net.SplitHostPort(l); err == nil {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				host = "127.0.0.1"
			}
			return "http://" + net.JoinHostPort(host, port)
		}
	}
	return "http://127.0.0.1:8080"
}

// publishKeyFlag adds --auth, the publish credential: the first of the
// server's own HUBBUB_PUBLISH_KEYS, else HUBBUB_PUBLISH_KEY (deprecated;
// a note says so on stderr when it is the one used).
func publishKeyFlag(f *flagSet) *string {
	def := firstOf(f.e.getenv("HUBBUB_PUBLISH_KEYS"))
	if def == "" {
		if def = f.e.getenv("HUBBUB_PUBLISH_KEY"); def != "" {
			f.note("auth", "hubbub: HUBBUB_PUBLISH_KEY is deprecated; set HUBBUB_PUBLISH_KEYS, which the server reads too")
		}
	}
	return f.String("auth", def, "publish `KEY` or token, sent as a bearer token (env: the first of HUBBUB_PUBLISH_KEYS)")
}

// firstOf returns the first element of a comma-separated list.
func firstOf(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}

// adminKeyFlag adds --admin-key (env HUBBUB_ADMIN_KEY, as the server).
func adminKeyFlag(f *flagSet) *string {
	return f.String("admin-key", f.e.getenv("HUBBUB_ADMIN_KEY"), "admin `KEY`, or a token with admin rights, sent as a bearer token (env HUBBUB_ADMIN_KEY)")
}

// jsonFlag adds --json.
func jsonFlag(f *flagSet) *bool {
	return f.Bool("json", false, "print the hub's JSON answer instead of text for people")
}
