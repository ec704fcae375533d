package embedded_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/embedded"
	"github.com/hubbub/hubbub/store/storetest"
)

func quiet() embedded.Option {
	return embedded.WithLogger(slog.New(slog.DiscardHandler))
}

// TestConformanceDisk runs the suite on the real file system.
func TestConformanceDisk(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, dir string, cfg store.Config) store.Log {
			s, err := embedded.Open(dir, cfg, quiet())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	})
}

// memFS keeps one crashable in-memory file system per directory, so a
// crash can replace it by its synced state.
type memFS struct {
	mu    sync.Mutex
	byDir map[string]*vfs.MemFS
	open  map[store.Log]string
}

func (m *memFS) openStore(t *testing.T, dir string, cfg store.Config) store.Log {
	m.mu.Lock()
	fs := m.byDir[dir]
	if fs == nil {
		fs = vfs.NewCrashableMem()
		m.byDir[dir] = fs
	}
	m.mu.Unlock()
	s, err := embedded.Open(dir, cfg, embedded.WithFS(fs), quiet())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	m.mu.Lock()
	m.open[s] = dir
	m.mu.Unlock()
	return s
}

// crash keeps only what was synced: the directory's file system becomes a
// crash clone, and the abandoned store is closed against the old one.
func (m *memFS) crash(t *testing.T, l store.Log) {
	m.mu.Lock()
	dir, ok := m.open[l]
	if !ok {
		m.mu.Unlock()
		t.Fatal("crash of a store this backend did not open")
	}
	m.byDir[dir] = m.byDir[dir].CrashClone(vfs.CrashCloneCfg{})
	m.mu.Unlock()
	_ = l.Close()
}

// TestConformanceCrash runs the suite on crashable in-memory file systems.
func TestConformanceCrash(t *testing.T) {
	m := &memFS{byDir: map[string]*vfs.MemFS{}, open: map[store.Log]string{}}
	storetest.Run(t, storetest.Backend{Open: m.openStore, Crash: m.crash})
}

// A second hubbub on the same directory is told plainly that the directory
// is in use, not "resource temporarily unavailable". The lock is held by a
// child process (this test binary, re-run as TestHoldLockHelper), as it is
// in real life; within one process Pebble answers differently.
func TestOpenTwiceSaysInUse(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldLockHelper$")
	cmd.Env = append(os.Environ(), "HUBBUB_HOLD_LOCK_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "holding") {
		t.Fatalf("helper did not take the lock: %q, %v", line, err)
	}
	_, err = embedded.Open(dir, store.Config{})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: %v, want an 'in use' error", err)
	}
}

// TestHoldLockHelper opens the store named by HUBBUB_HOLD_LOCK_DIR and holds
// it until its standard input closes; it does nothing in a normal run.
func TestHoldLockHelper(t *testing.T) {
	dir := os.Getenv("HUBBUB_HOLD_LOCK_DIR")
	if dir == "" {
		t.Skip("helper process for TestOpenTwiceSaysInUse")
	}
	s, err := embedded.Open(dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
