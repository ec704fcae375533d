package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "3f9c0e1a2b4d5e6f708192a3b4c5d6e7f8091a2b"},
		{Key: "vcs.time", Value: "2026-11-23T20:15:01Z"},
		{Key: "vcs.modified", Value: "false"},
	}
	dirty := append(append([]debug.BuildSetting(nil), vcs[:3]...), debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		name   string
		st     stamp
		bi     *debug.BuildInfo
		want   Info
		String string
	}{
		{name: "no build info", want: Info{Version: "dev", GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "none"},
			String: "dev go1.26.8 linux/amd64"},
		{name: "-buildvcs=false", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want: Info{Version: "dev", GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "none"}},
		{name: "go install @v1.2.3", bi: &debug.BuildInfo{GoVersion: "go1.26.7", Main: debug.Module{Version: "v1.2.3"}},
			want:   Info{Version: "v1.2.3", GoVersion: "go1.26.7", Platform: "linux/amd64", Source: "module"},
			String: "v1.2.3 go1.26.7 linux/amd64"},
		{name: "checkout, older toolchain", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			want: Info{Version: "dev", Revision: "3f9c0e1a2b4d5e6f708192a3b4c5d6e7f8091a2b", Time: "2026-11-23T20:15:01Z",
				GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "vcs"},
			String: "dev (3f9c0e1a2b4d, 2026-11-23T20:15:01Z) go1.26.8 linux/amd64"},
		{name: "checkout, modified, pseudo-version", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261123201501-3f9c0e1a2b4d+dirty"}, Settings: dirty},
			want: Info{Version: "v0.0.0-20261123201501-3f9c0e1a2b4d+dirty", Revision: "3f9c0e1a2b4d5e6f708192a3b4c5d6e7f8091a2b",
				Time: "2026-11-23T20:15:01Z", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "module"}},
		{name: "modified, toolchain did not mark the version", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261123201501-3f9c0e1a2b4d"}, Settings: dirty},
			want: Info{Version: "v0.0.0-20261123201501-3f9c0e1a2b4d+dirty", Revision: "3f9c0e1a2b4d5e6f708192a3b4c5d6e7f8091a2b",
				Time: "2026-11-23T20:15:01Z", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "module"}},
		{name: "ldflags win over VCS", st: stamp{"v1.4.0", "abc", "2026-12-01T00:00:00Z"}, bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: dirty},
			want:   Info{Version: "v1.4.0", Revision: "abc", Time: "2026-12-01T00:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "ldflags"},
			String: "v1.4.0 (abc, 2026-12-01T00:00:00Z) go1.26.8 linux/amd64"},
		{name: "GoReleaser without git state", st: stamp{"v0.0.1-snapshot", "none", "0001-01-01T00:00:00Z"},
			want:   Info{Version: "v0.0.1-snapshot", GoVersion: "go1.26.8", Platform: "linux/amd64", Source: "ldflags"},
			String: "v0.0.1-snapshot go1.26.8 linux/amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := from(tc.st, tc.bi, "go1.26.8", "linux/amd64")
			if got != tc.want {
				t.Errorf("from = %+v\nwant  %+v", got, tc.want)
			}
			if tc.String != "" && got.String() != tc.String {
				t.Errorf("String = %q, want %q", got.String(), tc.String)
			}
		})
	}
}

// Read works in whatever way the test binary was built (CI sets
// -buildvcs=false): it names the toolchain and never an empty version.
func TestReadNeverEmpty(t *testing.T) {
	in := Read()
	if in.Version == "" || in.GoVersion == "" || in.Platform == "" || in.Source == "" {
		t.Errorf("Read() = %+v: a field is empty", in)
	}
}
