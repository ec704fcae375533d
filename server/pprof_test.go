package server

import (
	"strings"
	"testing"

	"github.com/hubbub/hubbub/config"
)

// The profiler is off unless --pprof, admin-only when on, and served on
// the admin listener only when there is one.
func TestPProf(t *testing.T) {
	const key = "pprof-test-admin-key"
	cases := []struct {
		name   string
		pprof  bool
		admin  bool   // with --admin-listen
		target string // "main" or "admin"
		auth   string
		want   int
	}{
		{"off", false, false, "main", key, 404},
		{"on, no key", true, false, "main", "", 401},
		{"on, wrong key", true, false, "main", "nope", 401},
		{"on, admin key", true, false, "main", key, 200},
		{"on, main listener of an admin split", true, true, "main", key, 404},
		{"on, admin listener", true, true, "admin", key, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.AdminKey = key
			cfg.PProf = tc.pprof
			r := startServer(t, cfg, tc.admin, nil)
			base := "http://" + r.addr
			if tc.target == "admin" {
				base = "http://" + r.adminAddr
			}
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", "Bearer " + tc.auth}
			}
			code, body := get(t, base+"/debug/pprof/", hdr...)
			if code != tc.want {
				t.Fatalf("GET /debug/pprof/: %d %.200q, want %d", code, body, tc.want)
			}
			if code == 200 && !strings.Contains(body, "goroutine") {
				t.Fatalf("GET /debug/pprof/ answered 200 without the profile index: %.300q", body)
			}
		})
	}
}
