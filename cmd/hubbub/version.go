package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/hubbub/hubbub/internal/buildinfo"
)

// version prints which build this binary is: one line, or with --json the
// buildinfo.Info object.
func version(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubbub version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the build as JSON (version, revision, time, modified, go_version, platform, source)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hubbub version [--json]\n\nPrints the version of this binary: the release version stamped at build time, else\nthe module version (go install ...@vX), else the VCS revision of the checkout it was built in.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	in := buildinfo.Read()
	if *asJSON {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintln(stdout, "hubbub", in)
	return nil
}
