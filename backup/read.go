package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// maxManifest bounds the manifest read from a stream or a directory.
const maxManifest = 16 << 20

// Extract reads a backup stream from r into dir, which must be empty or
// not exist (it is created). Each file is written, hashed and synced as it
// arrives; the stream must end with a manifest that lists exactly the
// files received, with their sizes and hashes. On any error Extract
// removes what it wrote (and dir, if it created it), so a directory left
// behind is always a whole backup.
func Extract(r io.Reader, dir string) (m Manifest, err error) {
	created, err := prepareEmpty(dir)
	if err != nil {
		return Manifest{}, err
	}
	var written []string // top-level entries made in dir
	defer func() {
		if err == nil {
			return
		}
		if created {
			_ = os.RemoveAll(dir)
			return
		}
		for _, w := range written {
			_ = os.RemoveAll(filepath.Join(dir, w))
		}
	}()

	tr := tar.NewReader(r)
	var got []File
	seen := map[string]bool{}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("backup: reading the stream: %w", err)
		}
		if manifest != nil {
			return Manifest{}, fmt.Errorf("backup: %q after the manifest: %w", hdr.Name, errIncomplete)
		}
		if hdr.Typeflag != tar.TypeReg {
			return Manifest{}, fmt.Errorf("backup: %q is not a regular file (type %q)", hdr.Name, hdr.Typeflag)
		}
		if hdr.Name == ManifestName {
			if hdr.Size > maxManifest {
				return Manifest{}, fmt.Errorf("backup: manifest of %d bytes is too large", hdr.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return Manifest{}, fmt.Errorf("backup: reading the manifest: %w", err)
			}
			continue
		}
		db, ok := validPath(hdr.Name)
		if !ok {
			return Manifest{}, fmt.Errorf("backup: refusing the entry %q: not DATABASE/FILE", hdr.Name)
		}
		if seen[hdr.Name] {
			return Manifest{}, fmt.Errorf("backup: %q appears twice", hdr.Name)
		}
		seen[hdr.Name] = true
		if err := os.Mkdir(filepath.Join(dir, db), 0o700); err == nil {
			written = append(written, db)
		} else if !errors.Is(err, os.ErrExist) {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
		f, err := writeNew(filepath.Join(dir, filepath.FromSlash(hdr.Name)), tr)
		if err != nil {
			return Manifest{}, err
		}
		f.Path = hdr.Name
		got = append(got, f)
	}
	if manifest == nil {
		return Manifest{}, fmt.Errorf("backup: the stream ended without its manifest (the hub failed or the connection broke): %w", errIncomplete)
	}
	m, err = parseManifest(manifest)
	if err != nil {
		return Manifest{}, err
	}
	if !slices.Equal(got, m.Files) {
		return Manifest{}, fmt.Errorf("backup: the files received differ from the manifest's: %w", errIncomplete)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), manifest, 0o600); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	written = append(written, ManifestName)
	for _, db := range m.Databases {
		if err := syncDir(filepath.Join(dir, db)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Manifest{}, err
		}
	}
	return m, syncDir(dir)
}

// Verify checks that dir holds a whole backup: a manifest, and exactly the
// files it lists with their sizes and hashes. It returns the manifest.
func Verify(dir string) (Manifest, error) {
	body, err := readLimited(filepath.Join(dir, ManifestName))
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %s: %w (%w)", dir, err, errIncomplete)
	}
	m, err := parseManifest(body)
	if err != nil {
		return Manifest{}, err
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
		got, err := hashFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return Manifest{}, fmt.Errorf("backup: %w (%w)", err, errIncomplete)
		}
		if got.Size != f.Size || got.SHA256 != f.SHA256 {
			return Manifest{}, fmt.Errorf("backup: %s differs from the manifest (size %d, want %d; or its contents): %w", f.Path, got.Size, f.Size, errIncomplete)
		}
	}
	// Nothing unlisted: a backup directory is not a place for other files.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	for _, e := range entries {
		if e.Name() == ManifestName {
			continue
		}
		if !e.IsDir() || !slices.Contains(m.Databases, e.Name()) {
			return Manifest{}, fmt.Errorf("backup: %s/%s is not part of the backup", dir, e.Name())
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
		for _, s := range sub {
			if !listed[e.Name()+"/"+s.Name()] {
				return Manifest{}, fmt.Errorf("backup: %s/%s/%s is not part of the backup", dir, e.Name(), s.Name())
			}
		}
	}
	return m, nil
}

// CopyTo copies the files of the verified backup in src (m from Verify)
// into dst, an existing empty directory, checking each file's hash again
// as it is copied and syncing it. The manifest is not copied.
func CopyTo(src, dst string, m Manifest) error {
	for _, db := range m.Databases {
		if err := os.Mkdir(filepath.Join(dst, db), 0o700); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	for _, f := range m.Files {
		in, err := os.Open(filepath.Join(src, filepath.FromSlash(f.Path)))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		got, err := writeNew(filepath.Join(dst, filepath.FromSlash(f.Path)), in)
		_ = in.Close()
		if err != nil {
			return err
		}
		if got.Size != f.Size || got.SHA256 != f.SHA256 {
			return fmt.Errorf("backup: %s changed while it was copied: %w", f.Path, errIncomplete)
		}
	}
	for _, db := range m.Databases {
		if err := syncDir(filepath.Join(dst, db)); err != nil {
			return err
		}
	}
	return syncDir(dst)
}

// parseManifest decodes and checks a manifest.
func parseManifest(body []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("backup: manifest: %w", err)
	}
	if m.Format != FormatVersion {
		return Manifest{}, fmt.Errorf("backup: manifest format %d; this hubbub reads format %d", m.Format, FormatVersion)
	}
	for _, db := range m.Databases {
		if !validElem(db) {
			return Manifest{}, fmt.Errorf("backup: manifest: bad database name %q", db)
		}
	}
	for _, f := range m.Files {
		db, ok := validPath(f.Path)
		if !ok || !slices.Contains(m.Databases, db) || f.Size < 0 {
			return Manifest{}, fmt.Errorf("backup: manifest: bad file %q", f.Path)
		}
	}
	return m, nil
}

// prepareEmpty makes sure dir exists and is empty, and reports whether it
// created it.
func prepareEmpty(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("backup: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return false, fmt.Errorf("backup: %s is not empty; name a new or empty directory", dir)
	}
	return false, nil
}

// writeNew creates the file p (which must not exist), copies r into it,
// syncs it, and returns its size and hash.
func writeNew(p string, r io.Reader) (File, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, fmt.Errorf("backup: writing %s: %w", p, err)
	}
	return File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// hashFile returns the size and hash of the file at p.
func hashFile(p string) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, err
	}
	return File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// readLimited reads the file at p, refusing one over maxManifest bytes.
func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%s is over %d bytes", p, maxManifest)
	}
	return b, nil
}

// syncDir syncs a directory, so the names in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}
