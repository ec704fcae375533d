package origin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzWrite feeds arbitrary Origin, Host and Sec-Fetch-Site headers to the
// write check of a hub with no allowed origins: it never panics, and a
// POST /publish that carries an Origin reaches the hub only when that
// origin names the request's own host.
func FuzzWrite(f *testing.F) {
	f.Add("https://evil.example", "hub.test", "cross-site")
	f.Add("http://hub.test", "hub.test", "")
	f.Add("null", "hub.test:80", "same-origin")
	f.Add("http://HUB.test:80", "hub.test", "")
	f.Add("http://hub.test@evil.example", "hub.test", "")
	p := New(Options{})
	f.Fuzz(func(t *testing.T, o, host, site string) {
		reached := false
		h := p.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
		r := httptest.NewRequest("POST", "/publish", nil)
		r.Host = host
		r.Header = http.Header{"Origin": {o}, "Sec-Fetch-Site": {site}}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !reached {
			if w.Code != http.StatusForbidden {
				t.Fatalf("refused with %d", w.Code)
			}
			return
		}
		if o == "" {
			if strings.EqualFold(site, "cross-site") {
				t.Fatalf("cross-site request without Origin reached the hub")
			}
			return
		}
		u, err := url.Parse(o)
		if err != nil || u.User != nil || !strings.EqualFold(defaultPort(u.Host, strings.ToLower(u.Scheme)), defaultPort(host, strings.ToLower(u.Scheme))) {
			t.Fatalf("origin %q reached the hub at host %q", o, host)
		}
	})
}
