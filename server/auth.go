package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// publishAuth guards publishing. With keys configured, a request needs
// "Authorization: Bearer KEY" naming one of them (401 otherwise). With
// none, only loopback clients may publish (403 for others).
type publishAuth struct {
	keys [][32]byte // sha256 of each key, compared in constant time
}

func newPublishAuth(keys []string) publishAuth {
	var a publishAuth
	for _, k := range keys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	return a
}

func (a publishAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := a.check(r); code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hubbub publish"`)
			}
			http.Error(w, msg, code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check returns 0 when r may publish, else the status and reason.
func (a publishAuth) check(r *http.Request) (int, string) {
	if len(a.keys) == 0 {
		if isLoopback(r.RemoteAddr) {
			return 0, ""
		}
		return http.StatusForbidden, "publishing is open to loopback clients only: configure --publish-key to publish from elsewhere"
	}
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return http.StatusUnauthorized, "publishing needs Authorization: Bearer KEY"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	found := 0
	for _, k := range a.keys {
		found |= subtle.ConstantTimeCompare(sum[:], k[:])
	}
	if found == 0 {
		return http.StatusUnauthorized, "the publish key is not valid"
	}
	return 0, ""
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
