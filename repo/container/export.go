// Package container moves commits in and out of OCI images in the ostree
// container format of ostree-rs-ext ("tar export v1", chunked): each layer
// holds content objects under sysroot/ostree/repo/objects plus hardlinks
// to them at their checkout paths; the final layer holds the commit, its
// detached metadata, every dirtree and dirmeta and the directories.
package container

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

const (
	objectsDir = "sysroot/ostree/repo/objects"
	repoConfig = "[core]\nrepo_version=1\nmode=bare-split-xattrs\n"
)

// epoch is every tar entry's mtime: the image depends on the commit only.
var epoch = time.Unix(0, 0)

var xattrsType = gvariant.MustParseType("a(ayay)")

func objectPath(c object.Checksum, ext string) string {
	s := c.String()
	return objectsDir + "/" + s[:2] + "/" + s[2:] + "." + ext
}

// tarPath maps a tree path ("/usr/etc/x") to its tar name ("etc/x"): the
// format keeps /etc where container tools expect it.
func tarPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	if p == "usr/etc" || strings.HasPrefix(p, "usr/etc/") {
		return p[len("usr/"):]
	}
	return p
}

// layerWriter writes one layer's tar stream.
type layerWriter struct {
	r        *repo.Repo
	tw       *tar.Writer
	metas    map[object.Checksum]bool // dirtree/dirmeta written in this layer
	xattrs   map[string]bool
	contents map[object.Checksum]bool
}

func newLayerWriter(r *repo.Repo, w io.Writer) *layerWriter {
	return &layerWriter{r: r, tw: tar.NewWriter(w), metas: map[object.Checksum]bool{},
		xattrs: map[string]bool{}, contents: map[object.Checksum]bool{}}
}

func (lw *layerWriter) header(h *tar.Header) error {
	h.ModTime = epoch
	h.Format = tar.FormatPAX
	return lw.tw.WriteHeader(h)
}

func (lw *layerWriter) dir(name string, uid, gid, mode uint32) error {
	return lw.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Uid: int(uid), Gid: int(gid), Mode: int64(mode & 0o7777)})
}

func (lw *layerWriter) data(name string, b []byte) error {
	if err := lw.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
		return err
	}
	_, err := lw.tw.Write(b)
	return err
}

