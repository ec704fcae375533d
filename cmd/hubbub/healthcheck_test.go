package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLocalAddr(t *testing.T) {
	for _, tc := range []struct{ listen, want, err string }{
		{":8080", "127.0.0.1:8080", ""},
		{"0.0.0.0:8080", "127.0.0.1:8080", ""},
		{"[::]:8080", "[::1]:8080", ""},
		{"127.0.0.1:9000", "127.0.0.1:9000", ""},
		{"hub.internal:80", "hub.internal:80", ""},
		{"127.0.0.1:0", "", "port 0"},
		{"8080", "", "missing port"},
	} {
		got, err := localAddr(tc.listen)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("localAddr(%q) = %q, %v; want %q, error with %q", tc.listen, got, err, tc.want, tc.err)
		}
	}
}

// healthcheck finds the hub from HUBBUB_LISTEN, speaks HTTPS when
// HUBBUB_TLS_CERT is set and trusts exactly that certificate.
func TestHealthcheck(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" && up.Load():
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz":
			http.Error(w, "not ready: store: down", http.StatusServiceUnavailable)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(handler)
	defer tlsSrv.Close()
	certFile := func(der []byte) string {
		p := filepath.Join(t.TempDir(), "cert.pem")
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Another certificate for the same name (httptest's servers share one).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	otherDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(s *httptest.Server) string {
		return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		out  string
	}{
		{"plain", map[string]string{"HUBBUB_LISTEN": addr(plain)}, nil, 0, "/healthz: ok"},
		{"not ready", map[string]string{"HUBBUB_LISTEN": addr(plain)}, []string{"--ready"}, 1, "503"},
		{"tls, pinned", map[string]string{"HUBBUB_LISTEN": addr(tlsSrv), "HUBBUB_TLS_CERT": certFile(tlsSrv.Certificate().Raw)}, nil, 0, "https://"},
		{"tls, another certificate", map[string]string{"HUBBUB_LISTEN": addr(tlsSrv), "HUBBUB_TLS_CERT": certFile(otherDER)}, nil, 1, "another certificate"},
		{"nobody listening", map[string]string{"HUBBUB_LISTEN": "127.0.0.1:1"}, nil, 1, "refused"},
		{"explicit url", nil, []string{"--url", plain.URL + "/healthz"}, 0, "ok"},
		{"extra argument", nil, []string{"x"}, 2, "Usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"healthcheck"}, tc.args...), nil, &out, &out,
				func(k string) string { return tc.env[k] })
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Errorf("exit %d, want %d; output %q lacks %q", code, tc.code, out.String(), tc.out)
			}
		})
	}
	up.Store(false)
	var out bytes.Buffer
	if code := run(context.Background(), []string{"healthcheck", "--url", plain.URL + "/healthz"}, nil, &out, &out, func(string) string { return "" }); code != 1 {
		t.Errorf("unhealthy hub: exit %d: %s", code, out.String())
	}
}
