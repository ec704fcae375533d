package origin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPolicy is the table of the two rules: which requests reach the hub,
// with which CORS headers.
func TestPolicy(t *testing.T) {
	const app = "https://app.example.com"
	listed := Options{Allowed: []string{app}}
	star := Options{Allowed: []string{"*"}}
	public := Options{PublicURL: "https://hub.example.com/base"}
	tests := []struct {
		name    string
		opts    Options
		method  string
		path    string
		host    string
		headers map[string]string
		status  int    // 200 = reached the hub
		acao    string // Access-Control-Allow-Origin wanted ("" = none)
		creds   bool
	}{
		{"no origin, no cors", Options{}, "POST", "/publish", "", nil, 200, "", false},
		{"own origin publish", Options{}, "POST", "/publish", "hub.test", map[string]string{"Origin": "http://hub.test"}, 200, "", false},
		{"own host over https behind a proxy", Options{}, "POST", "/publish", "hub.test", map[string]string{"Origin": "https://hub.test"}, 200, "", false},
		{"own host default port", Options{}, "POST", "/publish", "hub.test:443", map[string]string{"Origin": "https://hub.test"}, 200, "", false},
		{"own host other port", Options{}, "POST", "/publish", "hub.test:8080", map[string]string{"Origin": "http://hub.test:9090"}, 403, "", false},
		{"public url origin", public, "POST", "/publish", "10.0.0.5:8080", map[string]string{"Origin": "https://hub.example.com"}, 200, "", false},
		{"foreign publish", Options{}, "POST", "/publish", "hub.test", map[string]string{"Origin": "https://evil.example"}, 403, "", false},
		{"foreign thin ping", Options{}, "POST", "/", "hub.test", map[string]string{"Origin": "https://evil.example"}, 403, "", false},
		{"foreign websub", Options{}, "POST", "/hub", "hub.test", map[string]string{"Origin": "https://evil.example"}, 403, "", false},
		{"null origin", Options{}, "POST", "/publish", "hub.test", map[string]string{"Origin": "null"}, 403, "", false},
		{"cross-site without origin", Options{}, "POST", "/publish", "hub.test", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "", false},
		{"same-site without origin", Options{}, "POST", "/publish", "hub.test", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200, "", false},
		{"foreign GET is served, no cors", Options{}, "GET", "/events", "hub.test", map[string]string{"Origin": "https://evil.example"}, 200, "", false},
		{"foreign POST elsewhere", Options{}, "POST", "/events", "hub.test", map[string]string{"Origin": "https://evil.example"}, 200, "", false},
		{"foreign admin POST", Options{}, "POST", "/api/upstreams", "hub.test", map[string]string{"Origin": "https://evil.example"}, 403, "", false},
		{"foreign backup", Options{}, "POST", "/api/backup", "hub.test", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "", false},
		{"own admin POST", Options{}, "POST", "/api/upstreams", "hub.test", map[string]string{"Origin": "http://hub.test"}, 200, "", false},
		{"listed origin, admin POST", listed, "POST", "/api/upstreams", "hub.test", map[string]string{"Origin": app}, 403, "", false},
		{"star, admin POST", star, "POST", "/api/backup", "hub.test", map[string]string{"Origin": "https://any.example"}, 403, "", false},
		{"listed publish", listed, "POST", "/publish", "hub.test", map[string]string{"Origin": app}, 200, app, true},
		{"listed events", listed, "GET", "/events", "hub.test", map[string]string{"Origin": app}, 200, app, true},
		{"listed documents", listed, "GET", "/documents", "hub.test", map[string]string{"Origin": app}, 200, app, true},
		{"listed topics", listed, "GET", "/topics/a/b", "hub.test", map[string]string{"Origin": app}, 200, app, true},
		{"listed, admin api gets no cors", listed, "GET", "/api/stats", "hub.test", map[string]string{"Origin": app}, 200, "", false},
		{"listed, other origin", listed, "POST", "/publish", "hub.test", map[string]string{"Origin": "https://evil.example"}, 403, "", false},
		{"listed, other origin GET", listed, "GET", "/events", "hub.test", map[string]string{"Origin": "https://evil.example"}, 200, "", false},
		{"listed, cross-site with listed origin", listed, "POST", "/publish", "hub.test", map[string]string{"Origin": app, "Sec-Fetch-Site": "cross-site"}, 200, app, true},
		{"star publish", star, "POST", "/publish", "hub.test", map[string]string{"Origin": "https://any.example"}, 200, "*", false},
		{"star events", star, "GET", "/events", "hub.test", map[string]string{"Origin": "https://any.example"}, 200, "*", false},
		{"preflight listed", listed, "OPTIONS", "/publish", "hub.test", map[string]string{"Origin": app, "Access-Control-Request-Method": "POST"}, 204, app, true},
		{"preflight star", star, "OPTIONS", "/events", "hub.test", map[string]string{"Origin": app, "Access-Control-Request-Method": "GET"}, 204, "*", false},
		{"preflight foreign", listed, "OPTIONS", "/publish", "hub.test", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, 403, "", false},
		{"preflight without cors configured", Options{}, "OPTIONS", "/publish", "hub.test", map[string]string{"Origin": app, "Access-Control-Request-Method": "POST"}, 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := false
			h := New(tt.opts).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"topic":"t","data":1}`))
			if tt.host != "" {
				r.Host = tt.host
			}
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if reached != (tt.status == 200) {
				t.Fatalf("reached the hub: %v, want %v", reached, tt.status == 200)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != tt.acao {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tt.acao)
			}
			if got := w.Header().Get("Access-Control-Allow-Credentials") == "true"; got != tt.creds {
				t.Fatalf("credentials %v, want %v", got, tt.creds)
			}
			if tt.status == 403 && !strings.Contains(w.Body.String(), "refused") && !strings.Contains(w.Body.String(), "may not") {
				t.Fatalf("403 without a plain reason: %q", w.Body)
			}
			if tt.status == 204 {
				for _, h := range []string{"Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"} {
					if !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), h) {
						t.Fatalf("preflight does not allow %s: %q", h, w.Header().Get("Access-Control-Allow-Headers"))
					}
				}
			}
			if tt.acao != "" && tt.status == 200 && !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Hubbub-Cursor") {
				t.Fatalf("Hubbub-Cursor is not exposed")
			}
		})
	}
}
