// Package treefs writes into a root filesystem tree being composed with
// chroot semantics: every path, and every symlink met on the way (even an
// absolute one), resolves inside the tree (openat2 RESOLVE_IN_ROOT), so
// package content can never write outside it.
package treefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is an open tree.
type Root struct {
	fd   int
	path string
}

// Open opens the directory at dir as a tree root.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tree %s: %w", dir, err)
	}
	return &Root{fd: fd, path: dir}, nil
}

// Path returns the tree's directory on the host.
func (r *Root) Path() string { return r.path }

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Clean validates a path inside the tree ("/usr/bin/x", "./usr/bin/x" or
// "usr/bin/x") and returns it relative ("usr/bin/x"); "" is the root. Any
// ".." component is refused: package content has no business with it.
func Clean(p string) (string, error) {
	s := p
	if s == "." || strings.HasPrefix(s, "./") {
		s = s[1:]
	}
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	for _, c := range strings.Split(s, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q escapes the tree", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains NUL", p)
	}
	return strings.TrimPrefix(path.Clean(s), "/"), nil // "/" becomes ""
}

func (r *Root) openIn(rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{
			Flags:   flags | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a concurrent rename raced the lookup; retry
		}
		return fd, err
	}
}

// dirFD opens directory rel, creating missing directories (mode 0755,
// owned by root) if create is set. The caller closes it.
func (r *Root) dirFD(rel string, create bool) (int, error) {
	fd, err := r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !create || err != unix.ENOENT {
		return fd, err
	}
	parent, base := path.Split(rel)
	pfd, err := r.dirFD(strings.TrimSuffix(parent, "/"), true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil && err != unix.EEXIST {
		return -1, err
	}
	return r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY)
}

func (r *Root) parent(rel string, create bool) (int, string, error) {
	if rel == "" {
		return -1, "", errors.New("the tree root itself")
	}
	dir, base := path.Split(rel)
	fd, err := r.dirFD(strings.TrimSuffix(dir, "/"), create)
	return fd, base, err
}

func wrap(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: "/" + rel, Err: err}
}

// removeNonDir unlinks a non-directory at base so it can be replaced, as
// rpm replaces files on install.
func removeNonDir(dfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	return unix.Unlinkat(dfd, base, 0)
}

// Mkdir creates directory p (and missing parents) and sets its mode and
// owner; an existing directory gets the new mode and owner.
func (r *Root) Mkdir(p string, mode uint32, uid, gid int) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	if rel == "" {
		return wrap("chmod", rel, unix.Fchmodat(r.fd, ".", mode&0o7777, 0))
	}
	pfd, base, err := r.parent(rel, true)
	if err != nil {
		return wrap("mkdir", rel, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			// rpm keeps a symlink where a package has a directory (e.g.
			// /bin -> usr/bin): the directory's content goes through it.
			return nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(pfd, base, 0); err != nil {
				return wrap("mkdir", rel, err)
			}
		}
	}
	if err := unix.Mkdirat(pfd, base, mode&0o7777); err != nil && err != unix.EEXIST {
		return wrap("mkdir", rel, err)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return wrap("chown", rel, err)
	}
	// chmod after chown: chown clears set-id bits.
	return wrap("chmod", rel, unix.Fchmodat(pfd, base, mode&0o7777, 0))
}

// WriteFile creates regular file p with the data from src, replacing any
// non-directory there, and sets mode and owner.
func (r *Root) WriteFile(p string, src io.Reader, mode uint32, uid, gid int) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	pfd, base, err := r.parent(rel, true)
	if err != nil {
		return wrap("create", rel, err)
	}
	defer unix.Close(pfd)
	if err := removeNonDir(pfd, base); err != nil {
		return wrap("create", rel, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return wrap("create", rel, err)
	}
	f := os.NewFile(uintptr(fd), r.path+"/"+rel)
	defer f.Close()
	if src != nil {
		if _, err := io.Copy(f, src); err != nil {
			return wrap("write", rel, err)
		}
	}
	if err := f.Chown(uid, gid); err != nil {
		return wrap("chown", rel, err)
	}
	if err := f.Chmod(os.FileMode(mode&0o777) | unixModeBits(mode)); err != nil {
		return wrap("chmod", rel, err)
	}
	return wrap("close", rel, f.Close())
}

func unixModeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// Symlink creates symlink p pointing at target, replacing a non-directory.
func (r *Root) Symlink(target, p string, uid, gid int) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	pfd, base, err := r.parent(rel, true)
	if err != nil {
		return wrap("symlink", rel, err)
	}
	defer unix.Close(pfd)
	if err := removeNonDir(pfd, base); err != nil {
		return wrap("symlink", rel, err)
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return wrap("symlink", rel, err)
	}
	return wrap("chown", rel, unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW))
}

// Link makes newp a hard link of oldp (neither followed if a symlink).
func (r *Root) Link(oldp, newp string) error {
	orel, err := Clean(oldp)
	if err != nil {
		return err
	}
	nrel, err := Clean(newp)
	if err != nil {
		return err
	}
	ofd, obase, err := r.parent(orel, false)
	if err != nil {
		return wrap("link", orel, err)
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(nrel, true)
	if err != nil {
		return wrap("link", nrel, err)
	}
	defer unix.Close(nfd)
	if err := removeNonDir(nfd, nbase); err != nil {
		return wrap("link", nrel, err)
	}
	return wrap("link", nrel, unix.Linkat(ofd, obase, nfd, nbase, 0))
}

// Open opens file p for reading, resolving symlinks inside the tree.
func (r *Root) Open(p string) (*os.File, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	fd, err := r.openIn(rel, unix.O_RDONLY)
	if err != nil {
		return nil, wrap("open", rel, err)
	}
	return os.NewFile(uintptr(fd), r.path+"/"+rel), nil
}

// OpenWrite opens existing regular file p for reading and writing in
// place (no symlink is followed for the last component).
func (r *Root) OpenWrite(p string) (*os.File, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	fd, err := r.openIn(rel, unix.O_RDWR|unix.O_NOFOLLOW)
	if err != nil {
		return nil, wrap("open", rel, err)
	}
	return os.NewFile(uintptr(fd), r.path+"/"+rel), nil
}

// ReadFile reads file p.
func (r *Root) ReadFile(p string) ([]byte, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Lstat stats p without following a final symlink.
func (r *Root) Lstat(p string) (*unix.Stat_t, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	if rel == "" {
		var st unix.Stat_t
		return &st, unix.Fstat(r.fd, &st)
	}
	pfd, base, err := r.parent(rel, false)
	if err != nil {
		return nil, wrap("lstat", rel, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, wrap("lstat", rel, err)
	}
	return &st, nil
}

// Remove deletes p (a file, symlink or empty directory); a missing p is
// not an error.
func (r *Root) Remove(p string) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	pfd, base, err := r.parent(rel, false)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return wrap("remove", rel, err)
	}
	defer unix.Close(pfd)
	err = unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	}
	if err == unix.ENOENT {
		return nil
	}
	return wrap("remove", rel, err)
}

// RemoveAll deletes p and everything below it, without following symlinks.
func (r *Root) RemoveAll(p string) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	if rel == "" {
		return errors.New("refusing to remove the tree root")
	}
	st, err := r.Lstat(rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		names, err := r.ReadDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := r.RemoveAll(rel + "/" + n); err != nil {
				return err
			}
		}
	}
	return r.Remove(rel)
}

// ReadDir lists the names in directory p (sorted).
func (r *Root) ReadDir(p string) ([]string, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	fd, err := r.openIn(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, wrap("readdir", rel, err)
	}
	f := os.NewFile(uintptr(fd), r.path+"/"+rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, wrap("readdir", rel, err)
	}
	sort.Strings(names)
	return names, nil
}

// Rename moves oldp to newp inside the tree.
func (r *Root) Rename(oldp, newp string) error {
	orel, err := Clean(oldp)
	if err != nil {
		return err
	}
	nrel, err := Clean(newp)
	if err != nil {
		return err
	}
	ofd, obase, err := r.parent(orel, false)
	if err != nil {
		return wrap("rename", orel, err)
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(nrel, true)
	if err != nil {
		return wrap("rename", nrel, err)
	}
	defer unix.Close(nfd)
	return wrap("rename", orel, unix.Renameat(ofd, obase, nfd, nbase))
}

// Readlink returns the target of symlink p.
func (r *Root) Readlink(p string) (string, error) {
	rel, err := Clean(p)
	if err != nil {
		return "", err
	}
	pfd, base, err := r.parent(rel, false)
	if err != nil {
		return "", wrap("readlink", rel, err)
	}
	defer unix.Close(pfd)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(pfd, base, buf)
	if err != nil {
		return "", wrap("readlink", rel, err)
	}
	return string(buf[:n]), nil
}
