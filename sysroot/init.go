package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/osupdate/os-update/repo"
)

// InitFS creates an empty physical root at dir, as `ostree admin
// init-fs` does: the top-level directories and a bare repository in
// ostree/repo.
func InitFS(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init-fs %s: %w", dir, err)
	}
	dirs := []struct {
		name string
		mode os.FileMode
	}{
		{"boot", 0o755}, {"dev", 0o755}, {"home", 0o755}, {"proc", 0o755}, {"run", 0o755},
		{"sys", 0o755}, {"tmp", 0o1777}, {"root", 0o700}, {"ostree", 0o755}, {"ostree/deploy", 0o755},
	}
	for _, d := range dirs {
		p := filepath.Join(dir, d.name)
		if err := os.Mkdir(p, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("init-fs %s: %w", dir, err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("init-fs %s: %w", dir, err)
		}
	}
	rp := filepath.Join(dir, "ostree/repo")
	if _, err := os.Stat(filepath.Join(rp, "objects")); err == nil {
		return nil // already initialized, like ostree
	}
	r, err := repo.Init(rp, repo.ModeBare)
	if err != nil {
		return fmt.Errorf("init-fs %s: %w", dir, err)
	}
	return r.Close()
}

// InitOS creates the stateroot osname: its deploy directory and its
// shared /var with the few entries systemd expects before it runs.
func (s *Sysroot) InitOS(osname string) error {
	if err := ValidateOSName(osname); err != nil {
		return err
	}
	base := s.abs(filepath.Join("ostree/deploy", osname))
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"", 0o755}, {"deploy", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777}, {"var/lib", 0o755}, {"var/log", 0o755}} {
		p := filepath.Join(base, d.name)
		if err := os.Mkdir(p, d.mode); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return fmt.Errorf("os-init %s: %w", osname, err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("os-init %s: %w", osname, err)
		}
	}
	for name, target := range map[string]string{"var/run": "../run", "var/lock": "../run/lock"} {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("os-init %s: %w", osname, err)
		}
	}
	return nil
}
