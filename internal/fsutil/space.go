package fsutil

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Space is what the file system holding a path has left.
type Space struct {
	Total      uint64 // size in bytes
	Free       uint64 // bytes this process may use
	FreeInodes uint64 // inodes this process may use
	BlockSize  uint64
}

// StatSpace reports the space of the file system holding path. As in
// libostree, root may use the blocks reserved for it (f_bfree), others
// only f_bavail.
func StatSpace(path string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bfree, ffree := st.Bavail, st.Ffree
	if os.Geteuid() == 0 {
		bfree = st.Bfree
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return Space{Total: st.Blocks * bs, Free: bfree * bs, FreeInodes: ffree, BlockSize: uint64(st.Bsize)}, nil
}

// Reserve is space that must stay free, and the setting that asks for it
// (e.g. "min-free-space-percent=3"), named in errors.
type Reserve struct {
	Bytes  uint64
	Option string
}

// NoSpaceError says an operation was refused before it wrote anything
// because the file system lacks the space it needs.
type NoSpaceError struct {
	Op      string // "pull", "deploy", ...
	Path    string // a path on the file system
	Need    uint64 // bytes the operation needs
	Free    uint64 // bytes free
	Reserve Reserve
}

func (e *NoSpaceError) Error() string {
	msg := fmt.Sprintf("%s: not enough free space on the file system of %s: %s needed, %s free",
		e.Op, e.Path, FormatBytes(e.Need), FormatBytes(e.Free))
	if e.Reserve.Bytes > 0 {
		msg += fmt.Sprintf(", of which %s must stay free (%s)", FormatBytes(e.Reserve.Bytes), e.Reserve.Option)
	}
	return msg
}

// CheckSpace fails with a *NoSpaceError unless need bytes fit on the file
// system holding path with res.Bytes still free afterwards. Call it
// before writing anything.
func CheckSpace(op, path string, need uint64, res Reserve) error {
	sp, err := StatSpace(path)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if sp.Free >= res.Bytes && sp.Free-res.Bytes >= need {
		return nil
	}
	return &NoSpaceError{Op: op, Path: path, Need: need, Free: sp.Free, Reserve: res}
}

// FormatBytes prints a byte count exactly, with a binary-unit rounding
// for readers: "52428800 bytes (50.0 MiB)".
func FormatBytes(n uint64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%d bytes (%.1f %s)", n, v, units[u])
}

// ExplainFull adds to an error caused by a full file system (ENOSPC: no
// blocks or no inodes left; EDQUOT) what the file system holding path has
// left, so that the message says which one ran out. Other errors are
// returned as they are.
func ExplainFull(op, path string, err error) error {
	if err == nil || !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EDQUOT) {
		return err
	}
	sp, serr := StatSpace(path)
	if serr != nil {
		return fmt.Errorf("%s: the file system of %s is full: %w", op, path, err)
	}
	return fmt.Errorf("%s: the file system of %s is full (%s and %d inodes free): %w",
		op, path, FormatBytes(sp.Free), sp.FreeInodes, err)
}
