package embedded_test

import (
	"log/slog"
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
