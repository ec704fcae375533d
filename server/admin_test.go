package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/config"
)

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminListener: with --admin-listen the dashboard, /api/... and
// /metrics answer 404 on the main listener and are served on the admin
// one; health, the public pages and the wire protocol stay on both.
func TestAdminListener(t *testing.T) {
	r := startServer(t, config.Default(), true, nil)
	main, admin := "http://"+r.addr, "http://"+r.adminAddr
	tests := []struct {
		path      string
		main, adm int
	}{
		{"/", 404, 200},
		{"/api/stats", 404, 200},
		{"/api/nodes", 404, 200},
		{"/api/upstreams", 404, 200},
		{"/metrics", 404, 200},
		{"/healthz", 200, 200},
		{"/readyz", 200, 200},
		{"/explorer", 200, 200},
		{"/client.js", 200, 200},
		{"/events?topic=a&wait=poll&timeout=1ms", 200, 200},
	}
	for _, tt := range tests {
		if code, body := get(t, main+tt.path); code != tt.main {
			t.Errorf("main %s: %d, want %d (%s)", tt.path, code, tt.main, body)
		}
		if code, body := get(t, admin+tt.path); code != tt.adm {
			t.Errorf("admin %s: %d, want %d (%s)", tt.path, code, tt.adm, body)
		}
	}
	// WebSub stays on the main listener: POST / is not the dashboard.
	resp, err := http.Post(main+"/", "application/x-www-form-urlencoded", strings.NewReader("hub.mode=nonsense"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Fatalf("POST / (WebSub) answered 404 on the main listener")
	}
}

// TestMetricsKey (audit finding 13): with --metrics-key, /metrics needs the
// key as a bearer token, as Prometheus' authorization setting sends it.
func TestMetricsKey(t *testing.T) {
	cfg := config.Default()
	cfg.MetricsKey = "scrape-secret"
	r := startServer(t, cfg, false, nil)
	url := "http://" + r.addr + "/metrics"
	for _, tt := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no key", nil, 401},
		{"wrong key", []string{"Authorization", "Bearer nope"}, 401},
		{"basic", []string{"Authorization", "Basic c2NyYXBlLXNlY3JldA=="}, 401},
		{"key", []string{"Authorization", "Bearer scrape-secret"}, 200},
	} {
		code, body := get(t, url, tt.header...)
		if code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
		}
		if code == 200 && !strings.Contains(body, "hubbub_") {
			t.Errorf("%s: no hubbub metrics in %.200s", tt.name, body)
		}
		if code == 401 && strings.Contains(body, "hubbub_") {
			t.Errorf("%s: metrics leaked with 401", tt.name)
		}
	}

	open := startServer(t, config.Default(), false, nil)
	if code, _ := get(t, "http://"+open.addr+"/metrics"); code != 200 {
		t.Fatalf("without --metrics-key /metrics answered %d, want 200 (open)", code)
	}
}

// TestCrossOriginPublishRefused is the audit's finding 5 CSRF: a page on
// another origin posts a JSON body as text/plain (a "simple" request, no
// preflight). It now gets 403 and nothing is published; the hub's own
// origin and a configured --cors-origin still publish.
func TestCrossOriginPublishRefused(t *testing.T) {
	cfg := config.Default()
	cfg.CORSOrigins = []string{"http://app.test"}
	r := startServer(t, cfg, false, nil)
	base := "http://" + r.addr
	post := func(path, ctype, body string, header ...string) (int, string) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	js := `{"topic":"csrf/demo","data":1}`
	for _, tt := range []struct {
		name, path, ctype, body string
		header                  []string
		want                    int
	}{
		{"text/plain from evil", "/publish", "text/plain;charset=UTF-8", js, []string{"Origin", "https://evil.example"}, 403},
		{"form from evil", "/publish?topic=csrf/demo", "application/x-www-form-urlencoded", "data=1", []string{"Origin", "https://evil.example"}, 403},
		{"json from evil", "/publish", "application/json", js, []string{"Origin", "https://evil.example"}, 403},
		{"thin ping from evil", "/", "application/x-www-form-urlencoded", "hub.mode=publish&hub.url=http://x.test/", []string{"Origin", "https://evil.example"}, 403},
		{"cross-site, no origin", "/publish", "text/plain", js, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"own origin", "/publish", "application/json", js, []string{"Origin", base}, 200},
		{"listed origin", "/publish", "application/json", js, []string{"Origin", "http://app.test"}, 200},
		{"no origin (curl)", "/publish", "application/json", js, nil, 200},
	} {
		code, body := post(tt.path, tt.ctype, tt.body, tt.header...)
		if code != tt.want {
			t.Errorf("%s: %d, want %d (%s)", tt.name, code, tt.want, body)
		}
	}
	// Only the three allowed publishes stored anything.
	_, body := get(t, base+"/events?topic=csrf/demo&wait=poll&timeout=1ms&after=0")
	if n := strings.Count(body, `"seq"`); n != 3 {
		t.Fatalf("%d events stored, want the 3 allowed ones: %s", n, body)
	}
}
