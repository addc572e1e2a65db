package repo

import (
	"fmt"
	"os"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// FileHeaderOf returns the content-object header of the file at path
// (a final symlink is not followed), with its extended attributes when
// withXattrs is set, and its size. Only regular files and symlinks have one.
func FileHeaderOf(path string, withXattrs bool) (*object.FileHeader, int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	h := &object.FileHeader{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		t, err := os.Readlink(path)
		if err != nil {
			return nil, 0, err
		}
		h.SymlinkTarget = t
		st.Size = 0
	case unix.S_IFREG:
	default:
		return nil, 0, fmt.Errorf("%s: not a regular file or symlink", path)
	}
	if withXattrs {
		xs, err := readXattrs(-1, path)
		if err != nil {
			return nil, 0, err
		}
		h.Xattrs = xs
	}
	return h, st.Size, nil
}

// ChecksumFile computes the content checksum the file at path would have
// as an object (see FileHeaderOf).
func ChecksumFile(path string, withXattrs bool) (object.Checksum, error) {
	h, _, err := FileHeaderOf(path, withXattrs)
	if err != nil {
		return object.Checksum{}, err
	}
	if h.IsSymlink() {
		return object.ContentChecksum(h, nil)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return object.Checksum{}, err
	}
	defer f.Close()
	sum, err := object.ContentChecksum(h, f)
	if err != nil {
		return object.Checksum{}, fmt.Errorf("%s: %w", path, err)
	}
	return sum, nil
}

// ReadXattrs returns a file's extended attributes the way they are
// recorded in objects (see FileHeaderOf); a final symlink is not followed.
func ReadXattrs(path string) ([]object.Xattr, error) { return readXattrs(-1, path) }
