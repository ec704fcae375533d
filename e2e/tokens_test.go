package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's Node (jsonwebtoken) and Python (PyJWT) token examples, run
// as written, mint tokens the hub accepts for a private topic. Node's
// module comes from web/e2e-browser (npm ci in .ci/run), PyJWT from
// Debian's python3-jwt; without them the test skips loudly, unless
// HUBBUB_REQUIRE_TOKEN_EXAMPLES=1 (set by CI).
func TestReadmeTokenExamples(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-readme"
	// An admin key, so that this loopback test client is no admin (with
	// none, local clients are, and admins read every topic).
	h := startHub(t, t.TempDir(), "--jwt-secret", secret, "--private", "user/**", "--admin-key", "readme-admin")
	if a := h.do(t, http.MethodGet, "/events?topic=user/42/inbox", nil, nil); a.Status != http.StatusUnauthorized {
		t.Fatalf("private topic without a token: %s, want 401", a)
	}
	env := append(os.Environ(), "HUBBUB_JWT_SECRET="+secret)
	modules, err := filepath.Abs("../web/e2e-browser/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []struct {
		name, marker, tool, print string
		args                      func(code string) []string
	}{
		// The first block after this sentence is the Node one; the first
		// after the Node one's last line and fence is the Python one.
		{name: "node", marker: "or from your application, with the usual JWT library of its language:", tool: "node",
			print: "\nconsole.log(token);\n", args: func(code string) []string { return []string{"-e", code} }},
		{name: "python", marker: "expiresIn: \"1h\"});\n```", tool: "/usr/bin/python3",
			print: "\nprint(token)\n", args: func(code string) []string { return []string{"-c", code} }},
	} {
		t.Run(ex.name, func(t *testing.T) {
			tool := ex.tool
			if !filepath.IsAbs(tool) {
				tool = requireTool(t, tool, "HUBBUB_REQUIRE_TOKEN_EXAMPLES", "Node.js")
			}
			code := readmeBlock(t, ex.marker) + ex.print
			cmd := exec.Command(tool, ex.args(code)...)
			cmd.Env = append(env, "NODE_PATH="+modules)
			out, err := cmd.CombinedOutput()
			if err != nil {
				msg := "the README's " + ex.name + " token example did not run (" + err.Error() + "): " + string(out)
				if os.Getenv("HUBBUB_REQUIRE_TOKEN_EXAMPLES") == "1" {
					t.Fatal(msg)
				}
				t.Skip("*** TOKEN EXAMPLE NOT RUN: " + msg)
			}
			token := strings.TrimSpace(string(out))
			a := h.do(t, http.MethodGet, "/events?topic=user/42/inbox", http.Header{"Authorization": {"Bearer " + token}}, nil)
			if a.Status != http.StatusOK {
				t.Fatalf("token from the %s example: %s, want 200", ex.name, a)
			}
			if a := h.do(t, http.MethodGet, "/events?topic=user/7/inbox", http.Header{"Authorization": {"Bearer " + token}}, nil); a.Status != http.StatusForbidden {
				t.Fatalf("token from the %s example on another user's topic: %s, want 403", ex.name, a)
			}
		})
	}
}
