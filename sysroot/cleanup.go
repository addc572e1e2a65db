package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/repo"
	"golang.org/x/sys/unix"
)

// CleanupResult says what a cleanup removed.
type CleanupResult struct {
	Removed []string // paths relative to the sysroot
	Pruned  *repo.PruneResult
}

// Cleanup removes everything the current boot configuration does not
// reference: deployments, kernel directories, the inactive loader.N and
// bootlinks, leftovers of interrupted operations, and (with prune)
// repository objects no deployment needs.
func (s *Sysroot) Cleanup(ctx context.Context, prune bool) (*CleanupResult, error) {
	unlock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.Load(); err != nil {
		return nil, err
	}
	return s.cleanup(ctx, prune)
}

func (s *Sysroot) cleanup(ctx context.Context, prune bool) (*CleanupResult, error) {
	res := &CleanupResult{}
	if err := s.cleanLeftovers(res); err != nil {
		return res, err
	}
	if !prune {
		return res, nil
	}
	if err := s.writeDeploymentRefs(); err != nil {
		return res, err
	}
	s.checkpoint("refs-written")
	pr, err := s.repo.Prune(ctx, repo.PruneOptions{RefsOnly: true, Depth: 0})
	if err != nil {
		return res, fmt.Errorf("cleanup: %w", err)
	}
	res.Pruned = pr
	return res, nil
}

// cleanLeftovers removes what the loaded configuration does not reference.
// It must only run with state loaded from the committed configuration
// (under the lock), so nothing it deletes can be in use.
func (s *Sysroot) cleanLeftovers(res *CleanupResult) error {
	// An unreadable entry's deployment is missing from the loaded list:
	// it must not be taken for a leftover.
	if err := s.checkReadable(); err != nil {
		return err
	}
	remove := func(rel string) error {
		p := s.abs(rel)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		setImmutable(p, false)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		res.Removed = append(res.Removed, rel)
		s.checkpoint("removed")
		return nil
	}
	bv, sub := s.BootVersion, s.SubBootVersion
	for _, rel := range []string{
		"boot/loader.tmp",
		fmt.Sprintf("boot/loader.%d", 1-bv),
		fmt.Sprintf("ostree/boot.%d", 1-bv),
		fmt.Sprintf("ostree/boot.%d.tmp", 1-bv),
		fmt.Sprintf("ostree/boot.%d.tmp", bv),
		fmt.Sprintf("ostree/boot.%d.0", 1-bv),
		fmt.Sprintf("ostree/boot.%d.1", 1-bv),
		fmt.Sprintf("ostree/boot.%d.%d", bv, 1-sub),
	} {
		if err := remove(rel); err != nil {
			return err
		}
	}
	if _, ok, _ := s.loader().CurrentVersion(); !ok {
		// Nothing is deployed yet: the bootlink of version 0 is stray too.
		for _, rel := range []string{"ostree/boot.0", "ostree/boot.0.0", "ostree/boot.0.1"} {
			if err := remove(rel); err != nil {
				return err
			}
		}
	}

	// The staged record is stale once its deployment is in the boot
	// configuration (a crash after finalize's swap) or gone.
	if rec, err := s.readStaged(); err != nil || rec != nil && s.Staged == nil {
		if err := s.removeStaged(); err != nil {
			return err
		}
	}

	keep := map[string]bool{}
	keepBoot := map[string]bool{}
	for _, d := range s.Deployments {
		keep[d.RelDir()] = true
		keepBoot[filepath.Join("boot", bootDirRel(d.OS, d.BootCsum))] = true
	}
	if s.Staged != nil {
		keep[s.Staged.RelDir()] = true
	}
	osnames, err := s.OSNames()
	if err != nil {
		return err
	}
	for _, osname := range osnames {
		depDir := filepath.Join("ostree/deploy", osname, "deploy")
		des, err := os.ReadDir(s.abs(depDir))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		for _, de := range des {
			rel := filepath.Join(depDir, de.Name())
			if keep[strings.TrimSuffix(rel, ".origin")] {
				continue
			}
			if err := remove(rel); err != nil {
				return err
			}
		}
	}
	des, err := os.ReadDir(s.abs("boot/ostree"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, de := range des {
		rel := filepath.Join("boot/ostree", de.Name())
		if keepBoot[rel] {
			continue
		}
		if err := remove(rel); err != nil {
			return err
		}
	}
	return nil
}

// writeDeploymentRefs points refs ostree/BV/SUB/INDEX at the commit of
// every deployment (the staged one too) and deletes other refs of that
// form, as libostree does, so that a refs-only prune keeps what is
// deployed. Other ostree/ refs (ostree/container/... of imported images)
// are not deployment refs and stay.
func (s *Sysroot) writeDeploymentRefs() error {
	want := map[string]bool{}
	list := s.Deployments
	if s.Staged != nil {
		list = append([]*Deployment{s.Staged}, list...)
	}
	for i, d := range list {
		name := fmt.Sprintf("ostree/%d/%d/%d", s.BootVersion, s.SubBootVersion, i)
		want[name] = true
		if cur, err := s.repo.ReadRef("", name); err == nil && cur == d.Commit {
			continue
		}
		if err := s.repo.SetRef("", name, d.Commit); err != nil {
			return fmt.Errorf("deployment ref %s: %w", name, err)
		}
	}
	refs, err := s.repo.ListRefs()
	if err != nil {
		return fmt.Errorf("deployment refs: %w", err)
	}
	for _, r := range refs {
		if r.Remote == "" && isDeploymentRef(r.Name) && !want[r.Name] {
			if err := s.repo.SetRef("", r.Name, [32]byte{}); err != nil {
				return fmt.Errorf("delete deployment ref %s: %w", r.Name, err)
			}
		}
	}
	return nil
}

// isDeploymentRef reports whether a ref is ostree/N/N/N.
func isDeploymentRef(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "ostree" {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// setImmutable sets or clears FS_IMMUTABLE_FL on a directory, where the
// file system supports it. libostree makes finished deployments immutable
// so that nothing but the updater removes them.
func setImmutable(path string, on bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return nil // not supported here
	}
	nflags := flags &^ fsImmutableFL
	if on {
		nflags = flags | fsImmutableFL
	}
	if nflags == flags {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(nflags)); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return fmt.Errorf("chattr %s: %w", path, err)
	}
	return nil
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h.
const fsImmutableFL = 0x10
