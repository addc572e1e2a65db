package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// CommitOptions controls CommitDir.
type CommitOptions struct {
	Branch    string          // ref to move to the new commit; "" for none
	Parent    object.Checksum // zero: the branch's current commit, unless Orphan
	Orphan    bool            // no parent even if the branch exists
	Subject   string
	Body      string
	Timestamp time.Time       // zero: now
	Metadata  object.Metadata // extra commit metadata, in this order
	// NoBindings leaves out ostree.ref-binding, which is otherwise added
	// for Branch like `ostree commit -b` does.
	NoBindings bool
	TreeOptions
}

// TreeOptions controls how a directory is read into objects.
type TreeOptions struct {
	OwnerUID, OwnerGID   *uint32 // override file ownership
	NoXattrs             bool
	CanonicalPermissions bool // uid/gid 0 and modes masked to 0755/0644 style
	Workers              int  // parallel hashing and writing; 0 = GOMAXPROCS
	// Filter, if set, may change a file's header or drop the entry (return
	// false); path is relative to the tree root, starting with "/".
	Filter func(path string, h *object.FileHeader) bool
}

// CommitDir writes the tree at dir and a commit for it, then moves the
// branch if one is given. It returns the commit checksum.
func (r *Repo) CommitDir(ctx context.Context, dir string, opts CommitOptions) (object.Checksum, error) {
	var c object.Checksum
	err := r.Update(ctx, func(tx *Transaction) error {
		root, err := tx.WriteDir(ctx, dir, opts.TreeOptions)
		if err != nil {
			return fmt.Errorf("commit %s: %w", dir, err)
		}
		if c, err = tx.WriteCommit(root, opts); err != nil {
			return err
		}
		if opts.Branch != "" {
			// The ref moves inside the transaction: a prune must never
			// see the new commit without it.
			return tx.SetRef("", opts.Branch, c)
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	return c, nil
}

// Tree names a written tree: its root dirtree and dirmeta.
type Tree struct {
	DirTree object.Checksum
	DirMeta object.Checksum
}

// WriteCommit writes a commit object for tree.
func (tx *Transaction) WriteCommit(tree Tree, opts CommitOptions) (object.Checksum, error) {
	r := tx.r
	cm := &object.Commit{
		Subject: opts.Subject, Body: opts.Body,
		RootTree: tree.DirTree, RootMeta: tree.DirMeta,
	}
	ts := opts.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	cm.Timestamp = uint64(ts.Unix())
	cm.Metadata = append(cm.Metadata, opts.Metadata...)
	if opts.Branch != "" {
		if err := ValidateRef(opts.Branch); err != nil {
			return object.Checksum{}, err
		}
		if !opts.NoBindings {
			if _, ok := cm.Metadata.Get("ostree.ref-binding"); !ok {
				cm.Metadata.Set("ostree.ref-binding", object.StringList([]string{opts.Branch}))
			}
		}
	}
	switch {
	case !opts.Parent.IsZero():
		cm.Parent = opts.Parent
	case opts.Branch != "" && !opts.Orphan:
		if c, err := r.ReadRef("", opts.Branch); err == nil {
			cm.Parent = c
		}
	}
	data, err := cm.Marshal()
	if err != nil {
		return object.Checksum{}, err
	}
	return tx.WriteMeta(object.TypeCommit, data, nil)
}

type treeNode struct {
	name     string
	path     string // relative, starting with "/"
	isDir    bool
	children []*treeNode
	meta     object.DirMeta
	// for files
	st     unix.Stat_t
	header *object.FileHeader
	sum    object.Checksum
	same   *treeNode // an earlier hardlink to the same inode
}

// WriteDir reads the directory tree at dir into objects and returns its
// root. File hashing and writing run in parallel.
func (tx *Transaction) WriteDir(ctx context.Context, dir string, opts TreeOptions) (Tree, error) {
	if tx.r.mode == ModeBareUserOnly {
		// As `ostree commit` does for this mode: only what it can store.
		opts.CanonicalPermissions, opts.NoXattrs = true, true
	}
	root := &treeNode{path: "/", isDir: true}
	var files []*treeNode
	if err := scanDir(ctx, dir, root, opts, &files); err != nil {
		return Tree{}, err
	}
	if err := tx.writeFiles(ctx, dir, files, opts); err != nil {
		return Tree{}, err
	}
	return tx.writeTreeNodes(root)
}

func adjustOwnership(uid, gid, mode *uint32, opts TreeOptions) {
	if opts.CanonicalPermissions {
		*uid, *gid = 0, 0
		*mode = *mode&object.ModeTypeMask | *mode&0o755
	}
	if opts.OwnerUID != nil {
		*uid = *opts.OwnerUID
	}
	if opts.OwnerGID != nil {
		*gid = *opts.OwnerGID
	}
}

// scanDir lists a directory tree without following symlinks, collecting
// the non-directory entries into files.
func scanDir(ctx context.Context, full string, n *treeNode, opts TreeOptions, files *[]*treeNode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", full, err)
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", full, err)
	}
	n.meta = object.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	adjustOwnership(&n.meta.UID, &n.meta.GID, &n.meta.Mode, opts)
	if !opts.NoXattrs {
		if n.meta.Xattrs, err = readXattrs(fd, full); err != nil {
			return err
		}
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", full, err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := object.ValidateName(name); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(full, name), err)
		}
		child := &treeNode{name: name, path: strings.TrimSuffix(n.path, "/") + "/" + name}
		if err := unix.Fstatat(fd, name, &child.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", filepath.Join(full, name), err)
		}
		switch child.st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			child.isDir = true
			if err := scanDir(ctx, filepath.Join(full, name), child, opts, files); err != nil {
				return err
			}
		case unix.S_IFREG, unix.S_IFLNK:
			*files = append(*files, child)
		default:
			return fmt.Errorf("%s: unsupported file type (mode %#o): only directories, regular files and symlinks can be committed", filepath.Join(full, name), child.st.Mode)
		}
		n.children = append(n.children, child)
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

// writeFiles hashes and stores every file, on opts.Workers goroutines.
func (tx *Transaction) writeFiles(ctx context.Context, root string, files []*treeNode, opts TreeOptions) error {
	// Hardlinked inputs are read once.
	seen := make(map[devIno]*treeNode, len(files))
	var unique []*treeNode
	for _, f := range files {
		if f.st.Nlink > 1 {
			k := devIno{f.st.Dev, f.st.Ino}
			if first, ok := seen[k]; ok {
				f.same = first
				continue
			}
			seen[k] = f
		}
		unique = append(unique, f)
	}
	reuse := tx.r.devInoIndex(unique, opts)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *treeNode)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 256<<10)
			for n := range jobs {
				if ctx.Err() != nil {
					continue
				}
				var err error
				if c, ok := reuse[devIno{n.st.Dev, n.st.Ino}]; ok {
					n.sum = c
					tx.filesReused.Add(1)
				} else {
					buf, err = tx.writeFile(filepath.Join(root, n.path), n, opts, buf)
					tx.filesRead.Add(1)
				}
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
	for _, n := range unique {
		if ctx.Err() != nil {
			break
		}
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, f := range files {
		if f.same != nil {
			f.sum, f.header = f.same.sum, f.same.header
		}
	}
	return nil
}

// smallFile is the size up to which a file is read whole, hashed, and
// written only if the object is missing.
const smallFile = 256 << 10

func (tx *Transaction) writeFile(full string, n *treeNode, opts TreeOptions, buf []byte) ([]byte, error) {
	h := &object.FileHeader{UID: n.st.Uid, GID: n.st.Gid, Mode: n.st.Mode}
	adjustOwnership(&h.UID, &h.GID, &h.Mode, opts)
	var err error
	if n.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if h.SymlinkTarget, err = os.Readlink(full); err != nil {
			return buf, err
		}
		if !opts.NoXattrs {
			if h.Xattrs, err = readXattrs(-1, full); err != nil {
				return buf, err
			}
		}
		if opts.Filter != nil && !opts.Filter(n.path, h) {
			return buf, nil
		}
		n.header = h
		n.sum, err = tx.WriteContent(h, 0, nil, nil)
		if err != nil {
			return buf, fmt.Errorf("%s: %w", full, err)
		}
		return buf, nil
	}
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, fmt.Errorf("open %s: %w", full, err)
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	if !opts.NoXattrs {
		if h.Xattrs, err = readXattrs(fd, full); err != nil {
			return buf, err
		}
	}
	if opts.Filter != nil && !opts.Filter(n.path, h) {
		return buf, nil
	}
	n.header = h
	size := uint64(n.st.Size)
	if size <= smallFile {
		buf = buf[:0]
		b := bytes.NewBuffer(buf)
		if _, err := b.ReadFrom(io.LimitReader(f, int64(size)+1)); err != nil {
			return buf, fmt.Errorf("read %s: %w", full, err)
		}
		buf = b.Bytes()
		if uint64(len(buf)) != size {
			return buf, fmt.Errorf("%s changed size while being committed", full)
		}
		sum, err := object.ContentChecksum(h, bytes.NewReader(buf))
		if err != nil {
			return buf, fmt.Errorf("%s: %w", full, err)
		}
		n.sum = sum
		if ok, err := tx.Has(object.Name{Checksum: sum, Type: object.TypeFile}); err != nil || ok {
			return buf, err
		}
		if _, err := tx.WriteContent(h, size, bytes.NewReader(buf), &sum); err != nil {
			return buf, fmt.Errorf("%s: %w", full, err)
		}
		return buf, nil
	}
	n.sum, err = tx.WriteContent(h, size, f, nil)
	if err != nil {
		if errors.Is(err, object.ErrSizeMismatch) {
			return buf, fmt.Errorf("%s changed size while being committed: %w", full, err)
		}
		return buf, fmt.Errorf("%s: %w", full, err)
	}
	return buf, nil
}

// writeTreeNodes writes dirtree and dirmeta objects bottom-up.
func (tx *Transaction) writeTreeNodes(n *treeNode) (Tree, error) {
	var dt object.DirTree
	for _, c := range n.children {
		if c.isDir {
			sub, err := tx.writeTreeNodes(c)
			if err != nil {
				return Tree{}, err
			}
			dt.Dirs = append(dt.Dirs, object.DirTreeDir{Name: c.name, Tree: sub.DirTree, Meta: sub.DirMeta})
		} else if !c.sum.IsZero() { // zero: dropped by the filter
			dt.Files = append(dt.Files, object.DirTreeFile{Name: c.name, Checksum: c.sum})
		}
	}
	treeBytes, err := dt.Marshal()
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %w", n.path, err)
	}
	metaBytes, err := n.meta.Marshal()
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %w", n.path, err)
	}
	var t Tree
	if t.DirTree, err = tx.WriteMeta(object.TypeDirTree, treeBytes, nil); err != nil {
		return t, err
	}
	if t.DirMeta, err = tx.WriteMeta(object.TypeDirMeta, metaBytes, nil); err != nil {
		return t, err
	}
	return t, nil
}

// devInoIndex maps the inodes of bare content objects to their checksums,
// for the inputs that live on the repository's filesystem: a tree checked
// out of this repository by hardlinks is committed without reading it.
func (r *Repo) devInoIndex(files []*treeNode, opts TreeOptions) map[devIno]object.Checksum {
	if r.mode != ModeBare || opts.OwnerUID != nil || opts.OwnerGID != nil || opts.CanonicalPermissions || opts.NoXattrs || opts.Filter != nil {
		return nil
	}
	var objSt unix.Stat_t
	if unix.Fstat(r.objDirFD, &objSt) != nil {
		return nil
	}
	want := map[uint64]bool{}
	for _, f := range files {
		if f.st.Dev == objSt.Dev && f.st.Nlink > 1 {
			want[f.st.Ino] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	idx := map[devIno]object.Checksum{}
	r.ListObjects(func(n object.Name) error {
		if n.Type != object.TypeFile {
			return nil
		}
		var st unix.Stat_t
		if unix.Fstatat(r.objDirFD, r.loosePath(n.Checksum, n.Type), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && want[st.Ino] {
			idx[devIno{st.Dev, st.Ino}] = n.Checksum
		}
		return nil
	})
	return idx
}
