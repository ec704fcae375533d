package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubbub/hubbub/web"
)

func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	web.New(web.Options{Version: "v1.2.3<x>"}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", "hubbub v1.2.3&lt;x&gt;"},
		{"/wall", "text/html; charset=utf-8", `<script src="/static/wall.js"`},
		{"/globe", "text/html; charset=utf-8", `<script src="/static/globe.js"`},
		{"/examples/chat", "text/html; charset=utf-8", `<script src="/static/chat.js"`},
		{"/explorer", "text/html; charset=utf-8", `id="publish-form"`},
		{"/static/world.js", "text/javascript; charset=utf-8", "window.hubbubWorld"},
		{"/static/live.js", "text/javascript; charset=utf-8", "hubbubLive"},
		{"/client.js", "text/javascript; charset=utf-8", "hubbub.subscribe(baseUrl, options)"},
		{"/static/client.js", "text/javascript; charset=utf-8", "function publish("},
		{"/static/style.css", "text/css; charset=utf-8", ":root"},
		{"/static/charts.js", "text/javascript; charset=utf-8", "hubbubCharts"},
		{"/static/test.png", "image/png", "\x89PNG"},
		{"/static/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.contains, strings.Contains(body, c.contains))
		}
		if strings.HasSuffix(c.ctype, "html; charset=utf-8") && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no CSP", c.path)
		}
		if strings.Contains(body, "{{VERSION}}") {
			t.Errorf("GET %s: version placeholder left", c.path)
		}
		// Revalidation answers 304.
		if r2, _ := get(c.path, "If-None-Match", resp.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", c.path, r2.StatusCode)
		}
	}
	for _, p := range []string{"/static/nope.js", "/static/", "/nope", "/static/../web.go"} {
		if resp, _ := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// The pages load nothing from other hosts.
	for _, p := range []string{"/", "/wall", "/globe", "/explorer", "/examples/chat"} {
		_, body := get(p)
		if strings.Contains(body, "src=\"http") || strings.Contains(body, "href=\"http") {
			t.Errorf("GET %s refers to another host", p)
		}
	}
}

// Only the wall and the globe may be framed, and only by the sources
// configured; the dashboard, explorer and chat never (they hold forms worth
// clickjacking).
func TestFrameAncestors(t *testing.T) {
	for _, c := range []struct {
		name     string
		sources  []string
		wallCSP  string // the frame-ancestors value
		wallXFO  string
		otherCSP string
	}{
		{"default", nil, "'none'", "DENY", "'none'"},
		{"self", []string{"'self'"}, "'self'", "SAMEORIGIN", "'none'"},
		{"origins", []string{"'self'", "https://cms.example.com", "https://*.example.org:8443"},
			"'self' https://cms.example.com https://*.example.org:8443", "", "'none'"},
		{"a smuggled directive is dropped", []string{"https://a.example; script-src *"}, "'none'", "DENY", "'none'"},
	} {
		mux := http.NewServeMux()
		web.New(web.Options{FrameAncestors: c.sources}).Register(mux)
		for path, want := range map[string][2]string{
			"/wall": {c.wallCSP, c.wallXFO}, "/globe": {c.wallCSP, c.wallXFO}, "/": {c.otherCSP, "DENY"},
			"/explorer": {c.otherCSP, "DENY"}, "/examples/chat": {c.otherCSP, "DENY"},
		} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			policy := rec.Header().Get("Content-Security-Policy")
			_, frames, _ := strings.Cut(policy, "frame-ancestors ")
			if frames != want[0] || strings.Count(policy, "frame-ancestors") != 1 {
				t.Errorf("%s: GET %s: CSP %q, want frame-ancestors %s last", c.name, path, policy, want[0])
			}
			if got := rec.Header().Get("X-Frame-Options"); got != want[1] {
				t.Errorf("%s: GET %s: X-Frame-Options %q, want %q", c.name, path, got, want[1])
			}
		}
	}
}

// The globe's world outline (static/world.js, made by tools/world.mjs) is
// small, and every point decodes to a place on Earth.
func TestWorldOutline(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("static", "world.js"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 64<<10 {
		t.Errorf("static/world.js is %d bytes; keep it under 64 KiB", len(b))
	}
	_, js, ok := strings.Cut(string(b), "window.hubbubWorld = ")
	if !ok || !strings.Contains(string(b), "Generated by web/tools/world.mjs") || !strings.Contains(string(b), "Natural Earth") {
		t.Fatal("static/world.js does not say where it comes from, or defines no window.hubbubWorld")
	}
	js = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(js), ";"))
	// The object literal's keys are bare: quote them for encoding/json.
	js = strings.Replace(strings.Replace(js, "{scale:", `{"scale":`, 1), ", rings:", `, "rings":`, 1)
	var w struct {
		Scale float64     `json:"scale"`
		Rings [][]float64 `json:"rings"`
	}
	if err := json.Unmarshal([]byte(js), &w); err != nil {
		t.Fatalf("static/world.js: %v", err)
	}
	if w.Scale <= 0 || len(w.Rings) < 100 {
		t.Fatalf("scale %v, %d rings: not a world", w.Scale, len(w.Rings))
	}
	points := 0
	for i, r := range w.Rings {
		if len(r)%2 != 0 || len(r) < 8 {
			t.Fatalf("ring %d has %d numbers", i, len(r))
		}
		var lon, lat float64
		for j := 0; j < len(r); j += 2 {
			lon += r[j]
			lat += r[j+1]
			if x, y := lon/w.Scale, lat/w.Scale; x < -180 || x > 180 || y < -90 || y > 90 {
				t.Fatalf("ring %d point %d is off Earth: %v, %v", i, j/2, y, x)
			}
			points++
		}
	}
	t.Logf("%d rings, %d points, %d bytes", len(w.Rings), points, len(b))
}
