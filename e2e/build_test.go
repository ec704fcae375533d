package e2e

import (
	"debug/elf"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestReleaseBuild builds hubbub the way .goreleaser.yaml says (its env,
// flags and ldflags, with the templates filled in) and checks that the
// stamped version reaches every place that shows it: `hubbub version
// [--json]`, the start-up log, hubbub_build_info in /metrics and "build" in
// /api/stats; and that the binary is static. So the release configuration
// cannot stamp a variable that no longer exists.
func TestReleaseBuild(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var gr struct {
		Version int `yaml:"version"`
		Builds  []struct {
			Main    string   `yaml:"main"`
			Env     []string `yaml:"env"`
			Flags   []string `yaml:"flags"`
			Ldflags []string `yaml:"ldflags"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
		} `yaml:"builds"`
	}
	if err := yaml.Unmarshal(raw, &gr); err != nil {
		t.Fatal(err)
	}
	if gr.Version != 2 || len(gr.Builds) != 1 {
		t.Fatalf(".goreleaser.yaml: version %d, %d builds; want version 2, one build", gr.Version, len(gr.Builds))
	}
	b := gr.Builds[0]
	for _, want := range []string{"linux", "darwin"} {
		if !strings.Contains(strings.Join(b.Goos, ","), want) {
			t.Errorf("goos %v lacks %s", b.Goos, want)
		}
	}
	for _, want := range []string{"amd64", "arm64"} {
		if !strings.Contains(strings.Join(b.Goarch, ","), want) {
			t.Errorf("goarch %v lacks %s", b.Goarch, want)
		}
	}
	const (
		version  = "9.8.7"
		revision = "0123456789abcdef0123456789abcdef01234567"
		date     = "2026-11-30T12:00:00Z"
	)
	ldflags := strings.Join(b.Ldflags, " ")
	for tmpl, v := range map[string]string{"{{ .Version }}": version, "{{ .FullCommit }}": revision, "{{ .CommitDate }}": date} {
		ldflags = strings.ReplaceAll(ldflags, tmpl, v)
	}
	if strings.Contains(ldflags, "{{") {
		t.Fatalf("ldflags use a template this test does not fill in: %s", ldflags)
	}
	bin := filepath.Join(t.TempDir(), "hubbub")
	args := append(append([]string{"build"}, b.Flags...), "-ldflags", ldflags, "-o", bin, b.Main)
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), b.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}

	if strings.Contains(strings.Join(b.Env, " "), "CGO_ENABLED=0") {
		checkStatic(t, bin)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "hubbub v"+version+" (0123456789ab, "+date+") go1.") {
		t.Errorf("hubbub version: %v: %q", err, out)
	}
	out, err = exec.Command(bin, "version", "--json").CombinedOutput()
	var info struct{ Version, Revision, Time, Source string }
	if err != nil || json.Unmarshal(out, &info) != nil || info.Version != "v"+version || info.Revision != revision || info.Time != date || info.Source != "ldflags" {
		t.Errorf("hubbub version --json: %v: %s", err, out)
	}

	h := startHubBinary(t, bin, "", nil)
	if !regexp.MustCompile(`msg="hubbub listening".* version=v` + regexp.QuoteMeta(version) + ` revision=0123456789ab`).MatchString(h.Stderr()) {
		t.Errorf("the start-up log does not name the build:\n%s", h.Stderr())
	}
	series := `hubbub_build_info{goversion="` + goVersionOf(t, bin) + `",revision="` + revision + `",version="v` + version + `"}`
	if v := h.metric(t, series); v != 1 {
		t.Errorf("%s = %v, want 1", series, v)
	}
	var st struct {
		Build struct{ Version, Revision string } `json:"build"`
	}
	if a := h.do(t, http.MethodGet, "/api/stats", nil, nil); json.Unmarshal(a.Body, &st) != nil || st.Build.Version != "v"+version || st.Build.Revision != revision {
		t.Errorf("/api/stats build = %+v: %s", st.Build, a)
	}
	if a := h.do(t, http.MethodGet, "/", nil, nil); !strings.Contains(string(a.Body), "hubbub v"+version) {
		t.Errorf("the dashboard's footer does not show v%s", version)
	}
}

// TestReadmeStaticBuild runs the README's static build command (Install)
// and checks that it stamps the version and links statically.
func TestReadmeStaticBuild(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "hubbub")
	line := strings.TrimSpace(readmeBlock(t, "<!-- tested: e2e/build_test.go static build -->"))
	line = replaceOnce(t, line, "-o hubbub ", "-o "+bin+" ")
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	checkStatic(t, bin)
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "hubbub v1.2.3 ") {
		t.Errorf("the README's build: hubbub version: %v: %q", err, out)
	}
}

// checkStatic fails unless bin is an ELF file without an interpreter
// (statically linked).
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (it has an ELF interpreter)", bin)
		}
	}
}

// goVersionOf is the Go version that built bin, as `hubbub version --json`
// says.
func goVersionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version", "--json").Output()
	var info struct {
		GoVersion string `json:"go_version"`
	}
	if err != nil || json.Unmarshal(out, &info) != nil {
		t.Fatalf("version --json: %v %s", err, out)
	}
	return info.GoVersion
}
