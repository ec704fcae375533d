package origin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkWrap measures what the middleware adds to a request: a CORS
// GET from a listed origin, and a refused cross-origin POST.
func BenchmarkWrap(b *testing.B) {
	h := New(Options{Allowed: []string{"https://app.example.com", "https://other.example.com"}}).
		Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, bc := range []struct{ name, method, path, origin string }{
		{"cors-get", "GET", "/events", "https://app.example.com"},
		{"refused-post", "POST", "/publish", "https://evil.example"},
		{"no-origin-post", "POST", "/publish", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(bc.method, bc.path, nil)
			if bc.origin != "" {
				r.Header.Set("Origin", bc.origin)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
