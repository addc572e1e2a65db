// Package repo is an OSTree-compatible content-addressed object store:
// repository modes and config, loose objects, transactions, refs, commit of
// a directory, checkout, traversal, fsck and prune.
//
// Guarantees: an object becomes visible under objects/ only after its bytes
// were verified against its checksum and made durable, by one rename; a ref
// moves only after every object it reaches is durable. Concurrent writers
// (threads or processes) each stage into their own directory under tmp/, so
// they never see each other's partial work; prune takes the repository lock
// exclusively and waits for writers.
package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo/keyfile"
	"golang.org/x/sys/unix"
)

// Mode is a repository mode (core.mode).
type Mode int

const (
	ModeBare Mode = iota
	ModeArchive
	ModeBareUser
	ModeBareUserOnly
)

func (m Mode) String() string {
	switch m {
	case ModeBare:
		return "bare"
	case ModeArchive:
		return "archive"
	case ModeBareUser:
		return "bare-user"
	case ModeBareUserOnly:
		return "bare-user-only"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// configString is what core.mode holds on disk; archive is written as
// archive-z2 like libostree does.
func (m Mode) configString() string {
	if m == ModeArchive {
		return "archive-z2"
	}
	return m.String()
}

// ParseMode parses a mode name as given on a command line or in a config.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "bare":
		return ModeBare, nil
	case "archive", "archive-z2":
		return ModeArchive, nil
	case "bare-user":
		return ModeBareUser, nil
	case "bare-user-only":
		return ModeBareUserOnly, nil
	}
	return 0, fmt.Errorf("unknown repository mode %q (want bare, archive, bare-user or bare-user-only)", s)
}

// Repo is an open repository.
type Repo struct {
	path     string
	mode     Mode
	config   *keyfile.File
	fsync    bool
	objDirFD int // open objects/ directory, for *at() calls
}

// Path returns the repository directory.
func (r *Repo) Path() string { return r.path }

// Mode returns the repository mode.
func (r *Repo) Mode() Mode { return r.mode }

// Config returns the parsed config file. Changes need WriteConfig.
func (r *Repo) Config() *keyfile.File { return r.config }

// IsArchive reports whether content is stored as .filez.
func (r *Repo) IsArchive() bool { return r.mode == ModeArchive }

// Init creates a repository at path (which may exist and be empty) and
// opens it. Like libostree, objects/ is created last: its presence is what
// marks a complete repository.
func Init(path string, mode Mode) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(path, "objects")); err == nil {
		return nil, fmt.Errorf("init %s: a repository already exists there", path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	cfg := keyfile.New()
	cfg.Set("core", "repo_version", "1")
	cfg.Set("core", "mode", mode.configString())
	if err := fsutil.WriteFileAtomic(filepath.Join(path, "config"), cfg.Bytes(), 0o644, true); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	for _, d := range []string{"tmp", "extensions", "state", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "objects"} {
		if err := os.Mkdir(filepath.Join(path, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("init %s: %w", path, err)
		}
	}
	return Open(path)
}

// Open opens an existing repository.
func Open(path string) (*Repo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(abs, "objects")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("open repository %s: no objects directory (not a repository?)", path)
	}
	data, err := os.ReadFile(filepath.Join(abs, "config"))
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	cfg, err := keyfile.ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: config: %w", path, err)
	}
	r := &Repo{path: abs, config: cfg, objDirFD: -1}
	if err := r.loadConfig(); err != nil {
		return nil, fmt.Errorf("open repository %s: config: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	fd, err := unix.Open(filepath.Join(abs, "objects"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: objects: %w", path, err)
	}
	r.objDirFD = fd
	return r, nil
}

// Close releases the repository's file descriptors.
func (r *Repo) Close() error {
	if r.objDirFD >= 0 {
		unix.Close(r.objDirFD)
		r.objDirFD = -1
	}
	return nil
}

func (r *Repo) loadConfig() error {
	v, ok := r.config.Get("core", "repo_version")
	if !ok {
		return fmt.Errorf("missing [core] repo_version")
	}
	if v != "1" {
		return fmt.Errorf("unsupported repo_version %q", v)
	}
	if a, _ := r.config.Bool("core", "archive", false); a {
		return fmt.Errorf("legacy key archive=true is not supported")
	}
	m, err := ParseMode(r.config.String("core", "mode", "bare"))
	if err != nil {
		return err
	}
	r.mode = m
	fsync, err := r.config.Bool("core", "fsync", true)
	if err != nil {
		return err
	}
	r.fsync = fsync
	return nil
}

// WriteConfig atomically replaces the config file with r.Config().
func (r *Repo) WriteConfig() error {
	if err := fsutil.WriteFileAtomic(filepath.Join(r.path, "config"), r.config.Bytes(), 0o644, r.fsync); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return r.loadConfig()
}

// SetFsync overrides core.fsync for this handle (tests and benchmarks).
func (r *Repo) SetFsync(on bool) { r.fsync = on }
