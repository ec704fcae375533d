package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSource checkpoints by writing the given files.
func fakeSource(name string, files map[string]string) Source {
	return Source{Name: name, Checkpoint: func(dir string) error {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		for n, body := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o600); err != nil {
				return err
			}
		}
		return nil
	}}
}

func sampleStream(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, t.TempDir(), []Source{
		fakeSource("websub", map[string]string{"MANIFEST-000001": "records", "000002.sst": strings.Repeat("x", 10000)}),
		fakeSource("log", map[string]string{"000005.log": "events", "OPTIONS-000003": "opts"}),
	}, Manifest{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Bytes != 10000+7+6+4 {
		t.Errorf("stats = %+v", st)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	stream := sampleStream(t)
	dir := filepath.Join(t.TempDir(), "b")
	m, err := Extract(bytes.NewReader(stream), dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Node != "n1" || len(m.Files) != 4 || strings.Join(m.Databases, ",") != "websub,log" || m.Bytes() != 10017 {
		t.Errorf("manifest = %+v", m)
	}
	if m2, err := Verify(dir); err != nil || len(m2.Files) != 4 {
		t.Fatalf("Verify = %+v, %v", m2, err)
	}
	dst := t.TempDir()
	if err := CopyTo(dir, dst, m); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "log", "000005.log")); err != nil || string(b) != "events" {
		t.Errorf("copied file = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ManifestName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the manifest was copied into the data directory: %v", err)
	}

	// A changed, missing or added file fails Verify.
	for name, spoil := range map[string]func(dir string) error{
		"changed": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "log", "000005.log"), []byte("eventz"), 0o600)
		},
		"missing":     func(dir string) error { return os.Remove(filepath.Join(dir, "log", "000005.log")) },
		"added":       func(dir string) error { return os.WriteFile(filepath.Join(dir, "log", "extra"), nil, 0o600) },
		"added db":    func(dir string) error { return os.Mkdir(filepath.Join(dir, "tasks"), 0o700) },
		"no manifest": func(dir string) error { return os.Remove(filepath.Join(dir, ManifestName)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			if _, err := Extract(bytes.NewReader(stream), dir); err != nil {
				t.Fatal(err)
			}
			if err := spoil(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(dir); err == nil {
				t.Error("Verify passed")
			}
		})
	}
}

// tarOf builds a stream of the given entries (a nil body is a symlink).
func tarOf(t testing.TB, entries []tar.Header, bodies []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, h := range entries {
		h.Size = int64(len(bodies[i]))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o600
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(bodies[i])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifestFor(files map[string]string, order ...string) string {
	m := Manifest{Format: FormatVersion, Databases: []string{"log"}}
	for _, p := range order {
		sum := sha256.Sum256([]byte(files[p]))
		m.Files = append(m.Files, File{Path: p, Size: int64(len(files[p])), SHA256: hex.EncodeToString(sum[:])})
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Hostile or broken streams are refused, nothing is written outside the
// target, and the target is left as it was.
func TestExtractRefuses(t *testing.T) {
	good := map[string]string{"log/a": "1", "log/b": "22"}
	man := manifestFor(good, "log/a", "log/b")
	full := sampleStream(t)
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"truncated before the manifest", full[:len(full)/2], ""},
		{"no manifest", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/b"}}, []string{"1", "22"}), "without its manifest"},
		{"empty", nil, "without its manifest"},
		{"parent directory", tarOf(t, []tar.Header{{Name: "../escape"}}, []string{"x"}), "not DATABASE/FILE"},
		{"parent in the middle", tarOf(t, []tar.Header{{Name: "log/../../escape"}}, []string{"x"}), "not DATABASE/FILE"},
		{"absolute", tarOf(t, []tar.Header{{Name: "/tmp/escape"}}, []string{"x"}), "not DATABASE/FILE"},
		{"deep", tarOf(t, []tar.Header{{Name: "log/sub/x"}}, []string{"x"}), "not DATABASE/FILE"},
		{"symlink", tarOf(t, []tar.Header{{Name: "log/a", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, []string{""}), "not a regular file"},
		{"directory entry", tarOf(t, []tar.Header{{Name: "log/", Typeflag: tar.TypeDir}}, []string{""}), "not a regular file"},
		{"duplicate", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/a"}}, []string{"1", "1"}), "twice"},
		{"file not in manifest", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/b"}, {Name: "log/c"}, {Name: ManifestName}},
			[]string{"1", "22", "3", man}), "differ"},
		{"changed content", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/b"}, {Name: ManifestName}},
			[]string{"1", "23", man}), "differ"},
		{"entry after manifest", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/b"}, {Name: ManifestName}, {Name: "log/c"}},
			[]string{"1", "22", man, "3"}), "after the manifest"},
		{"bad manifest", tarOf(t, []tar.Header{{Name: "log/a"}, {Name: ManifestName}}, []string{"1", `{"format":1,"extra":true}`}), "manifest"},
		{"other format", tarOf(t, []tar.Header{{Name: ManifestName}}, []string{`{"format":99}`}), "format 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "b")
			_, err := Extract(bytes.NewReader(tc.stream), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Extract: %v, want an error with %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("left behind in %s: %v", parent, entries)
			}
		})
	}

	// A good stream passes (the table above is not refusing everything).
	stream := tarOf(t, []tar.Header{{Name: "log/a"}, {Name: "log/b"}, {Name: ManifestName}}, []string{"1", "22", man})
	if _, err := Extract(bytes.NewReader(stream), filepath.Join(t.TempDir(), "b")); err != nil {
		t.Fatal(err)
	}
}

func TestExtractNeedsEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(sampleStream(t)), dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Extract into a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "mine" {
		t.Errorf("the existing file changed: %q, %v", b, err)
	}
	// An existing empty directory is fine, and stays after a failure.
	empty := t.TempDir()
	if _, err := Extract(bytes.NewReader(nil), empty); err == nil {
		t.Fatal("an empty stream was taken")
	}
	if _, err := os.Stat(empty); err != nil {
		t.Errorf("the existing empty directory was removed: %v", err)
	}
}

func TestWriteStopsOnCheckpointError(t *testing.T) {
	tmp := t.TempDir()
	var buf bytes.Buffer
	_, err := Write(context.Background(), &buf, tmp, []Source{
		fakeSource("websub", map[string]string{"a": "1"}),
		{Name: "log", Checkpoint: func(string) error { return errors.New("disk full") }},
	}, Manifest{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write: %v", err)
	}
	if bytes.Contains(buf.Bytes(), []byte(ManifestName)) {
		t.Error("a failed backup carries a manifest")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
	for _, bad := range []string{"", "..", "a/b", ManifestName} {
		if _, err := Write(context.Background(), &buf, tmp, []Source{fakeSource(bad, nil)}, Manifest{}); err == nil {
			t.Errorf("database name %q accepted", bad)
		}
	}
}
