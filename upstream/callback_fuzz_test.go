package upstream

import (
	"strings"
	"testing"
	"time"
)

// FuzzCallback fuzzes what the callback reads from a remote (or forged)
// request: its path and hub.lease_seconds.
func FuzzCallback(f *testing.F) {
	for _, s := range []string{"/upstream/abc", "/upstream/abc/0123", "/upstream/abc/", "/upstream//x", "/upstream/a/b/c", "/x"} {
		f.Add(s, "3600")
	}
	f.Add("/upstream/a/b", "9200000000")
	f.Add("/upstream/a/b", "-1")
	f.Add("/upstream/a/b", "99999999999999999999999")
	f.Fuzz(func(t *testing.T, path, lease string) {
		if id, token, ok := parseCallbackPath(path); ok {
			want := "/upstream/" + id
			if token != "" || strings.HasSuffix(path, "/") {
				want += "/" + token
			}
			if id == "" || strings.Contains(id, "/") || strings.Contains(token, "/") || want != path {
				t.Fatalf("parseCallbackPath(%q) = %q, %q", path, id, token)
			}
		}
		for _, def := range []int64{0, 3600, -5, 1 << 62} {
			if d := clampLease(lease, def); d < MinLease || d > MaxLease {
				t.Fatalf("clampLease(%q, %d) = %v", lease, def, d)
			}
		}
		if tokenOK(Upstream{Token: ""}, path) {
			t.Fatal("an upstream without a token matched one")
		}
		if d := clampLease(lease, 3600); d%time.Second != 0 {
			t.Fatalf("clampLease(%q) = %v, not whole seconds", lease, d)
		}
	})
}
