package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hubbub/hubbub/config"
)

const healthcheckUsage = `hubbub healthcheck [--ready] [--url URL] [--timeout D]

GETs /healthz (with --ready, /readyz: the store answers too) of the hub that
this environment configures, and exits 0 on 200, 1 otherwise. The address is
HUBBUB_LISTEN's (a wildcard host means loopback), over HTTPS when
HUBBUB_TLS_CERT is set, trusting exactly that certificate. Made for
container health checks, where the image has no curl.
`

// healthcheck runs "hubbub healthcheck".
func healthcheck(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub healthcheck", healthcheckUsage)
	stdout, getenv := e.stdout, e.getenv
	ready := f.Bool("ready", false, "check /readyz (the store answers) instead of /healthz")
	target := f.String("url", "", "URL to GET instead of the one derived from HUBBUB_LISTEN")
	timeout := f.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs(); err != nil {
		return err
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	client := &http.Client{Timeout: *timeout}
	u := *target
	if u == "" {
		listen := getenv("HUBBUB_LISTEN")
		if listen == "" {
			listen = config.Default().Listen
		}
		host, err := localAddr(listen)
		if err != nil {
			return err
		}
		u = "http://" + host + path
		if cert := getenv("HUBBUB_TLS_CERT"); cert != "" {
			tc, err := pinnedTLS(cert)
			if err != nil {
				return err
			}
			client.Transport = &http.Transport{TLSClientConfig: tc}
			u = "https://" + host + path
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", u, strings.TrimSpace(string(body)))
	return nil
}

// localAddr turns a listen address into one to dial on this host: a
// wildcard or empty host becomes loopback.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("healthcheck: HUBBUB_LISTEN=%q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("healthcheck: the hub listens on port 0 (any); name its address with --url")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// pinnedTLS trusts exactly the leaf certificate in the PEM file certFile,
// whatever name it carries: the check dials loopback, which no public
// certificate names.
func pinnedTLS(certFile string) (*tls.Config, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("healthcheck: %s holds no PEM certificate", certFile)
	}
	want := block.Bytes
	if _, err := x509.ParseCertificate(want); err != nil {
		return nil, fmt.Errorf("healthcheck: %s: %w", certFile, err)
	}
	return &tls.Config{
		// Verification is replaced, not skipped: the peer must present
		// exactly the configured certificate.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 || !bytes.Equal(rawCerts[0], want) {
				return errors.New("the hub presented another certificate than HUBBUB_TLS_CERT's")
			}
			return nil
		},
	}, nil
}
