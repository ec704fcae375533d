package e2e

import (
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestTokensBlackBox: a token printed by `hubbub token` opens a private
// topic of a hub started with --jwt-secret and --private, for reading and
// publishing within its patterns, and the secret never reaches the log.
func TestTokensBlackBox(t *testing.T) {
	t.Parallel()
	const secret = "e2e-secret-0123456789abcdef0123456789"
	h := startHub(t, "", "--jwt-secret", secret, "--private", "user/**", "--admin-key", "e2e-admin")
	cmd := exec.Command(hubBinary, "token", "--secret", secret, "--subscribe", "user/1/**", "--publish", "user/1/**", "--ttl", "1h")
	cmd.Env = hubEnv()
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hubbub token: %v: %s", err, stderr.String())
	}
	tok := strings.TrimSpace(out.String())
	bearer := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}

	a := h.do(t, http.MethodGet, "/events?topic=user/1/inbox", nil, nil)
	if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("anonymous read of a private topic: %s (WWW-Authenticate %q)", a, a.Header.Get("WWW-Authenticate"))
	}
	if a := h.do(t, http.MethodPost, "/publish", bearer, []byte(`{"topic":"user/1/inbox","data":"hi"}`)); a.Status != http.StatusOK {
		t.Fatalf("publish with a covering token: %s", a)
	}
	if a := h.do(t, http.MethodPost, "/publish", bearer, []byte(`{"topic":"user/2/inbox","data":"hi"}`)); a.Status != http.StatusForbidden {
		t.Fatalf("publish outside the token: %s", a)
	}
	a = h.do(t, http.MethodGet, "/events?topic=user/1/inbox&access_token="+tok, nil, nil)
	if a.Status != http.StatusOK || !strings.Contains(string(a.Body), `"hi"`) {
		t.Fatalf("read with the token in the query: %s", a)
	}
	if a := h.do(t, http.MethodGet, "/events?topic=user/2/inbox", bearer, nil); a.Status != http.StatusForbidden {
		t.Fatalf("read outside the token: %s", a)
	}
	if a := h.do(t, http.MethodGet, "/events?topic=news", nil, nil); a.Status != http.StatusOK {
		t.Fatalf("anonymous read of a public topic: %s", a)
	}
	if strings.Contains(h.Stderr(), secret) {
		t.Fatal("the JWT secret appears in the log")
	}
}
