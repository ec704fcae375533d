package backup

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract feeds Extract arbitrary streams: it must never panic, never
// write outside its directory, and leave either a backup that Verify
// accepts or nothing.
func FuzzExtract(f *testing.F) {
	f.Add(sampleStreamF(f))
	f.Add(tarOf(f, []tar.Header{{Name: "../x"}}, []string{"1"}))
	f.Add(tarOf(f, []tar.Header{{Name: "log/a"}, {Name: ManifestName}},
		[]string{"1", manifestFor(map[string]string{"log/a": "1"}, "log/a")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "b")
		_, err := Extract(bytes.NewReader(stream), dir)
		entries, _ := os.ReadDir(parent)
		if err != nil {
			if len(entries) != 0 {
				t.Fatalf("failed (%v) but left %v", err, entries)
			}
			return
		}
		if len(entries) != 1 || entries[0].Name() != "b" {
			t.Fatalf("wrote outside its directory: %v", entries)
		}
		if _, err := Verify(dir); err != nil {
			t.Fatalf("Extract succeeded but Verify fails: %v", err)
		}
	})
}

func sampleStreamF(f *testing.F) []byte {
	var buf bytes.Buffer
	if _, err := Write(f.Context(), &buf, f.TempDir(), []Source{
		fakeSource("log", map[string]string{"000005.log": "events", "OPTIONS-000003": "opts"}),
	}, Manifest{}); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
