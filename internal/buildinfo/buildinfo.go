// Package buildinfo says which build of hubbub is running, from the best
// source there is:
//
//  1. what the release build stamped with -ldflags -X (see .goreleaser.yaml):
//
//     -X github.com/hubbub/hubbub/internal/buildinfo.version=v1.2.3
//     -X github.com/hubbub/hubbub/internal/buildinfo.revision=FULL_COMMIT
//     -X github.com/hubbub/hubbub/internal/buildinfo.commitTime=RFC3339
//
//  2. else what the Go toolchain recorded (runtime/debug.ReadBuildInfo):
//     the module version for `go install …@vX.Y.Z`, and for a build inside
//     a git checkout the VCS revision, commit time and whether the tree was
//     modified (absent with -buildvcs=false, as in CI);
//
//  3. else "dev".
//
// The stamped variables are the only package state, written by the linker
// and never at run time.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-ldflags -X); empty in a plain build.
var (
	version    string
	revision   string
	commitTime string
)

// Info describes one build.
type Info struct {
	// Version is a release version (v1.2.3), a module pseudo-version
	// (v0.0.0-20261123201501-3f9c0e1a2b4d), or "dev" when nothing better is
	// known.
	Version string `json:"version"`
	// Revision is the full VCS commit hash; "" when unknown.
	Revision string `json:"revision,omitempty"`
	// Time is the commit time (RFC 3339); "" when unknown.
	Time string `json:"time,omitempty"`
	// Modified reports uncommitted changes in the tree it was built from.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built it (go1.26.8).
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Source says where Version came from: "ldflags", "module", "vcs" or
	// "none".
	Source string `json:"source"`
}

// Read returns the running binary's Info. It never fails: missing sources
// give "dev" and empty fields.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return from(stamp{version, revision, commitTime}, bi, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
}

// stamp is what -ldflags -X set.
type stamp struct{ version, revision, time string }

// from derives Info from a stamp and the toolchain's build info (bi may be
// nil). It is Read without the process state, for tests.
func from(st stamp, bi *debug.BuildInfo, goVersion, platform string) Info {
	in := Info{Version: "dev", GoVersion: goVersion, Platform: platform, Source: "none"}
	var vcsRev, vcsTime string
	var vcsModified bool
	if bi != nil {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				vcsModified = s.Value == "true"
			}
		}
	}
	switch {
	case st.version != "":
		in.Version, in.Source = st.version, "ldflags"
		in.Revision, in.Time = st.revision, st.time
		// GoReleaser stamps these when it could not read the git state.
		if in.Revision == "none" {
			in.Revision = ""
		}
		if strings.HasPrefix(in.Time, "0001-01-01") {
			in.Time = ""
		}
		return in
	case bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		// go install …@vX.Y.Z, or (Go ≥ 1.24) a build in a checkout, where
		// the toolchain derives a pseudo-version from the VCS state.
		in.Version, in.Source = bi.Main.Version, "module"
	case vcsRev != "":
		in.Version, in.Source = "dev", "vcs"
	}
	in.Revision, in.Time, in.Modified = vcsRev, vcsTime, vcsModified
	if in.Modified && in.Source == "module" && !strings.HasSuffix(in.Version, "+dirty") {
		in.Version += "+dirty"
	}
	return in
}

// ShortRevision is the first 12 hex digits of Revision ("" when unknown).
func (in Info) ShortRevision() string {
	if len(in.Revision) > 12 {
		return in.Revision[:12]
	}
	return in.Revision
}

// String is one human line: "v1.2.3 (3f9c0e1a2b4d, 2026-11-23T20:15:01Z,
// modified) go1.26.8 linux/amd64", leaving out what is unknown.
func (in Info) String() string {
	var detail []string
	if r := in.ShortRevision(); r != "" {
		detail = append(detail, r)
	}
	if in.Time != "" {
		detail = append(detail, in.Time)
	}
	if in.Modified {
		detail = append(detail, "modified")
	}
	s := in.Version
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s", s, in.GoVersion, in.Platform)
}
