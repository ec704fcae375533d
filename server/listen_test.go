package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/config"
)

// testCert makes a self-signed certificate for 127.0.0.1 with the given
// serial and writes it and its key to certFile and keyFile. name pads the
// subject so that certificates of different serials differ in size too.
func testCert(t *testing.T, serial int64, name, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// syncLog is a concurrency-safe log sink.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a Server serving on loopback for a test.
type running struct {
	s          *Server
	addr       string // main listener
	adminAddr  string // "" without --admin-listen
	log        *syncLog
	serveDone  chan error
	stopServer context.CancelFunc
}

// startServer builds a Server from cfg (Data set to a temporary
// directory), and serves it on free loopback ports until the test ends.
// adjust runs after New and before Serve.
func startServer(t *testing.T, cfg config.Config, admin bool, adjust func(*Server)) *running {
	t.Helper()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	if admin {
		cfg.AdminListen = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lg := &syncLog{}
	s, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(lg, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{s: s, addr: ln.Addr().String(), log: lg, serveDone: make(chan error, 1)}
	var aln net.Listener
	if admin {
		if aln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		r.adminAddr = aln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stopServer = cancel
	go func() { r.serveDone <- s.Serve(ctx, ln, aln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.serveDone:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("serve did not return within 15s of shutdown")
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

func tlsFiles(t *testing.T) (cert, key string) {
	dir := t.TempDir()
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// readUntil reads lines from br until one contains want, failing when the
// stream ends first (the caller bounds it with a deadline).
func readUntil(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if strings.Contains(line, want) {
			return
		}
		if err != nil {
			t.Fatalf("stream ended before %q: %v", want, err)
		}
	}
}

// TestTLSServesSSEOverHTTP2AndWebSocketOverHTTP11: one TLS listener speaks
// HTTP/2 to a client that offers it (an SSE stream receives a published
// event, flushed through HTTP/2 frames) and HTTP/1.1 to the WebSocket
// upgrade.
func TestTLSServesSSEOverHTTP2AndWebSocketOverHTTP11(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	ca := testCert(t, 1, "hub", certFile, keyFile)
	cfg := config.Default()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	r := startServer(t, cfg, false, nil)
	base := "https://" + r.addr

	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(ca)}, ForceAttemptHTTP2: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events?topic=tls/h2", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("got %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	readUntil(t, br, "hubbub stream open") // the stream is live before we publish

	pub, err := h2.Post(base+"/publish", "application/json", strings.NewReader(`{"topic":"tls/h2","data":{"n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(pub.Body)
	pub.Body.Close()
	if pub.StatusCode != 200 || pub.ProtoMajor != 2 {
		t.Fatalf("publish over %s: %d %s", pub.Proto, pub.StatusCode, body)
	}
	readUntil(t, br, `"n":1`)

	// WebSocket on the same listener, over HTTP/1.1.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(ca), NextProtos: []string{"http/1.1"}}}}
	c, wsResp, err := websocket.Dial(ctx, "wss://"+r.addr+"/ws", &websocket.DialOptions{HTTPClient: h1})
	if err != nil {
		t.Fatalf("websocket over TLS: %v", err)
	}
	defer c.CloseNow()
	if wsResp.ProtoMajor != 1 {
		t.Fatalf("websocket upgrade over %s", wsResp.Proto)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","sub":"s","topic":"tls/h2"}`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"subscribed"`, `"n":2`} {
		if want == `"n":2` {
			if _, err := h2.Post(base+"/publish", "application/json", strings.NewReader(`{"topic":"tls/h2","data":{"n":2}}`)); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), want) {
			t.Fatalf("websocket: got %s (%v), want %s", msg, err, want)
		}
	}

	// Derived URLs use https: the topic's Link header names the hub.
	lr, err := h2.Head(base + "/topics/tls/h2")
	if err != nil {
		t.Fatal(err)
	}
	lr.Body.Close()
	if link := lr.Header.Get("Link"); !strings.Contains(link, "<https://"+r.addr+"/hub>") {
		t.Fatalf("Link %q does not name the https hub", link)
	}
}

// servedSerial does one TLS handshake with addr and returns the serial of
// the certificate served.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// waitSerial handshakes until the served serial is want, failing after a
// deadline. Each try is a new handshake, which is what re-checks the files.
func waitSerial(t *testing.T, addr string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := servedSerial(t, addr)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("served serial %d, want %d within 10s", got, want)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation: the deadline bounds it
	}
}

// TestTLSCertificateReload: new files are served without a restart; a bad
// new pair keeps the old certificate and logs an error; a good pair after
// it is served again.
func TestTLSCertificateReload(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	testCert(t, 1, "hub", certFile, keyFile)
	cfg := config.Default()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	r := startServer(t, cfg, false, func(s *Server) { s.certs.every = 0 }) // check the files at every handshake
	if got := servedSerial(t, r.addr); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	testCert(t, 2, "hub, second certificate", certFile, keyFile)
	waitSerial(t, r.addr, 2)

	if err := os.WriteFile(keyFile, []byte("-----BEGIN EC PRIVATE KEY-----\nbroken\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, r.addr); got != 2 {
		t.Fatalf("after a bad key the serial is %d, want the previous 2", got)
	}
	if !strings.Contains(r.log.String(), "TLS certificate not reloaded") {
		t.Fatalf("no error logged for the bad pair; log:\n%s", r.log.String())
	}

	testCert(t, 3, "hub, third certificate here", certFile, keyFile)
	waitSerial(t, r.addr, 3)
}

// TestCertReloaderChecksAtMostEvery counts file checks: handshakes within
// the interval do not stat the files.
func TestCertReloaderChecksAtMostEvery(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	testCert(t, 1, "hub", certFile, keyFile)
	c, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.every = time.Hour
	testCert(t, 2, "hub, second certificate", certFile, keyFile)
	for range 100 {
		cert, _ := c.GetCertificate(nil)
		if leaf, _ := x509.ParseCertificate(cert.Certificate[0]); leaf.SerialNumber.Int64() != 1 {
			t.Fatalf("reloaded within the interval")
		}
	}
	c.mu.Lock()
	c.checked = time.Time{} // the interval has passed
	c.mu.Unlock()
	cert, _ := c.GetCertificate(nil)
	if leaf, _ := x509.ParseCertificate(cert.Certificate[0]); leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("not reloaded after the interval")
	}
}

func TestTLSStartupErrors(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("missing files: %v", err)
	}
	testCert(t, 1, "hub", certFile, keyFile)
	other, otherKey := tlsFiles(t)
	testCert(t, 2, "other", other, otherKey)
	cfg.TLSKey = otherKey
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "load TLS certificate") {
		t.Fatalf("mismatched pair: %v", err)
	}
}
