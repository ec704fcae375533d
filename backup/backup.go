// Package backup moves a copy of the embedded store's databases between a
// running hub and a directory: the hub checkpoints each database and
// streams the checkpoints as one tar (Write); the CLI unpacks the stream
// into a directory (Extract); restore checks a directory (Verify) and
// copies it into a new data directory (CopyTo).
//
// # Format
//
// A backup is a tar of regular files, DATABASE/FILE, followed by
// ManifestName, a JSON Manifest listing every file with its size and
// SHA-256. The manifest comes last so it can carry the hashes of what was
// streamed; a stream without it is incomplete (the hub failed, or the
// connection broke) and is refused, and so is any file it does not list
// or lists differently. Unpacked, the directory holds the same files.
//
// Tar entries from the network are outside input: names must be local
// relative paths (no "..", no absolute path), of regular files only, each
// at most once; nothing is ever written outside the target directory.
package backup

import (
	"time"

	"github.com/hubbub/hubbub/internal/buildinfo"
)

// ManifestName is the manifest's file name, the last entry of the stream.
const ManifestName = "hubbub-backup.json"

// FormatVersion is the version of the layout written; readers refuse
// others.
const FormatVersion = 1

// Manifest describes one backup.
type Manifest struct {
	Format int `json:"format"`
	// Created is when the first checkpoint began.
	Created time.Time `json:"created"`
	// Node is the hub node that wrote it.
	Node string `json:"node"`
	// Build is the binary that wrote it.
	Build buildinfo.Info `json:"build"`
	// Databases are the databases in the order they were checkpointed.
	Databases []string `json:"databases"`
	// Files are every file of the backup but the manifest, in stream order.
	Files []File `json:"files"`
}

// File is one file of a backup.
type File struct {
	Path   string `json:"path"` // slash-separated, DATABASE/NAME
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Bytes is the total size of the files.
func (m Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}
