package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// CheckoutOptions controls Checkout.
type CheckoutOptions struct {
	// Union overwrites files that exist in the destination, and merges
	// into existing directories; otherwise the destination must not exist.
	Union bool
	// Subpath checks out only this path of the commit ("/usr/etc").
	Subpath string
	// UserMode does not change ownership and does not set xattrs.
	UserMode bool
	// Copy writes copies even where hardlinks to a bare repository's
	// objects would do (the result may then be modified freely).
	Copy    bool
	Workers int
}

// Checkout writes the tree of commit into dest. Every file is created
// relative to a directory file descriptor opened without following
// symlinks, so nothing is ever written outside dest, whatever symlinks the
// tree or an existing destination (with Union) contain.
func (r *Repo) Checkout(ctx context.Context, commit object.Checksum, dest string, opts CheckoutOptions) error {
	cm, err := r.LoadCommit(commit)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", commit, err)
	}
	if err := r.CheckoutTree(ctx, Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta}, dest, opts); err != nil {
		return fmt.Errorf("checkout %s: %w", commit, err)
	}
	return nil
}

// CheckoutTree is Checkout for a tree named by its root objects.
func (r *Repo) CheckoutTree(ctx context.Context, tree Tree, dest string, opts CheckoutOptions) error {
	if sub := path.Clean("/" + opts.Subpath); sub != "/" {
		e, err := r.ViewTree(tree).Lookup(sub)
		if err != nil {
			return fmt.Errorf("subpath %w", err)
		}
		if !e.IsDir {
			return r.checkoutSingleFile(e.File, dest, opts)
		}
		tree = e.Tree
	}
	meta, err := r.LoadDirMeta(tree.DirMeta)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dest, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) || !opts.Union {
			return fmt.Errorf("destination %s: %w", dest, err)
		}
	}
	fd, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dest, err)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	co := &checkouter{r: r, opts: opts, ctx: ctx, cancel: cancel, sem: make(chan struct{}, workers),
		euid: os.Geteuid(), dest: dest, metas: map[object.Checksum]*object.DirMeta{}}
	co.wg.Add(1)
	go co.dir(fd, "", tree.DirTree, meta)
	co.wg.Wait()
	if co.err != nil {
		return co.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Modes that would have locked us out of our own directories.
	for i := len(co.deferred) - 1; i >= 0; i-- {
		d := co.deferred[i]
		if err := os.Chmod(filepath.Join(dest, d.rel), os.FileMode(d.mode&0o777)); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) checkoutSingleFile(c object.Checksum, dest string, opts CheckoutOptions) error {
	dir, name := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dest, err)
	}
	defer unix.Close(fd)
	co := &checkouter{r: r, opts: opts, euid: os.Geteuid(), dest: dest}
	return co.file(fd, name, name, c)
}

type deferredMode struct {
	rel  string
	mode uint32
}

type checkouter struct {
	r      *Repo
	opts   CheckoutOptions
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	euid   int
	dest   string

	mu       sync.Mutex
	err      error
	deferred []deferredMode
	metas    map[object.Checksum]*object.DirMeta // most directories share a few
}

func (co *checkouter) dirMeta(c object.Checksum) (*object.DirMeta, error) {
	co.mu.Lock()
	m, ok := co.metas[c]
	co.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := co.r.LoadDirMeta(c)
	if err != nil {
		return nil, err
	}
	co.mu.Lock()
	co.metas[c] = m
	co.mu.Unlock()
	return m, nil
}

func (co *checkouter) fail(err error) {
	co.mu.Lock()
	if co.err == nil {
		co.err = err
		co.cancel()
	}
	co.mu.Unlock()
}

