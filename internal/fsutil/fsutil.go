// Package fsutil holds the file-system primitives every persistent writer
// of the project shares: atomic replacement of a file and directory syncs.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data: it writes a temporary file in
// the same directory, syncs it (when sync is set), renames it over path and
// syncs the directory, so a reader or a crash sees the old file or the new
// one, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if sync {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir makes a directory's entries (creations, renames) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// SyncFS flushes the whole file system holding path (one syncfs call
// makes every earlier write on it durable).
func SyncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// Linux's FIFREEZE and FITHAW, _IOWR('X', 119/120, int) (not in x/sys).
const (
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

// FreezeThaw freezes the file system holding path and thaws it at once.
// Freezing writes out everything, the journal included, to its final
// place: boot loaders read the disk without replaying a journal, so after
// this they see what the kernel will see after a crash. A file system that
// cannot be frozen (tmpfs, overlayfs) or is frozen already returns an error
// the caller may ignore. Writers block for the few milliseconds in
// between; the caller must not be killed there (the file system would stay
// frozen until thawed), so use it only on a system's own /boot.
func FreezeThaw(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("freeze %s: %w", path, err)
	}
	defer unix.Close(fd)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fiFreeze, 0); e != 0 {
		return fmt.Errorf("freeze %s: %w", path, e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fiThaw, 0); e != 0 {
		return fmt.Errorf("thaw %s: %w", path, e)
	}
	return nil
}
