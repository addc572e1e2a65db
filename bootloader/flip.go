package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osupdate/os-update/internal/fsutil"
)

// Loader is the /boot directory of a sysroot.
type Loader struct {
	BootDir string
	// NoSync skips fsync (tests only; never on a real system).
	NoSync bool
	// FlushJournal freezes and thaws /boot's file system before and after
	// the commit point (fsutil.FreezeThaw), as libostree does: a boot
	// loader reads the disk without replaying the journal, and after a
	// power cut it must find the configuration the kernel will find. Only
	// for a running system's own /boot (a frozen file system stops every
	// writer).
	FlushJournal bool
	// Checkpoint, if set, is called between steps (crash tests).
	Checkpoint func(step string)
}

func (l *Loader) checkpoint(step string) {
	if l.Checkpoint != nil {
		l.Checkpoint(step)
	}
}

// CurrentVersion returns the bootversion /boot/loader points to (0 or 1)
// and whether the symlink exists; without it, 0 is assumed as libostree
// does.
func (l *Loader) CurrentVersion() (int, bool, error) {
	target, err := os.Readlink(filepath.Join(l.BootDir, "loader"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s/loader: %w", l.BootDir, err)
	}
	switch target {
	case "loader.0":
		return 0, true, nil
	case "loader.1":
		return 1, true, nil
	}
	return 0, false, fmt.Errorf("%s/loader points to %q, want loader.0 or loader.1", l.BootDir, target)
}

// ReadEntries returns the entries of loader.<version>, sorted by their
// "version" key, highest (the default) first.
func (l *Loader) ReadEntries(version int) ([]*Entry, error) {
	dir := filepath.Join(l.BootDir, fmt.Sprintf("loader.%d", version), "entries")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read boot entries: %w", err)
	}
	var out []*Entry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".conf") || !de.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, fmt.Errorf("read boot entry: %w", err)
		}
		e, err := ParseEntry(de.Name(), data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if c := CompareVersions(out[i].Get("version"), out[j].Get("version")); c != 0 {
			return c > 0
		}
		return out[i].Name > out[j].Name
	})
	return out, nil
}

// Prepare writes a complete loader.<version> directory: the entries (in
// order, default first) and the backend's native files, every file and
// directory synced. Whatever was in that (inactive) directory is removed
// first. Nothing the current boot reads is touched.
func (l *Loader) Prepare(version int, entries []*Entry, be Backend) error {
	if cur, ok, err := l.CurrentVersion(); err != nil {
		return err
	} else if ok && cur == version {
		return fmt.Errorf("refusing to rewrite loader.%d: it is the current boot configuration", version)
	}
	// Every entry is checked before anything is written: a value that
	// would add a line is refused whoever built the entry.
	for _, e := range entries {
		if e.Name == "" || strings.ContainsRune(e.Name, '/') {
			return fmt.Errorf("boot entry has an invalid file name %q", e.Name)
		}
		if err := e.Validate(); err != nil {
			return err
		}
	}
	dir := filepath.Join(l.BootDir, fmt.Sprintf("loader.%d", version))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	l.checkpoint("loader-cleared")
	entDir := filepath.Join(dir, "entries")
	if err := os.MkdirAll(entDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", entDir, err)
	}
	for _, e := range entries {
		if e.Name == "" || strings.ContainsRune(e.Name, '/') {
			return fmt.Errorf("boot entry has an invalid file name %q", e.Name)
		}
		if err := l.writeFile(filepath.Join(entDir, e.Name), e.Bytes()); err != nil {
			return err
		}
		l.checkpoint("entry-written")
	}
	files, err := be.Configs(entries)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := l.writeFile(filepath.Join(dir, n), files[n]); err != nil {
			return err
		}
	}
	for _, d := range []string{entDir, dir, l.BootDir} {
		if err := l.syncDir(d); err != nil {
			return err
		}
	}
	l.checkpoint("loader-prepared")
	return nil
}

// Swap makes loader.<version> current: a temporary symlink is renamed over
// /boot/loader, then /boot is synced. The rename is the commit point of
// every deployment change.
func (l *Loader) Swap(version int) error {
	if _, err := os.Stat(filepath.Join(l.BootDir, fmt.Sprintf("loader.%d", version), "entries")); err != nil {
		return fmt.Errorf("swap to loader.%d: %w", version, err)
	}
	// /boot/boot -> . lets "/boot/..." paths work when /boot is a partition.
	bb := filepath.Join(l.BootDir, "boot")
	if _, err := os.Lstat(bb); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(".", bb); err != nil {
			return fmt.Errorf("create %s: %w", bb, err)
		}
	}
	tmp := filepath.Join(l.BootDir, "loader.tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("swap: %w", err)
	}
	if err := os.Symlink(fmt.Sprintf("loader.%d", version), tmp); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if !l.NoSync {
		// Everything written before (deployments, kernels, entries) must be
		// on disk before the rename can be.
		if err := fsutil.SyncFS(l.BootDir); err != nil {
			return err
		}
		l.flushJournal()
	}
	l.checkpoint("before-rename")
	if err := os.Rename(tmp, filepath.Join(l.BootDir, "loader")); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	l.checkpoint("after-rename")
	if err := l.syncDir(l.BootDir); err != nil {
		return err
	}
	if !l.NoSync {
		// Before cleanup removes the old configuration's files: until
		// this point a boot loader reading stale blocks finds the old
		// configuration complete, after it the new one.
		l.flushJournal()
	}
	return nil
}

// flushJournal is best effort: the swap is already durable for the
// kernel; a file system that cannot be frozen has no journal to flush or
// a boot loader that reads it through the kernel.
func (l *Loader) flushJournal() {
	if l.FlushJournal {
		_ = fsutil.FreezeThaw(l.BootDir)
	}
}

func (l *Loader) writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !l.NoSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (l *Loader) syncDir(dir string) error {
	if l.NoSync {
		return nil
	}
	return fsutil.SyncDir(dir)
}
