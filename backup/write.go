package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Source is one database to back up.
type Source struct {
	// Name is its directory in the backup (and in the data directory): one
	// path element.
	Name string
	// Checkpoint writes a consistent copy of the database into dir, which
	// does not exist yet. It may hard-link files into dir, which is why
	// Write's temporary directory should be on the database's file system.
	Checkpoint func(dir string) error
}

// Stats describes a backup that was written.
type Stats struct {
	Files int
	Bytes int64
	// Checkpointed is how long the checkpoints took (the instant of the
	// backup lies inside it); the rest of the time was streaming.
	Checkpointed time.Duration
}

// Write checkpoints the sources in order, each into a directory under a new
// temporary directory in tmp, and streams the checkpoints to w as a
// backup (see the package doc), the manifest last. The temporary
// directory is removed before Write returns, whatever happens. m's Node
// and Build are kept; Write fills in the rest. ctx is checked between
// files. On an error the stream is left without its manifest, so no
// reader takes it for a backup.
func Write(ctx context.Context, w io.Writer, tmp string, sources []Source, m Manifest) (Stats, error) {
	var st Stats
	dir, err := os.MkdirTemp(tmp, ".backup-")
	if err != nil {
		return st, fmt.Errorf("backup: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	m.Format, m.Created, m.Databases, m.Files = FormatVersion, time.Now().UTC(), nil, nil
	start := time.Now()
	for _, src := range sources {
		if !validElem(src.Name) || slices.Contains(m.Databases, src.Name) {
			return st, fmt.Errorf("backup: bad database name %q", src.Name)
		}
		if err := src.Checkpoint(filepath.Join(dir, src.Name)); err != nil {
			return st, fmt.Errorf("backup: checkpoint %s: %w", src.Name, err)
		}
		m.Databases = append(m.Databases, src.Name)
	}
	st.Checkpointed = time.Since(start)

	tw := tar.NewWriter(w)
	for _, db := range m.Databases {
		entries, err := os.ReadDir(filepath.Join(dir, db))
		if err != nil {
			return st, fmt.Errorf("backup: %w", err)
		}
		for _, e := range entries { // sorted by name
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if !e.Type().IsRegular() {
				return st, fmt.Errorf("backup: %s/%s in the checkpoint is not a regular file", db, e.Name())
			}
			f, err := writeFile(tw, filepath.Join(dir, db, e.Name()), db+"/"+e.Name(), m.Created)
			if err != nil {
				return st, err
			}
			m.Files = append(m.Files, f)
			st.Files++
			st.Bytes += f.Size
		}
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return st, fmt.Errorf("backup: manifest: %w", err)
	}
	body = append(body, '\n')
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: int64(len(body)), ModTime: m.Created}
	if err := tw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(body); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	return st, nil
}

// writeFile streams the file at p to tw under name and returns its entry.
// The size is taken from the open file, which a checkpoint no longer
// changes.
func writeFile(tw *tar.Writer, p, name string, mtime time.Time) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: fi.Size(), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), f)
	if err != nil {
		return File{}, fmt.Errorf("backup: %s: %w", name, err)
	}
	if n != fi.Size() {
		return File{}, fmt.Errorf("backup: %s changed while it was read", name)
	}
	return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// validElem reports whether s is one plain path element: letters,
// digits, '.', '_' and '-', not "." or "..", at most 255 bytes (Pebble's
// file names all are).
func validElem(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || s == ManifestName {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validPath reports whether p is DATABASE/FILE with two plain elements,
// and returns DATABASE.
func validPath(p string) (db string, ok bool) {
	db, file, found := strings.Cut(p, "/")
	return db, found && validElem(db) && validElem(file)
}

// errIncomplete marks a stream or directory that is not a whole backup.
var errIncomplete = errors.New("not a complete hubbub backup")
