package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/osupdate/os-update/repo/object"
)

// TreeView reads one tree of the repository by path, as a checkout of it
// would look. Paths are slash-separated and relative to the tree's root
// ("/" and "" name the root itself); symlinks in the tree are never
// followed. Checkout, deploy, kernel discovery, compose, the daemon and
// the client all read trees through it.
type TreeView struct {
	r    *Repo
	root Tree
	load func(object.Checksum) (*object.DirTree, error)
}

// TreeEntry is one path of a tree: a directory (Tree is set) or a file
// or symlink (File is set).
type TreeEntry struct {
	Path  string // cleaned, starting with "/"
	IsDir bool
	Tree  Tree
	File  object.Checksum
}

// Name is the last element of the entry's path ("/" for the root).
func (e TreeEntry) Name() string { return path.Base(e.Path) }

// ViewTree returns a view of the tree named by its root objects.
func (r *Repo) ViewTree(t Tree) *TreeView { return &TreeView{r: r, root: t, load: r.LoadDirTree} }

// ViewTreeLoading is ViewTree reading dirtrees through load, which may
// bring missing ones in first (a pull fetching only the objects on the
// way to one path).
func (r *Repo) ViewTreeLoading(t Tree, load func(object.Checksum) (*object.DirTree, error)) *TreeView {
	return &TreeView{r: r, root: t, load: load}
}

// ViewCommit returns a view of a commit's root tree.
func (r *Repo) ViewCommit(c object.Checksum) (*TreeView, error) {
	cm, err := r.LoadCommit(c)
	if err != nil {
		return nil, err
	}
	return r.ViewTree(Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta}), nil
}

// Root is the entry of the tree's root directory.
func (v *TreeView) Root() TreeEntry { return TreeEntry{Path: "/", IsDir: true, Tree: v.root} }

// Lookup finds a path. A missing path, or one through a file, is an
// error wrapping fs.ErrNotExist.
func (v *TreeView) Lookup(p string) (TreeEntry, error) {
	clean := path.Clean("/" + p)
	cur := v.Root()
	if clean == "/" {
		return cur, nil
	}
	for _, part := range strings.Split(clean[1:], "/") {
		if !cur.IsDir {
			return TreeEntry{}, fmt.Errorf("%s: %w (%s is not a directory)", clean, fs.ErrNotExist, cur.Path)
		}
		dt, err := v.load(cur.Tree.DirTree)
		if err != nil {
			return TreeEntry{}, fmt.Errorf("%s: %w", cur.Path, err)
		}
		next, ok := child(dt, cur.Path, part)
		if !ok {
			return TreeEntry{}, fmt.Errorf("%s: %w", clean, fs.ErrNotExist)
		}
		cur = next
	}
	return cur, nil
}

// child finds name in a directory listing, directories first.
func child(dt *object.DirTree, dir, name string) (TreeEntry, bool) {
	for _, d := range dt.Dirs {
		if d.Name == name {
			return TreeEntry{Path: path.Join(dir, name), IsDir: true, Tree: Tree{DirTree: d.Tree, DirMeta: d.Meta}}, true
		}
	}
	for _, f := range dt.Files {
		if f.Name == name {
			return TreeEntry{Path: path.Join(dir, name), File: f.Checksum}, true
		}
	}
	return TreeEntry{}, false
}

// ReadDir lists a directory entry: its files and symlinks, then its
// subdirectories, each sorted by name as the dirtree stores them.
func (v *TreeView) ReadDir(e TreeEntry) ([]TreeEntry, error) {
	if !e.IsDir {
		return nil, fmt.Errorf("%s: not a directory", e.Path)
	}
	dt, err := v.load(e.Tree.DirTree)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	out := make([]TreeEntry, 0, len(dt.Files)+len(dt.Dirs))
	for _, f := range dt.Files {
		out = append(out, TreeEntry{Path: path.Join(e.Path, f.Name), File: f.Checksum})
	}
	for _, d := range dt.Dirs {
		out = append(out, TreeEntry{Path: path.Join(e.Path, d.Name), IsDir: true, Tree: Tree{DirTree: d.Tree, DirMeta: d.Meta}})
	}
	return out, nil
}

// Open opens the content object of a file entry.
func (v *TreeView) Open(e TreeEntry) (*Content, error) {
	if e.IsDir {
		return nil, fmt.Errorf("%s: is a directory", e.Path)
	}
	c, err := v.r.OpenContent(e.File)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	return c, nil
}

// IsRegular reports whether the path is a regular file (not a symlink or
// directory); a missing path is false without an error.
func (v *TreeView) IsRegular(p string) (bool, error) {
	e, err := v.Lookup(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || e.IsDir {
		return false, err
	}
	c, err := v.Open(e)
	if err != nil {
		return false, err
	}
	c.Close()
	return !c.Header.IsSymlink(), nil
}

// ReadFile reads the regular file at p; a symlink is an error (it is not
// followed), and so is a file larger than max bytes.
func (v *TreeView) ReadFile(p string, max int64) ([]byte, error) {
	e, err := v.Lookup(p)
	if err != nil {
		return nil, err
	}
	c, err := v.Open(e)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if c.Header.IsSymlink() {
		return nil, fmt.Errorf("%s: is a symlink", e.Path)
	}
	if int64(c.Size) > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", e.Path, c.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(c, max))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	return data, nil
}

// Walk calls fn for the entry at p and, if it is a directory, for every
// entry below it: depth first, a directory before its contents, files
// before subdirectories. fn returning fs.SkipDir for a directory skips
// its contents; any other error stops the walk and is returned.
func (v *TreeView) Walk(p string, fn func(TreeEntry) error) error {
	e, err := v.Lookup(p)
	if err != nil {
		return err
	}
	return v.walk(e, fn)
}

func (v *TreeView) walk(e TreeEntry, fn func(TreeEntry) error) error {
	if err := fn(e); err != nil {
		if errors.Is(err, fs.SkipDir) && e.IsDir {
			return nil
		}
		return err
	}
	if !e.IsDir {
		return nil
	}
	ents, err := v.ReadDir(e)
	if err != nil {
		return err
	}
	for _, c := range ents {
		if err := v.walk(c, fn); err != nil {
			return err
		}
	}
	return nil
}

// AddObjects adds to set every object of the tree below p: dirmeta,
// dirtree and content objects. A dirtree already in set is not walked
// again.
func (v *TreeView) AddObjects(p string, set Reachable) error {
	return v.Walk(p, func(e TreeEntry) error {
		if !e.IsDir {
			set.Add(object.Name{Checksum: e.File, Type: object.TypeFile})
			return nil
		}
		set.Add(object.Name{Checksum: e.Tree.DirMeta, Type: object.TypeDirMeta})
		if !set.Add(object.Name{Checksum: e.Tree.DirTree, Type: object.TypeDirTree}) {
			return fs.SkipDir
		}
		return nil
	})
}
