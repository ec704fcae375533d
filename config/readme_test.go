package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The README's configuration table is Reference's output; this keeps the
// two from drifting.
func TestReadmeHasReference(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- config:begin -->\n")
	table, _, ok2 := strings.Cut(rest, "<!-- config:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md lacks the config:begin / config:end markers")
	}
	var want bytes.Buffer
	Reference(&want)
	if strings.TrimSpace(table) != strings.TrimSpace(want.String()) {
		t.Fatalf("README.md's configuration table is stale; replace it with the output of config.Reference:\n%s", want.String())
	}
}
