package container

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

func stringVariant(s string) gvariant.Variant { return gvariant.NewVariant("s", s) }

// mnode is one path of a tree being changed by derived layers. Untouched
// directories keep their dirtree checksum and are expanded only when a
// layer reaches into them.
type mnode struct {
	dir      bool
	file     object.Checksum
	tree     object.Checksum // unexpanded or unchanged directory
	meta     object.Checksum
	newMeta  *object.DirMeta // set when a layer changed the directory entry
	children map[string]*mnode
	dirty    bool
	layer    int // the derived layer that last wrote this entry (0: base)
}

type mutableTree struct {
	r    *repo.Repo
	root *mnode
}

func newMutableTree(r *repo.Repo, commit object.Checksum) (*mutableTree, error) {
	cm, err := r.LoadCommit(commit)
	if err != nil {
		return nil, err
	}
	return &mutableTree{r: r, root: &mnode{dir: true, tree: cm.RootTree, meta: cm.RootMeta}}, nil
}

func (t *mutableTree) expand(n *mnode) error {
	if n.children != nil {
		return nil
	}
	n.children = map[string]*mnode{}
	if n.tree.IsZero() {
		return nil
	}
	dt, err := t.r.LoadDirTree(n.tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		n.children[f.Name] = &mnode{file: f.Checksum}
	}
	for _, d := range dt.Dirs {
		n.children[d.Name] = &mnode{dir: true, tree: d.Tree, meta: d.Meta}
	}
	return nil
}

var defaultDirMeta = object.DirMeta{Mode: object.ModeDir | 0o755}

// dirAt walks to the directory at parts, creating missing directories
// (root-owned, 0755) and marking the path dirty. A file or symlink on the
// way is an error: writing through a symlink could land anywhere.
func (t *mutableTree) dirAt(parts []string, layer int) (*mnode, error) {
	n := t.root
	n.dirty = true
	for i, p := range parts {
		if err := t.expand(n); err != nil {
			return nil, err
		}
		c := n.children[p]
		switch {
		case c == nil:
			dm := defaultDirMeta
			c = &mnode{dir: true, newMeta: &dm, children: map[string]*mnode{}, layer: layer}
			n.children[p] = c
		case !c.dir:
			return nil, fmt.Errorf("/%s is not a directory (a file or symlink): refusing to write beneath it", strings.Join(parts[:i+1], "/"))
		}
		c.dirty = true
		n = c
	}
	if err := t.expand(n); err != nil {
		return nil, err
	}
	return n, nil
}

func (t *mutableTree) lookupFile(parts []string) (object.Checksum, error) {
	n := t.root
	for i, p := range parts {
		if !n.dir {
			return object.Checksum{}, fmt.Errorf("/%s is not a directory", strings.Join(parts[:i], "/"))
		}
		if err := t.expand(n); err != nil {
			return object.Checksum{}, err
		}
		c := n.children[p]
		if c == nil {
			return object.Checksum{}, fmt.Errorf("/%s does not exist", strings.Join(parts[:i+1], "/"))
		}
		n = c
	}
	if n.dir {
		return object.Checksum{}, fmt.Errorf("/%s is a directory", strings.Join(parts, "/"))
	}
	return n.file, nil
}

// treePath maps a derived layer's entry name to the commit's path parts:
// /etc lives at /usr/etc in a commit. It returns nil for entries that
// never go into the commit (the embedded repository under /sysroot).
func treePath(name string) []string {
	if name == "" {
		return []string{}
	}
	parts := strings.Split(name, "/")
	switch parts[0] {
	case "sysroot":
		return nil
	case "etc":
		parts = append([]string{"usr"}, parts...)
	}
	return parts
}

// xattrsOf reads SCHILY.xattr.* PAX records, sorted by name.
func xattrsOf(h *tar.Header) []object.Xattr {
	var xs []object.Xattr
	for k, v := range h.PAXRecords {
		if n, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, object.Xattr{Name: append([]byte(n), 0), Value: []byte(v)})
		}
	}
	sort.Slice(xs, func(i, j int) bool { return string(xs[i].Name) < string(xs[j].Name) })
	return xs
}

// applyDerivedLayer applies one container layer (files, whiteouts,
// opaque directories) to t, writing new content into tx. Nothing is
// written to the file system outside the repository.
func applyDerivedLayer(ctx context.Context, tx *repo.Transaction, t *mutableTree, img v1.Image, desc v1.Descriptor, layer int) error {
	return readLayer(ctx, img, desc, func(h *tar.Header, r io.Reader) error {
		return t.apply(tx, h, r, layer)
	})
}

// runtimePlaceholders are files container runtimes bind-mount over during
// RUN and may leave behind empty in the layer.
var runtimePlaceholders = map[string]bool{
	"etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true, "run/.containerenv": true,
}

