package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hubbub/hubbub/internal/buildinfo"
)

// version prints which build this binary is: one line, or with --json the
// buildinfo.Info object.
func version(_ context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub version", "hubbub version [--json]\n\nPrints the version of this binary: the release version stamped at build time, else\nthe module version (go install ...@vX), else the VCS revision of the checkout it was built in.")
	stdout := e.stdout
	asJSON := f.Bool("json", false, "print the build as JSON (version, revision, time, modified, go_version, platform, source)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs(); err != nil {
		return err
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
