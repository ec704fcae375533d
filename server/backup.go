package server

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hubbub/hubbub/backup"
)

// The embedded store's layout under --data: one Pebble database per
// directory. Backups use the same names.
const (
	dirLog      = "log"      // the event log (store/embedded)
	dirTasks    = "tasks"    // the task queue (tasks/embedded)
	dirWebSub   = "websub"   // webhook subscriptions (websub/pebblerecords)
	dirUpstream = "upstream" // the conduit's upstreams (upstream)
)

// backupStall is how long a backup download may stop reading before the
// hub gives up on it (and frees the checkpoint it holds on disk).
const backupStall = time.Minute

// backupGate lets one backup run at a time on a node: each holds a
// checkpoint on disk until its download ends.
type backupGate struct{ running atomic.Bool }

// checkpointer is a database that can copy itself consistently while it
// serves (the Pebble-backed stores).
type checkpointer interface{ Checkpoint(dir string) error }

// backupSources lists the databases of the embedded store, in the order
// they are checkpointed: the webhook records, upstreams and task queue
// first, the event log last. Each checkpoint is one instant of its
// database; the log's comes last, so every position the others hold (a
// webhook subscription's cursor) is at or behind the backed-up log: after
// a restore a webhook may be sent again what it had received after its
// checkpoint (at least once, as after a crash), never skip an event.
// ok is false in Redis mode.
func (s *Server) backupSources() (sources []backup.Source, ok bool) {
	if s.cfg.Store != "" {
		return nil, false
	}
	for _, db := range []struct {
		name string
		c    any
	}{{dirWebSub, s.webhooks.records}, {dirUpstream, s.webhooks.upStore}, {dirTasks, s.webhooks.queue}, {dirLog, s.store}} {
		c, ok := db.c.(checkpointer)
		if !ok {
			return nil, false
		}
		sources = append(sources, backup.Source{Name: db.name, Checkpoint: c.Checkpoint})
	}
	return sources, true
}

// apiBackup answers POST /api/backup (admin) with a backup of this node's
// embedded store as a tar stream (package backup), which `hubbub backup
// DIR` unpacks. The checkpoints are made in a temporary directory inside
// --data (same file system: table files are hard-linked, so they cost
// little space while they exist) and removed when the answer ends. 501 in
// Redis mode, 409 while another backup runs; a download that stops
// reading for backupStall is cut, and the stream then lacks its manifest,
// which the CLI refuses.
func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request) {
	sources, ok := s.backupSources()
	if !ok {
		http.Error(w, "this hub keeps its data in Redis (--store): back up Redis itself (RDB snapshots or AOF); hubbub backup is for the embedded store", http.StatusNotImplemented)
		return
	}
	if !s.backups.running.CompareAndSwap(false, true) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "a backup of this node is already running; try again when it has finished", http.StatusConflict)
		return
	}
	defer s.backups.running.Store(false)
	start := time.Now()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="hubbub-backup-%s-%s.tar"`,
		safeName(s.node), start.UTC().Format("20060102T150405Z")))
	out := &stallWriter{w: w, rc: http.NewResponseController(w)}
	st, err := backup.Write(r.Context(), out, s.cfg.Data, sources, backup.Manifest{Node: s.node, Build: s.build})
	if err != nil {
		s.log.Error("backup failed", "err", err, "client", s.access.ClientAddr(r), "sent_bytes", out.n)
		if out.n == 0 {
			w.Header().Del("Content-Disposition")
			http.Error(w, "backup failed: "+err.Error(), http.StatusInternalServerError)
		}
		// Else the stream ends without its manifest: the CLI says so.
		return
	}
	s.log.Info("backup written", "client", s.access.ClientAddr(r), "files", st.Files, "bytes", st.Bytes,
		"checkpoint", st.Checkpointed.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
}

// stallWriter gives each write to the client backupStall to complete.
type stallWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	n  int64
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(backupStall)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// safeName keeps letters, digits, '.', '_' and '-' of s for a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return r
		}
		return '_'
	}, s)
}

// removeStaleBackups deletes the temporary checkpoints a backup left in
// data when the process died during it. Call it only while this process
// holds the store's lock, so no other hub's backup is running there.
func removeStaleBackups(data string) error {
	stale, err := filepath.Glob(filepath.Join(data, ".backup-*"))
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing a stale backup checkpoint: %w", err)
		}
	}
	return nil
}
