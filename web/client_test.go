package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clientPackageFiles are the files `npm publish` of web/client ships.
var clientPackageFiles = []string{"README.md", "client.js", "index.d.mts", "index.d.ts", "index.mjs", "package.json"}

// requireNodeModules returns node and npm, or skips (loudly; fails with
// HUBBUB_REQUIRE_BROWSER=1) when they or the client package's
// node_modules are missing.
func requireNodeModules(t *testing.T) (node, npm string) {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install -y nodejs npm)")
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		missing = append(missing, "npm (apt-get install -y npm)")
	}
	for _, pkg := range []string{"ws", "eventsource", "typescript"} {
		if _, err := os.Stat(filepath.Join("client", "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, "web/client/node_modules (cd web/client && npm ci)")
			break
		}
	}
	if len(missing) > 0 {
		msg := "CLIENT PACKAGE TESTS NOT RUN: missing " + strings.Join(missing, ", ")
		if os.Getenv("HUBBUB_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_BROWSER=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		t.Skip(msg)
	}
	return node, npm
}

// TestClientPackage checks web/client as the npm package hubbub-client:
// what `npm pack` would publish, its TypeScript declarations (tsc on a
// usage file for ES modules, CommonJS and the browser global), and its
// tests under Node (client/test/*.test.mjs, with the real ws and
// eventsource packages) against the real hubbub binary, through a TCP
// proxy the tests can cut.
func TestClientPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("the client package tests are not short")
	}
	node, npm := requireNodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("pack", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, npm, "pack", "--dry-run", "--json", "--ignore-scripts")
		cmd.Dir = "client"
		cmd.Env = append(cleanEnv(), "npm_config_loglevel=error", "npm_config_update_notifier=false")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("npm pack --dry-run: %v\n%s", err, out)
		}
		var packs []struct {
			Name  string `json:"name"`
			Files []struct {
				Path string `json:"path"`
			} `json:"files"`
		}
		if err := json.Unmarshal(out, &packs); err != nil || len(packs) != 1 {
			t.Fatalf("npm pack --json: %v\n%s", err, out)
		}
		var files []string
		for _, f := range packs[0].Files {
			files = append(files, f.Path)
		}
		slices.Sort(files)
		if packs[0].Name != "hubbub-client" || !slices.Equal(files, clientPackageFiles) {
			t.Fatalf("npm would publish %s with %v, want hubbub-client with %v", packs[0].Name, files, clientPackageFiles)
		}
	})

	t.Run("types", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, node, filepath.Join("node_modules", "typescript", "bin", "tsc"), "-p", filepath.Join("test", "types"))
		cmd.Dir = "client"
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tsc -p test/types: %v\n%s", err, out)
		}
	})

	t.Run("node", func(t *testing.T) {
		const adminKey = "client-test-admin-key"
		_, h, keyed := startHubPair(t, adminKey)
		px := newProxy(t, h.addr)
		ctl := newControl(t, h, px)
		slow := newSlowProxy(t, h.addr)

		tests, err := filepath.Glob(filepath.Join("client", "test", "*.test.mjs"))
		if err != nil || len(tests) == 0 {
			t.Fatalf("no tests in web/client/test (%v)", err)
		}
		for i := range tests {
			tests[i] = strings.TrimPrefix(filepath.ToSlash(tests[i]), "client/")
		}
		cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, tests...)...)
		cmd.Dir = "client"
		cmd.Env = append(cleanEnv(),
			"HUBBUB_URL=http://"+h.addr,
			"HUBBUB_PROXY_URL=http://"+px.addr,
			"HUBBUB_CONTROL_URL=http://"+ctl,
			"HUBBUB_KEYED_URL=http://"+keyed.addr,
			"HUBBUB_ADMIN_KEY="+adminKey,
			"HUBBUB_SLOW_URL=http://"+slow.addr,
			"HUBBUB_SLOW_CONTROL_URL=http://"+slow.ctl,
		)
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("node --test %s:\n%s", strings.Join(tests, " "), out)
		}
		if err != nil {
			t.Errorf("client package tests failed: %v (hub log:\n%s)", err, tail(h.log.String(), 4000))
		}
	})
}
