package sysroot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/osupdate/os-update/repo"
	"golang.org/x/sys/unix"
)

// VerifyDeployment checks a deployment directory against its commit: every
// directory has the commit's ownership and mode, every file and symlink
// hashes to the commit's checksum (content, ownership, mode, xattrs), and
// there are no extra entries, except /etc at the top (the writable copy of
// /usr/etc, which is checked to exist).
func (s *Sysroot) VerifyDeployment(ctx context.Context, d *Deployment) error {
	cm, err := s.repo.LoadCommit(d.Commit)
	if err != nil {
		return fmt.Errorf("verify %s: %w", d.Name(), err)
	}
	dir := s.abs(d.RelDir())
	root := repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta}
	if err := s.verifyDir(ctx, root, dir, "/"); err != nil {
		return fmt.Errorf("verify %s: %w", d.Name(), err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "usr/etc")); err == nil {
		if fi, err := os.Lstat(filepath.Join(dir, "etc")); err != nil || !fi.IsDir() {
			return fmt.Errorf("verify %s: /etc is missing", d.Name())
		}
	}
	if _, err := os.Stat(s.abs(d.RelDir() + ".origin")); err != nil {
		return fmt.Errorf("verify %s: %w", d.Name(), err)
	}
	return nil
}

func (s *Sysroot) verifyDir(ctx context.Context, t repo.Tree, dir, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	meta, err := s.repo.LoadDirMeta(t.DirMeta)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != meta.UID || st.Gid != meta.GID || st.Mode&0o7777 != meta.Mode&0o7777 {
		return fmt.Errorf("%s: directory metadata differs from the commit (mode %o uid %d gid %d, want %o %d %d)",
			rel, st.Mode, st.Uid, st.Gid, meta.Mode, meta.UID, meta.GID)
	}
	dt, err := s.repo.LoadDirTree(t.DirTree)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range dt.Files {
		want[f.Name] = true
		p := filepath.Join(dir, f.Name)
		sum, err := repo.ChecksumFile(p, true)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(rel, f.Name), err)
		}
		if sum != f.Checksum {
			return fmt.Errorf("%s: content %s differs from the commit's %s", filepath.Join(rel, f.Name), sum, f.Checksum)
		}
	}
	for _, sub := range dt.Dirs {
		want[sub.Name] = true
		if err := s.verifyDir(ctx, repo.Tree{DirTree: sub.Tree, DirMeta: sub.Meta}, filepath.Join(dir, sub.Name), filepath.Join(rel, sub.Name)); err != nil {
			return err
		}
	}
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !want[n] && !(rel == "/" && n == "etc") {
			return fmt.Errorf("%s: unexpected entry not in the commit", filepath.Join(rel, n))
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}
