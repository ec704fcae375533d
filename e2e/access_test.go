package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
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

// TestTailWithToken: `hubbub tail --auth TOKEN` follows a private pattern,
// and on leaving says the cursor to resume with (newcomer report 12: a
// pattern tail could not be resumed from its own output); without the
// token it stops at once with the 401.
func TestTailWithToken(t *testing.T) {
	t.Parallel()
	const secret = "e2e-secret-0123456789abcdef0123456789"
	h := startHub(t, "", "--jwt-secret", secret, "--private", "user/**", "--admin-key", "e2e-admin")
	mint := exec.Command(hubBinary, "token", "--secret", secret, "--subscribe", "user/1/**", "--ttl", "1h")
	mint.Env = hubEnv()
	tok, err := mint.Output()
	if err != nil {
		t.Fatalf("hubbub token: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	denied := exec.CommandContext(ctx, hubBinary, "tail", "-t", "user/1/**", "--server", h.URL)
	denied.Env = hubEnv()
	if out, err := denied.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("tail of a private pattern without a token: %v, %s", err, out)
	}

	tail := exec.CommandContext(ctx, hubBinary, "tail", "-t", "user/1/**", "--server", h.URL, "--max", "2", "--auth", strings.TrimSpace(string(tok)))
	tail.Env = hubEnv()
	var tailOut, tailErr lockedBuf
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tail.Wait() }()
	h.waitMetric(t, `hubbub_connections{transport="sse"}`, 10*time.Second, func(v float64) bool { return v >= 1 })
	admin := http.Header{"Authorization": {"Bearer e2e-admin"}, "Content-Type": {"application/json"}}
	for _, topic := range []string{"user/1/a", "user/1/b"} {
		if a := h.do(t, http.MethodPost, "/publish", admin, []byte(`{"topic":"`+topic+`","data":1}`)); a.Status != http.StatusOK {
			t.Fatalf("publish %s: %s", topic, a)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hubbub tail --max 2: %v; stderr %s", err, tailErr.String())
		}
	case <-ctx.Done():
		t.Fatalf("hubbub tail did not end; stdout %q stderr %q", tailOut.String(), tailErr.String())
	}
	if n := strings.Count(strings.TrimSpace(tailOut.String()), "\n") + 1; n != 2 {
		t.Errorf("tail printed %d lines, want 2: %q", n, tailOut.String())
	}
	if !strings.Contains(tailErr.String(), "resume with --after m.") {
		t.Errorf("tail did not say the multi-topic cursor to resume with: %q", tailErr.String())
	}
}
