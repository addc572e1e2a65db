package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/osupdate/os-update/compose/treefs"
)

// withOverlay runs fn while merged is an overlay mount of lower (never
// written) and upper (receives every change). The mount exists only in a
// private mount namespace of one dedicated OS thread, which exits with
// fn: processes fn starts from that thread (bwrap) see it, nothing else
// does, and nothing is left mounted whatever happens.
//
// Scriptlets write through this overlay because the tree is a hardlink
// checkout of the host repository: a script appending to a base file in
// place would otherwise change the repository's object.
func withOverlay(lower, upper, work, merged string, fn func() error) error {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay: unusable directory name %q", p)
		}
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the Go runtime ends a locked thread when its
		// goroutine returns, and the namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("overlay: private mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("overlay: private mounts: %w", err)
			return
		}
		// metacopy off: a chmod must copy the data up too, or the upper
		// file would be empty; redirect_dir off: renaming a lower
		// directory copies it (EXDEV for rename(2) users) instead of
		// leaving a redirect we could not merge.
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off", lower, upper, work)
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			errc <- fmt.Errorf("overlay: mount: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// mergeUpper applies an overlay upper directory to the tree it covered:
// new and changed entries move into the tree, whiteouts delete, opaque
// directories replace. deletable says whether a path of the tree may be
// deleted; deleting another is an error naming who and the path.
func mergeUpper(upper, tree, who string, deletable func(rel string) bool) error {
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	return filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		dst := filepath.Join(tree, rel)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				return fmt.Errorf("%s created device node /%s", who, rel)
			}
			// Whiteout: the script deleted the path.
			if _, err := root.Lstat(rel); err != nil {
				return nil
			}
			if !deletable(rel) {
				return fmt.Errorf("%s deleted /%s, which belongs to the base", who, rel)
			}
			return root.RemoveAll(rel)
		case unix.S_IFDIR:
			opaque := false
			if v, err := getxattr(p, "trusted.overlay.opaque"); err == nil && v == "y" {
				opaque = true
			}
			tst, terr := root.Lstat(rel)
			if terr == nil && (opaque || tst.Mode&unix.S_IFMT != unix.S_IFDIR) {
				if !deletable(rel) {
					return fmt.Errorf("%s replaced /%s, which belongs to the base", who, rel)
				}
				if err := root.RemoveAll(rel); err != nil {
					return err
				}
				terr = os.ErrNotExist
			}
			if terr != nil {
				if err := root.Mkdir(rel, st.Mode&0o7777, int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
			}
			if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
			return unix.Chmod(dst, st.Mode&0o7777)
		case unix.S_IFREG, unix.S_IFLNK:
			if tst, err := root.Lstat(rel); err == nil && tst.Mode&unix.S_IFMT == unix.S_IFDIR {
				if !deletable(rel) {
					return fmt.Errorf("%s replaced directory /%s, which belongs to the base", who, rel)
				}
				if err := root.RemoveAll(rel); err != nil {
					return err
				}
			}
			// The parents were made real directories above (parents come
			// first in the walk), so dst cannot lead out of the tree.
			if err := os.Rename(p, dst); err != nil {
				return err
			}
			return stripOverlayXattrs(dst)
		default:
			return fmt.Errorf("%s created /%s, a fifo or socket, which a commit cannot hold", who, rel)
		}
	})
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// stripOverlayXattrs removes overlayfs' bookkeeping (trusted.overlay.*),
// which must not end up in a commit.
func stripOverlayXattrs(p string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(name, "trusted.overlay.") {
			if err := unix.Lremovexattr(p, name); err != nil {
				return err
			}
		}
	}
	return nil
}
