package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"
)

// waitExit waits up to d for the process to exit by itself and returns
// its exit code.
func (h *hubProc) waitExit(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(d):
		t.Fatalf("hubbub did not exit within %v; stderr:\n%s", d, clipString(h.Stderr(), 8000))
	}
	var ee *exec.ExitError
	if errors.As(h.waitErr, &ee) {
		return ee.ExitCode()
	}
	if h.waitErr != nil {
		return -1
	}
	return 0
}

// The start-up log says where the hub is, where its data is and who may do
// what; a default hub on loopback has nothing to warn about, and a risky
// setting gets its warning (newcomer report 10).
func TestStartupLog(t *testing.T) {
	t.Parallel()
	h := startHub(t, "")
	h.waitLog(t, "who may administer", 10*time.Second)
	log := h.Stderr()
	abs, _ := filepath.Abs(h.DataDir)
	for _, want := range []string{
		"url=" + h.URL + "/",
		"dashboard=" + h.URL + "/",
		`msg="store: embedded`, "data=" + abs,
		`msg="who may publish: local clients only`,
		`msg="who may subscribe: anyone`,
		`msg="who may administer: local clients`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the start-up log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "level=WARN") {
		t.Errorf("a default hub on loopback warns:\n%s", log)
	}

	r := startHub(t, "", "--allow-private-callbacks", "--trusted-proxy", "0.0.0.0/0")
	r.waitLog(t, "trusts every address", 10*time.Second)
	if !strings.Contains(r.Stderr(), `level=WARN msg="--allow-private-callbacks is on`) {
		t.Errorf("no warning about --allow-private-callbacks:\n%s", r.Stderr())
	}
}

// A hub started before its Redis waits for it with backoff and a clear
// line, then starts; the persistence Redis reports is in the log. A hub
// waiting for a Redis that never comes stops at SIGTERM with a plain
// reason.
func TestWaitsForRedis(t *testing.T) {
	t.Parallel()
	port := redistest.FreePort(t)
	url := "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	h := launchHub(t, "", "--store", url, "--node-id", "late")
	h.waitLog(t, "waiting for Redis at "+url+"; retrying in 1s", 30*time.Second)
	redistest.Server(t, port, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	h.waitListening(t, 60*time.Second)
	h.publish(t, `{"topic":"late/1","data":1}`)
	if er, _ := h.getEvents(t, "topic=late/1"); len(er.Events) != 1 {
		t.Fatalf("retrieve after a late Redis: %d events", len(er.Events))
	}
	h.waitLog(t, "Redis persistence: append-only file, fsync always", 10*time.Second)
	if strings.Contains(h.Stderr(), "redis: connection pool") {
		t.Errorf("go-redis's own messages repeat the wait:\n%s", h.Stderr())
	}

	never := launchHub(t, "", "--store", "redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t))+"/0")
	never.waitLog(t, "waiting for Redis at", 30*time.Second)
	_ = never.cmd.Process.Signal(syscall.SIGTERM)
	if code := never.waitExit(t, 30*time.Second); code != 1 {
		t.Errorf("exit code %d after SIGTERM while waiting, want 1", code)
	}
	if !strings.Contains(never.Stderr(), "hubbub: stopped while waiting for Redis at") {
		t.Errorf("no reason given:\n%s", never.Stderr())
	}
}

// A second node with a live node's --node-id is refused with a clear
// error; after a crash (kill -9, the record stays until it expires) the
// same id starts again.
func TestDuplicateNodeID(t *testing.T) {
	t.Parallel()
	_, prefix := requireRedis(t)
	store := "redis://" + sharedRedis() + "/0"
	args := []string{"--store", store, "--redis-prefix", prefix, "--node-id", "twin"}
	a := startHub(t, "", args...)
	waitNodes(t, a, 1)

	b := launchHub(t, "", args...)
	if code := b.waitExit(t, 30*time.Second); code != 1 {
		t.Errorf("the second node exited with %d, want 1", code)
	}
	want := `node id "twin" is taken by a running node (address ` + strings.TrimPrefix(a.URL, "http://")
	if !strings.Contains(b.Stderr(), want) {
		t.Errorf("the second node's log lacks %q:\n%s", want, b.Stderr())
	}

	a.Kill()
	c := launchHub(t, "", args...)
	c.waitListening(t, 60*time.Second)
	if !strings.Contains(c.Stderr(), "waiting to see whether it is still alive") {
		t.Errorf("the restarted node did not look at the dead one's record:\n%s", c.Stderr())
	}
	waitNodes(t, c, 1)
}
