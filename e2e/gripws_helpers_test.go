package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// gwsOriginMain runs the chat route (e2e/grip/routes/wschat.js) in an
// Express app as e2e/grip/origin.js does: serve-grip checks Grip-Sig with
// GRIP_SIG_KEY, the publisher publishes to GRIP_CONTROL_URI (hubbub's main
// listener, or pushpin's publish port).
const gwsOriginMain = `
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';
import wschat from './routes/wschat.js';
const serveGrip = new ServeGrip({ grip: { control_uri: process.env.GRIP_CONTROL_URI, verify_key: process.env.GRIP_SIG_KEY } });
const app = express();
app.use(serveGrip);
wschat(app, { serveGrip, publisher: serveGrip.getPublisher() });
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
`

// gwsStartOrigin starts the example origin on 127.0.0.1:port, publishing
// to controlURI, for the test's life.
func gwsStartOrigin(t *testing.T, port int, controlURI string) {
	t.Helper()
	dir, err := filepath.Abs("grip")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "--input-type=module", "-e", gwsOriginMain)
	cmd.Dir = dir
	cmd.Env = append(hubEnv(), fmt.Sprintf("PORT=%d", port), "GRIP_CONTROL_URI="+controlURI, "GRIP_SIG_KEY="+gwsKey)
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start the origin: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("origin output:\n%s", clipString(out.String(), 4000))
		}
	})
	gwsWaitPort(t, port, "the example origin", done)
}

// pushpinWS is Debian's pushpin running for a test.
type pushpinWS struct {
	addr       string // its HTTP/WebSocket listener, host:port
	publishURL string // its publishing API (control URI)
}

// startPushpinWS runs pushpin in a temporary directory, proxying every
// path to 127.0.0.1:originPort as WebSocket-over-HTTP, signing with key.
// Without pushpin it returns nil and the caller skips the comparison
// (loudly), unless HUBBUB_REQUIRE_PUSHPIN=1.
func startPushpinWS(t *testing.T, originPort int, key string) *pushpinWS {
	t.Helper()
	bin, err := exec.LookPath("pushpin")
	if err != nil {
		msg := "PUSHPIN COMPARISON NOT RUN: pushpin is not installed (apt-get install -y pushpin)"
		if os.Getenv("HUBBUB_REQUIRE_PUSHPIN") == "1" {
			t.Fatal(msg + " (HUBBUB_REQUIRE_PUSHPIN=1)")
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		t.Log(msg)
		return nil
	}
	dir := t.TempDir()
	// The runner's ipc sockets live in rundir; unix socket paths are
	// short, so rundir is a short path of its own.
	run, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(run) })
	httpPort, pubPort := gwsFreePort(t), gwsFreePort(t)
	zmq := []int{gwsFreePort(t), gwsFreePort(t), gwsFreePort(t)}
	conf := fmt.Sprintf(`[global]
include={libdir}/internal.conf
rundir=%s
ipc_prefix=pp-
port_offset=0
[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=%d
logdir=%s
log_level=2
client_buffer_size=8192
client_maxconn=1000
condure_bin=condure
zurl_bin=zurl
[proxy]
routesfile=routes
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
sig_iss=pushpin
sig_key=%s
updates_check=off
[handler]
push_in_spec=tcp://127.0.0.1:%d
push_in_sub_specs=tcp://127.0.0.1:%d
push_in_http_addr=127.0.0.1
push_in_http_port=%d
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=tcp://127.0.0.1:%d
message_rate=2500
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
`, run, httpPort, dir, key, zmq[0], zmq[1], pubPort, zmq[2])
	if err := os.WriteFile(filepath.Join(dir, "pushpin.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	route := fmt.Sprintf("* 127.0.0.1:%d,over_http", originPort)
	if err := os.WriteFile(filepath.Join(dir, "routes"), []byte(route+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config", filepath.Join(dir, "pushpin.conf"), "--merge-output")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // the runner stops its services
	cmd.WaitDelay = 10 * time.Second
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start pushpin: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("pushpin output:\n%s", clipString(out.String(), 6000))
		}
	})
	gwsWaitPort(t, httpPort, "pushpin", done)
	gwsWaitPort(t, pubPort, "pushpin's publish port", done)
	return &pushpinWS{addr: fmt.Sprintf("127.0.0.1:%d", httpPort), publishURL: fmt.Sprintf("http://127.0.0.1:%d", pubPort)}
}
