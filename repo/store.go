package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// MaxMetadataSize bounds a metadata object read from anywhere (libostree
// uses the same 10 MiB cap for pulls).
const MaxMetadataSize = 10 << 20

// ErrObjectNotFound is wrapped when an object is absent.
var ErrObjectNotFound = errors.New("object not found")

// Content is an open content object: its header and a reader of its data.
type Content struct {
	Header *object.FileHeader
	Size   uint64
	io.ReadCloser
}

func (r *Repo) loosePath(c object.Checksum, t object.Type) string {
	return object.LoosePath(c, t, r.IsArchive())
}

// ObjectPath returns the absolute path of a loose object.
func (r *Repo) ObjectPath(c object.Checksum, t object.Type) string {
	return filepath.Join(r.path, "objects", r.loosePath(c, t))
}

// HasObject reports whether a loose object exists.
func (r *Repo) HasObject(c object.Checksum, t object.Type) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(r.objDirFD, r.loosePath(c, t), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return false, fmt.Errorf("stat object %s.%s: %w", c, t, err)
}

func notFound(c object.Checksum, t object.Type) error {
	return fmt.Errorf("%s.%s: %w", c, t, ErrObjectNotFound)
}

// ReadMeta returns the bytes of a metadata object, unverified.
func (r *Repo) ReadMeta(t object.Type, c object.Checksum) ([]byte, error) {
	f, err := os.Open(r.ObjectPath(c, t))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound(c, t)
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s.%s: %w", c, t, err)
	}
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("%s.%s: larger than %d bytes", c, t, MaxMetadataSize)
	}
	return b, nil
}

// LoadCommit reads and decodes a commit.
func (r *Repo) LoadCommit(c object.Checksum) (*object.Commit, error) {
	b, err := r.ReadMeta(object.TypeCommit, c)
	if err != nil {
		return nil, err
	}
	cm, err := object.UnmarshalCommit(b)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	return cm, nil
}

// LoadDirTree reads and decodes a dirtree.
func (r *Repo) LoadDirTree(c object.Checksum) (*object.DirTree, error) {
	b, err := r.ReadMeta(object.TypeDirTree, c)
	if err != nil {
		return nil, err
	}
	d, err := object.UnmarshalDirTree(b)
	if err != nil {
		return nil, fmt.Errorf("dirtree %s: %w", c, err)
	}
	return d, nil
}

// LoadDirMeta reads and decodes a dirmeta.
func (r *Repo) LoadDirMeta(c object.Checksum) (*object.DirMeta, error) {
	b, err := r.ReadMeta(object.TypeDirMeta, c)
	if err != nil {
		return nil, err
	}
	d, err := object.UnmarshalDirMeta(b)
	if err != nil {
		return nil, fmt.Errorf("dirmeta %s: %w", c, err)
	}
	return d, nil
}

// ReadCommitMeta returns a commit's detached metadata, or nil if it has none.
func (r *Repo) ReadCommitMeta(c object.Checksum) (object.Metadata, error) {
	b, err := r.ReadMeta(object.TypeCommitMeta, c)
	if errors.Is(err, ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := object.UnmarshalMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("commitmeta %s: %w", c, err)
	}
	return m, nil
}

// OpenContent opens a content object. For archive repositories the reader
// decompresses; in every mode it yields exactly Size bytes or an error.
func (r *Repo) OpenContent(c object.Checksum) (*Content, error) {
	p := r.ObjectPath(c, object.TypeFile)
	if r.IsArchive() {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, notFound(c, object.TypeFile)
			}
			return nil, err
		}
		fz, err := object.NewFilezReader(newBufReader(f))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s.filez: %w", c, err)
		}
		return &Content{Header: fz.Header, Size: fz.Size, ReadCloser: readCloser{fz, f}}, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, notFound(c, object.TypeFile)
		}
		return nil, err
	}
	h := &object.FileHeader{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	if r.mode == ModeBareUserOnly {
		h.UID, h.GID = 0, 0
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		h.SymlinkTarget = target
		if r.mode == ModeBare {
			if h.Xattrs, err = readXattrs(-1, p); err != nil {
				return nil, err
			}
		}
		return &Content{Header: h, ReadCloser: io.NopCloser(strings.NewReader(""))}, nil
	case unix.S_IFREG:
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		if r.mode == ModeBare {
			if h.Xattrs, err = readXattrs(int(f.Fd()), p); err != nil {
				f.Close()
				return nil, err
			}
		}
		return &Content{Header: h, Size: uint64(st.Size), ReadCloser: f}, nil
	}
	return nil, fmt.Errorf("%s.file: not a regular file or symlink (mode %#o)", c, st.Mode)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// IsPartial reports whether a commit is marked as possibly incomplete.
func (r *Repo) IsPartial(c object.Checksum) bool {
	_, err := os.Lstat(filepath.Join(r.path, "state", c.String()+".commitpartial"))
	return err == nil
}

// MarkPartial marks a commit as possibly incomplete (during a pull).
func (r *Repo) MarkPartial(c object.Checksum) error {
	if err := os.MkdirAll(filepath.Join(r.path, "state"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.path, "state", c.String()+".commitpartial"), nil, 0o644)
}

// ClearPartial removes a commit's partial marker.
func (r *Repo) ClearPartial(c object.Checksum) error {
	err := os.Remove(filepath.Join(r.path, "state", c.String()+".commitpartial"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// ListObjects calls fn for every loose object in the store.
func (r *Repo) ListObjects(fn func(object.Name) error) error {
	objdir := filepath.Join(r.path, "objects")
	prefixes, err := os.ReadDir(objdir)
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		if len(p.Name()) != 2 || !p.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(objdir, p.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			base, ext, ok := strings.Cut(e.Name(), ".")
			if !ok || len(base) != 62 {
				continue
			}
			c, err := object.ParseChecksum(p.Name() + base)
			if err != nil {
				continue
			}
			t, err := object.ParseType(ext)
			if err != nil {
				continue
			}
			if (ext == "filez") != r.IsArchive() && t == object.TypeFile {
				continue
			}
			if err := fn(object.Name{Checksum: c, Type: t}); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteObject removes a loose object.
func (r *Repo) DeleteObject(c object.Checksum, t object.Type) error {
	err := unix.Unlinkat(r.objDirFD, r.loosePath(c, t), 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s.%s: %w", c, t, err)
	}
	return nil
}
