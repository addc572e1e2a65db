package repo

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// readXattrs returns a file's extended attributes as libostree records
// them: names carry a trailing NUL, sorted with strcmp, and attributes with
// empty values dropped. With fd >= 0 the open file is read, else path
// (without following a final symlink).
func readXattrs(fd int, path string) ([]object.Xattr, error) {
	list := func(buf []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, buf)
		}
		return unix.Llistxattr(path, buf)
	}
	get := func(name string, buf []byte) (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, name, buf)
		}
		return unix.Lgetxattr(path, name, buf)
	}
	var names []byte
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := list(buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr %s: %w", path, err)
		}
		names = buf[:n]
		break
	}
	if len(names) == 0 {
		return nil, nil
	}
	var out []object.Xattr
	for _, n := range bytes.Split(bytes.TrimSuffix(names, []byte{0}), []byte{0}) {
		if len(n) == 0 {
			continue
		}
		name := string(n)
		var val []byte
		for size := 256; ; size *= 4 {
			buf := make([]byte, size)
			m, err := get(name, buf)
			if errors.Is(err, unix.ERANGE) && size < 1<<24 {
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				break // removed meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
			}
			val = buf[:m]
			break
		}
		if len(val) == 0 {
			continue
		}
		out = append(out, object.Xattr{Name: append([]byte(name), 0), Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Name, out[j].Name) < 0 })
	return out, nil
}

// applyXattrs sets xattrs on an open file (fd >= 0) or a path without
// following symlinks.
func applyXattrs(fd int, path string, xs []object.Xattr) error {
	for _, x := range xs {
		name := x.XattrName()
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, name, x.Value, 0)
		} else {
			err = unix.Lsetxattr(path, name, x.Value, 0)
		}
		if err != nil {
			return fmt.Errorf("setxattr %s %s: %w", path, name, err)
		}
	}
	return nil
}