// dir fills the directory open at fd (which it closes) with tree, then
// applies meta to it. Subdirectories run concurrently.
func (co *checkouter) dir(fd int, rel string, tree object.Checksum, meta *object.DirMeta) {
	defer co.wg.Done()
	defer unix.Close(fd)
	co.sem <- struct{}{}
	defer func() { <-co.sem }()
	if co.ctx.Err() != nil {
		return
	}
	dt, err := co.r.LoadDirTree(tree)
	if err != nil {
		co.fail(fmt.Errorf("/%s: %w", rel, err))
		return
	}
	for _, f := range dt.Files {
		if co.ctx.Err() != nil {
			return
		}
		if err := co.file(fd, f.Name, path.Join(rel, f.Name), f.Checksum); err != nil {
			co.fail(err)
			return
		}
	}
	for _, d := range dt.Dirs {
		if co.ctx.Err() != nil {
			return
		}
		subRel := path.Join(rel, d.Name)
		m, err := co.dirMeta(d.Meta)
		if err != nil {
			co.fail(fmt.Errorf("/%s: %w", subRel, err))
			return
		}
		subfd, err := co.mkdir(fd, d.Name)
		if err != nil {
			co.fail(fmt.Errorf("/%s: %w", subRel, err))
			return
		}
		co.wg.Add(1)
		go co.dir(subfd, subRel, d.Tree, m)
	}
	if err := co.applyDirMeta(fd, rel, meta); err != nil {
		co.fail(fmt.Errorf("/%s: %w", rel, err))
	}
}

// mkdir creates (or, in union mode, reuses) a subdirectory and opens it.
func (co *checkouter) mkdir(fd int, name string) (int, error) {
	err := unix.Mkdirat(fd, name, 0o700)
	if errors.Is(err, unix.EEXIST) && co.opts.Union {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return -1, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// A file or symlink is in the way: replace it, never follow it.
			if err := unix.Unlinkat(fd, name, 0); err != nil {
				return -1, err
			}
			if err := unix.Mkdirat(fd, name, 0o700); err != nil {
				return -1, err
			}
		}
	} else if err != nil {
		return -1, err
	}
	return unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func (co *checkouter) applyDirMeta(fd int, rel string, m *object.DirMeta) error {
	if !co.opts.UserMode {
		if err := unix.Fchown(fd, int(m.UID), int(m.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := applyXattrs(fd, "", m.Xattrs); err != nil {
			return err
		}
	}
	mode := m.Mode & object.ModePermMask
	if co.euid != 0 && mode&0o700 != 0o700 {
		co.mu.Lock()
		co.deferred = append(co.deferred, deferredMode{rel: rel, mode: mode})
		co.mu.Unlock()
		mode |= 0o700
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// file creates one file or symlink at fd/name.
func (co *checkouter) file(fd int, name, rel string, c object.Checksum) error {
	err := co.createFile(fd, name, c)
	if errors.Is(err, unix.EEXIST) && co.opts.Union {
		if err = unix.Unlinkat(fd, name, 0); err == nil {
			err = co.createFile(fd, name, c)
		}
	}
	if err != nil {
		return fmt.Errorf("/%s (%s.file): %w", rel, c, err)
	}
	return nil
}

func (co *checkouter) createFile(fd int, name string, c object.Checksum) error {
	r := co.r
	if !r.IsArchive() && !co.opts.Copy && (r.mode == ModeBare && !co.opts.UserMode || r.mode == ModeBareUserOnly) {
		err := unix.Linkat(r.objDirFD, r.loosePath(c, object.TypeFile), fd, name, 0)
		if err == nil || !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) {
			if errors.Is(err, unix.ENOENT) {
				if ok, _ := r.HasObject(c, object.TypeFile); !ok {
					return ErrObjectNotFound
				}
			}
			return err
		}
	}
	content, err := r.OpenContent(c)
	if err != nil {
		return err
	}
	defer content.Close()
	h := content.Header
	if h.IsSymlink() {
		if err := unix.Symlinkat(h.SymlinkTarget, fd, name); err != nil {
			return err
		}
		if !co.opts.UserMode {
			if err := unix.Fchownat(fd, name, int(h.UID), int(h.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if len(h.Xattrs) > 0 {
				// There is no fd-relative lsetxattr; /proc/self/fd gives a
				// path that cannot be redirected by symlinks in dest.
				p := fmt.Sprintf("/proc/self/fd/%d/%s", fd, name)
				if err := applyXattrs(-1, p, h.Xattrs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	ffd, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(ffd), name)
	defer f.Close()
	n, err := io.Copy(f, content)
	if err != nil {
		return err
	}
	if uint64(n) != content.Size {
		return fmt.Errorf("object has %d bytes, header says %d: %w", n, content.Size, object.ErrSizeMismatch)
	}
	if !co.opts.UserMode {
		if err := unix.Fchown(ffd, int(h.UID), int(h.GID)); err != nil {
			return err
		}
		if err := applyXattrs(ffd, name, h.Xattrs); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(ffd, h.Mode&object.ModePermMask); err != nil {
		return err
	}
	return f.Close()
}