func (t *mutableTree) apply(tx *repo.Transaction, h *tar.Header, tr io.Reader, layer int) error {
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	parts := treePath(name)
	if parts == nil || len(parts) == 0 {
		return nil // the repository under /sysroot, or the root itself
	}
	fail := func(err error) error { return fmt.Errorf("entry %q: %w", h.Name, err) }
	base := parts[len(parts)-1]
	parent, err := t.dirAt(parts[:len(parts)-1], layer)
	if err != nil {
		return fail(err)
	}
	if base == ".wh..wh..opq" {
		// Opaque: what lower layers had here is gone; this layer's stays.
		for k, c := range parent.children {
			if c.layer != layer {
				delete(parent.children, k)
			}
		}
		return nil
	}
	if target, ok := strings.CutPrefix(base, ".wh."); ok {
		if target == "" || target == "." || target == ".." {
			return fail(fmt.Errorf("bad whiteout name"))
		}
		delete(parent.children, target)
		return nil
	}
	if strings.HasPrefix(base, ".wh.") {
		return nil
	}
	existing := parent.children[base]
	if existing == nil && h.Typeflag == tar.TypeReg && h.Size == 0 && runtimePlaceholders[name] {
		// An empty mount point a build tool (buildah, podman RUN) left
		// behind; the base never had it, so it is no change of the image.
		return nil
	}
	switch h.Typeflag {
	case tar.TypeDir:
		dm := &object.DirMeta{UID: uint32(h.Uid), GID: uint32(h.Gid), Mode: object.ModeDir | uint32(h.Mode)&0o7777, Xattrs: xattrsOf(h)}
		if existing != nil && existing.dir {
			existing.newMeta, existing.dirty, existing.layer = dm, true, layer
			return nil
		}
		parent.children[base] = &mnode{dir: true, newMeta: dm, children: map[string]*mnode{}, dirty: true, layer: layer}
		return nil
	case tar.TypeReg, tar.TypeSymlink:
		fh := &object.FileHeader{UID: uint32(h.Uid), GID: uint32(h.Gid), Xattrs: xattrsOf(h)}
		var data io.Reader
		var size uint64
		if h.Typeflag == tar.TypeReg {
			fh.Mode, data, size = object.ModeRegular|uint32(h.Mode)&0o7777, tr, uint64(h.Size)
		} else {
			fh.Mode, fh.SymlinkTarget = object.ModeSymlink|0o777, h.Linkname
		}
		if err := fh.Validate(); err != nil {
			return fail(err)
		}
		c, err := tx.WriteContent(fh, size, data, nil)
		if err != nil {
			return fail(err)
		}
		parent.children[base] = &mnode{file: c, layer: layer}
		return nil
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil {
			return fail(err)
		}
		tparts := treePath(target)
		if len(tparts) == 0 {
			return fail(fmt.Errorf("hardlink to %q outside the tree", h.Linkname))
		}
		c, err := t.lookupFile(tparts)
		if err != nil {
			return fail(fmt.Errorf("hardlink target: %w", err))
		}
		parent.children[base] = &mnode{file: c, layer: layer}
		return nil
	}
	return fail(fmt.Errorf("tar type %q (device, fifo, ...) cannot be stored in a commit", h.Typeflag))
}

// write stores the changed directories and returns the new root.
func (t *mutableTree) write(tx *repo.Transaction) (repo.Tree, error) {
	var write func(n *mnode) (object.Checksum, object.Checksum, error)
	write = func(n *mnode) (object.Checksum, object.Checksum, error) {
		meta := n.meta
		if n.newMeta != nil {
			b, err := n.newMeta.Marshal()
			if err != nil {
				return meta, meta, err
			}
			if meta, err = tx.WriteMeta(object.TypeDirMeta, b, nil); err != nil {
				return meta, meta, err
			}
		}
		if !n.dirty && n.children == nil {
			return n.tree, meta, nil
		}
		names := make([]string, 0, len(n.children))
		for k := range n.children {
			names = append(names, k)
		}
		sort.Strings(names)
		dt := &object.DirTree{}
		for _, k := range names {
			c := n.children[k]
			if !c.dir {
				dt.Files = append(dt.Files, object.DirTreeFile{Name: k, Checksum: c.file})
				continue
			}
			tree, m, err := write(c)
			if err != nil {
				return tree, m, err
			}
			dt.Dirs = append(dt.Dirs, object.DirTreeDir{Name: k, Tree: tree, Meta: m})
		}
		b, err := dt.Marshal()
		if err != nil {
			return meta, meta, err
		}
		tree, err := tx.WriteMeta(object.TypeDirTree, b, nil)
		return tree, meta, err
	}
	tree, meta, err := write(t.root)
	return repo.Tree{DirTree: tree, DirMeta: meta}, err
}
