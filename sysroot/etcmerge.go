package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// EtcMergeReport lists what the three-way /etc merge carried over. Paths
// are relative to /etc.
type EtcMergeReport struct {
	Added, Modified, Removed []string
	Conflicts                []EtcConflict
}

// EtcConflict is a path that both the local administrator and the new
// defaults changed. The local version always wins; the conflict is
// reported so that someone can look at the new default in /usr/etc.
type EtcConflict struct {
	Path   string
	Reason string
}

type changeKind int

const (
	added changeKind = iota
	modified
	removed
)

// etcEntry is what the merge compares: type, ownership, permissions and,
// for files and symlinks, the content checksum. Extended attributes are
// ignored, as in libostree (SELinux labels differ between /etc and
// /usr/etc by design).
type etcEntry struct {
	typ      uint32
	uid, gid uint32
	mode     uint32
	sum      object.Checksum
}

func (a etcEntry) equal(b etcEntry) bool { return a == b }

type etcChange struct {
	path string
	kind changeKind
}

// etcDiff is the local change set of a deployment: its /etc against its
// /usr/etc.
type etcDiff struct {
	orig, mod map[string]etcEntry
	changes   []etcChange
}

// scanEtc records every entry under dir by relative path.
func scanEtc(dir string) (map[string]etcEntry, error) {
	out := map[string]etcEntry{}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := etcEntry{typ: st.Mode & unix.S_IFMT, uid: st.Uid, gid: st.Gid, mode: st.Mode & 0o7777}
		switch e.typ {
		case unix.S_IFDIR:
		case unix.S_IFREG, unix.S_IFLNK:
			if e.sum, err = repo.ChecksumFile(p, false); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type in /etc", p)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return out, nil
}

// diffEtc computes the local changes of the deployment at depDir.
func diffEtc(depDir string) (*etcDiff, error) {
	orig, err := scanEtc(filepath.Join(depDir, "usr/etc"))
	if err != nil {
		return nil, err
	}
	mod, err := scanEtc(filepath.Join(depDir, "etc"))
	if err != nil {
		return nil, err
	}
	d := &etcDiff{orig: orig, mod: mod}
	for p, m := range mod {
		o, ok := orig[p]
		switch {
		case !ok:
			d.changes = append(d.changes, etcChange{p, added})
		case !o.equal(m):
			d.changes = append(d.changes, etcChange{p, modified})
		}
	}
	for p := range orig {
		if _, ok := mod[p]; ok {
			continue
		}
		if parent := filepath.Dir(p); parent != "." {
			if _, inOrig := orig[parent]; inOrig {
				if _, inMod := mod[parent]; !inMod {
					continue // the parent's removal covers it
				}
			}
		}
		d.changes = append(d.changes, etcChange{p, removed})
	}
	// Parents before children.
	sort.Slice(d.changes, func(i, j int) bool { return d.changes[i].path < d.changes[j].path })
	return d, nil
}

// applyEtcMerge carries the changes of oldDep's /etc into newDep's /etc,
// which starts as a copy of newDep's /usr/etc.
func applyEtcMerge(d *etcDiff, oldDep, newDep string) (*EtcMergeReport, error) {
	newDefaults, err := scanEtc(filepath.Join(newDep, "usr/etc"))
	if err != nil {
		return nil, err
	}
	oldEtc, newEtc := filepath.Join(oldDep, "etc"), filepath.Join(newDep, "etc")
	if err := os.MkdirAll(newEtc, 0o755); err != nil {
		return nil, err
	}
	rep := &EtcMergeReport{}
	conflict := func(p, reason string) { rep.Conflicts = append(rep.Conflicts, EtcConflict{p, reason}) }
	for _, c := range d.changes {
		o, inOrig := d.orig[c.path]
		n, inNew := newDefaults[c.path]
		defaultsChanged := inOrig != inNew || inOrig && !o.equal(n)
		switch c.kind {
		case removed:
			rep.Removed = append(rep.Removed, c.path)
			if defaultsChanged && inNew {
				conflict(c.path, "removed locally, but the new version changed its default")
			}
			if err := os.RemoveAll(filepath.Join(newEtc, c.path)); err != nil {
				return nil, err
			}
		case added, modified:
			m := d.mod[c.path]
			if c.kind == added {
				rep.Added = append(rep.Added, c.path)
			} else {
				rep.Modified = append(rep.Modified, c.path)
			}
			if c.kind == modified && !inNew {
				conflict(c.path, "changed locally, and the new version no longer ships it")
			} else if defaultsChanged && inNew && !n.equal(m) {
				if c.kind == added {
					conflict(c.path, "added locally, and the new version adds a different default")
				} else {
					conflict(c.path, "changed locally, and the new version changed its default")
				}
			}
			if err := ensureParents(oldEtc, newEtc, c.path); err != nil {
				return nil, err
			}
			if err := copyEntry(filepath.Join(oldEtc, c.path), filepath.Join(newEtc, c.path), m); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

// ensureParents creates missing parent directories of rel in newEtc with
// the metadata of the old /etc's.
func ensureParents(oldEtc, newEtc, rel string) error {
	parts := strings.Split(filepath.Dir(rel), "/")
	cur := ""
	for _, p := range parts {
		if p == "." || p == "" {
			continue
		}
		cur = filepath.Join(cur, p)
		dst := filepath.Join(newEtc, cur)
		fi, err := os.Lstat(dst)
		if err == nil && fi.IsDir() {
			continue
		}
		if err == nil {
			// The new defaults have a file where the local tree has a
			// directory: the local tree wins.
			if err := os.Remove(dst); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(oldEtc, cur), &st); err != nil {
			return err
		}
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		if err := applyMeta(dst, etcEntry{typ: unix.S_IFDIR, uid: st.Uid, gid: st.Gid, mode: st.Mode & 0o7777}); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry makes dst a copy of src (a directory is created or kept, and
// only its metadata copied: its children are changes of their own).
func copyEntry(src, dst string, e etcEntry) error {
	fi, err := os.Lstat(dst)
	exists := err == nil
	if exists && (e.typ != unix.S_IFDIR || !fi.IsDir()) {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		exists = false
	}
	switch e.typ {
	case unix.S_IFDIR:
		if !exists {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
		if err := os.Lchown(dst, int(e.uid), int(e.gid)); err != nil {
			return err
		}
		return copyXattrs(src, dst)
	case unix.S_IFREG:
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return err
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	return applyMeta(dst, e)
}

func applyMeta(p string, e etcEntry) error {
	if err := os.Lchown(p, int(e.uid), int(e.gid)); err != nil {
		return err
	}
	return unix.Chmod(p, e.mode)
}

func copyXattrs(src, dst string) error {
	xs, err := repo.ReadXattrs(src)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Lsetxattr(dst, x.XattrName(), x.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setxattr %s %s: %w", dst, x.XattrName(), err)
		}
	}
	return nil
}

// copyTree copies the directory src to dst (which must not exist), with
// ownership, permissions and extended attributes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := etcEntry{typ: st.Mode & unix.S_IFMT, uid: st.Uid, gid: st.Gid, mode: st.Mode & 0o7777}
		if err := copyEntry(p, filepath.Join(dst, rel), e); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		return nil
	})
}
