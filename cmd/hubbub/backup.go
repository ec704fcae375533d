package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hubbub/hubbub/backup"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/server"
)

const backupUsage = `hubbub backup [--server URL] [--admin-key K] DIR

Asks the running hub (POST /api/backup, admin) for a consistent copy of its
embedded store, taken while it keeps serving, and writes it into DIR, which
must be new or empty. Every event acknowledged before the command started is
in it. The copy is checked (sizes and SHA-256 of every file) before the
command succeeds; a failed or interrupted backup leaves nothing in DIR.
Restore it with 'hubbub restore'. A hub on Redis (--store) has no such
backup: back up Redis itself.
`

// backupCmd runs "hubbub backup DIR".
func backupCmd(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub backup", backupUsage)
	base := serverFlag(f)
	key := f.String("admin-key", e.getenv("HUBBUB_ADMIN_KEY"), "admin key sent as a bearer token (env HUBBUB_ADMIN_KEY)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs("DIR"); err != nil {
		return err
	}
	stdout := e.stdout
	dir := f.args()[0]
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/api/backup", nil)
	if err != nil {
		return err
	}
	if *key != "" {
		req.Header.Set("Authorization", "Bearer "+*key)
	}
	req.Header.Set("Accept", "application/x-tar")
	// No overall timeout: a large store takes as long as it takes. The
	// hub answers once its checkpoints are made, and cuts a stalled
	// download itself.
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 5 * time.Minute,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("backup: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/x-tar" {
		return fmt.Errorf("backup: the server answered %q, not a backup (is %s a hubbub?)", resp.Header.Get("Content-Type"), *base)
	}
	m, err := backup.Extract(resp.Body, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of node %s (hubbub %s) written to %s: %d files, %s, in %s\n",
		m.Node, m.Build.Version, dir, len(m.Files), humanBytes(m.Bytes()), time.Since(start).Round(time.Millisecond))
	return nil
}

const restoreUsage = `hubbub restore [--data DIR] [--keep-epochs] BACKUP_DIR

Restores a backup made by 'hubbub backup' into a new data directory (--data,
default HUBBUB_DATA or ./hubbub-data), which must not exist or be empty: it
never overwrites a store. Run it with the hub stopped, then start the hub on
that directory. The backup is checked first, copied into a temporary
directory beside the target and renamed into place when complete.

Every topic gets a new epoch, so subscribers holding cursors from after the
backup get an "epoch" reset instead of silently missing events that reuse
those positions; webhook subscriptions keep their exact place.
--keep-epochs keeps the epochs: only for a backup that holds everything
ever published (publishers stopped before it was taken), when clients
should resume without any reset.
`

// restoreCmd runs "hubbub restore BACKUP_DIR".
func restoreCmd(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "hubbub restore", restoreUsage)
	stdout, stderr := e.stdout, e.stderr
	def := e.getenv("HUBBUB_DATA")
	if def == "" {
		def = config.Default().Data
	}
	data := f.String("data", def, "the data directory to create (env HUBBUB_DATA)")
	keep := f.Bool("keep-epochs", false, "keep the topics' epochs (see above)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.wantArgs("BACKUP_DIR"); err != nil {
		return err
	}
	src := f.args()[0]
	m, err := backup.Verify(src)
	if err != nil {
		return err
	}
	target, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	existed, err := checkEmptyTarget(target)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".restoring-")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := backup.CopyTo(src, tmp, m); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := server.PrepareRestored(ctx, tmp, *keep, logger)
	if err != nil {
		return err
	}
	if existed {
		if err := os.Remove(target); err != nil { // empty, checked above
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	epochs := fmt.Sprintf("%d topics given new epochs, %d webhook cursors moved to them", rep.Topics, rep.Subscriptions)
	if *keep {
		epochs = "epochs kept"
	}
	fmt.Fprintf(stdout, "restored the backup of node %s taken %s (%d files, %s) into %s; %s.\nStart the hub with --data %s.\n",
		m.Node, m.Created.Format(time.RFC3339), len(m.Files), humanBytes(m.Bytes()), target, epochs, target)
	return nil
}

// checkEmptyTarget refuses a data directory that holds anything, and
// reports whether it exists.
func checkEmptyTarget(dir string) (existed bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return true, fmt.Errorf("restore: %s is not empty: restore never overwrites a store; name a new directory with --data, or move this one away first", dir)
	}
	return true, nil
}

// humanBytes renders n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