// repoStructure writes the directories of the embedded repository.
func (lw *layerWriter) repoStructure() error {
	for _, d := range []string{"sysroot", "sysroot/ostree", "sysroot/ostree/repo", objectsDir} {
		if err := lw.dir(d, 0, 0, 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := lw.dir(fmt.Sprintf("%s/%02x", objectsDir, i), 0, 0, 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"} {
		if err := lw.dir("sysroot/ostree/repo/"+d, 0, 0, 0o755); err != nil {
			return err
		}
	}
	return lw.data("sysroot/ostree/repo/config", []byte(repoConfig))
}

// content writes one content object (with its xattrs objects) and then a
// hardlink to it at each checkout path.
func (lw *layerWriter) content(c object.Checksum, paths []string) error {
	obj, err := lw.r.OpenContent(c)
	if err != nil {
		return fmt.Errorf("content %s: %w", c, err)
	}
	defer obj.Close()
	h := obj.Header
	objPath := objectPath(c, "file")
	if !lw.contents[c] {
		lw.contents[c] = true
		xb, err := gvariant.Marshal(xattrsType, xattrValues(h.Xattrs))
		if err != nil {
			return fmt.Errorf("content %s: xattrs: %w", c, err)
		}
		sum := sha256.Sum256(xb)
		xs := hex.EncodeToString(sum[:])
		xpath := objectsDir + "/" + xs[:2] + "/" + xs[2:] + ".file-xattrs"
		if !lw.xattrs[xs] {
			lw.xattrs[xs] = true
			if err := lw.data(xpath, xb); err != nil {
				return err
			}
		}
		if err := lw.header(&tar.Header{Typeflag: tar.TypeLink, Name: objectPath(c, "file-xattrs-link"), Linkname: xpath, Mode: 0o644}); err != nil {
			return err
		}
		th := &tar.Header{Name: objPath, Uid: int(h.UID), Gid: int(h.GID), Mode: int64(h.Mode & 0o7777)}
		if h.IsSymlink() {
			th.Typeflag, th.Linkname = tar.TypeSymlink, h.SymlinkTarget
			if err := lw.header(th); err != nil {
				return err
			}
		} else {
			th.Typeflag, th.Size = tar.TypeReg, int64(obj.Size)
			if err := lw.header(th); err != nil {
				return err
			}
			if _, err := io.Copy(lw.tw, obj); err != nil {
				return fmt.Errorf("content %s: %w", c, err)
			}
		}
	}
	for _, p := range paths {
		if p == "/sysroot" || strings.HasPrefix(p, "/sysroot/") {
			continue // the tar's sysroot is the embedded repository
		}
		th := &tar.Header{Name: tarPath(p), Uid: int(h.UID), Gid: int(h.GID), Mode: int64(h.Mode & 0o7777)}
		if !h.IsSymlink() && obj.Size == 0 {
			// Empty files stay plain files, as ostree-ext writes them.
			th.Typeflag = tar.TypeReg
		} else {
			th.Typeflag, th.Linkname = tar.TypeLink, objPath
		}
		if err := lw.header(th); err != nil {
			return err
		}
	}
	return nil
}

func xattrValues(xs []object.Xattr) []gvariant.Value {
	out := make([]gvariant.Value, len(xs))
	for i, x := range xs {
		out[i] = []gvariant.Value{x.Name, x.Value}
	}
	return out
}

func xattrsFromBytes(b []byte) ([]object.Xattr, error) {
	v, err := gvariant.Unmarshal(xattrsType, b)
	if err != nil {
		return nil, err
	}
	var out []object.Xattr
	for _, it := range v.([]gvariant.Value) {
		p := it.([]gvariant.Value)
		out = append(out, object.Xattr{Name: p[0].([]byte), Value: p[1].([]byte)})
	}
	return out, nil
}

// meta writes a metadata object once per layer.
func (lw *layerWriter) meta(t object.Type, c object.Checksum) error {
	if t != object.TypeCommit && lw.metas[c] {
		return nil
	}
	lw.metas[c] = true
	b, err := lw.r.ReadMeta(t, c)
	if err != nil {
		return err
	}
	return lw.data(objectPath(c, t.String()), b)
}

// structure writes the commit layer's metadata part: the root directory,
// the repository skeleton, commit, commitmeta, and every dirtree/dirmeta
// with a directory entry at its checkout path.
func (lw *layerWriter) structure(commit object.Checksum) error {
	cm, err := lw.r.LoadCommit(commit)
	if err != nil {
		return err
	}
	root, err := lw.r.LoadDirMeta(cm.RootMeta)
	if err != nil {
		return err
	}
	if err := lw.header(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Uid: int(root.UID), Gid: int(root.GID), Mode: int64(root.Mode & 0o7777)}); err != nil {
		return err
	}
	if err := lw.repoStructure(); err != nil {
		return err
	}
	if err := lw.meta(object.TypeCommit, commit); err != nil {
		return err
	}
	if ok, err := lw.r.HasObject(commit, object.TypeCommitMeta); err != nil {
		return err
	} else if ok {
		b, err := lw.r.ReadMeta(object.TypeCommitMeta, commit)
		if err != nil {
			return err
		}
		if err := lw.data(objectPath(commit, "commitmeta"), b); err != nil {
			return err
		}
	}
	if err := lw.meta(object.TypeDirMeta, cm.RootMeta); err != nil {
		return err
	}
	hasVarTmp := false
	var walk func(p string, tree object.Checksum) error
	walk = func(p string, tree object.Checksum) error {
		if err := lw.meta(object.TypeDirTree, tree); err != nil {
			return err
		}
		dt, err := lw.r.LoadDirTree(tree)
		if err != nil {
			return err
		}
		for _, d := range dt.Dirs {
			sub := path.Join(p, d.Name)
			if err := lw.meta(object.TypeDirMeta, d.Meta); err != nil {
				return err
			}
			if sub == "/var/tmp" {
				hasVarTmp = true
			}
			inSysroot := sub == "/sysroot" || strings.HasPrefix(sub, "/sysroot/")
			if !inSysroot {
				m, err := lw.r.LoadDirMeta(d.Meta)
				if err != nil {
					return err
				}
				if err := lw.dir(tarPath(sub), m.UID, m.GID, m.Mode); err != nil {
					return err
				}
			}
			if err := walk(sub, d.Tree); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/", cm.RootTree); err != nil {
		return err
	}
	if !hasVarTmp {
		// Container runtimes expect /var/tmp; ostree trees leave /var empty.
		return lw.dir("var/tmp", 0, 0, 0o1777)
	}
	return nil
}

func (lw *layerWriter) close() error { return lw.tw.Close() }
