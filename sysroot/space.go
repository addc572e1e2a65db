package sysroot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// deploySpace is what a deployment of the plan's commit writes: one block
// per directory and the file bytes of what is copied rather than
// hardlinked (/etc always; every file when the repository cannot be
// hardlinked from), and the kernel files when /boot is another file
// system.
type deploySpace struct {
	root, boot uint64
}

// estimateDeploy walks the commit's tree once.
func (s *Sysroot) estimateDeploy(ctx context.Context, osname string, p *plan) (deploySpace, error) {
	sp, err := fsutil.StatSpace(s.abs("ostree/deploy"))
	if err != nil {
		return deploySpace{}, err
	}
	etc := "/usr/etc"
	if p.etcTop {
		etc = "/etc"
	}
	copyAll := s.repo.IsArchive()
	view := s.repo.ViewTree(repo.Tree{DirTree: p.cm.RootTree, DirMeta: p.cm.RootMeta})
	var need deploySpace
	size := func(c object.Checksum) (uint64, error) {
		if !copyAll {
			var st unix.Stat_t
			if err := unix.Lstat(s.repo.ObjectPath(c, object.TypeFile), &st); err != nil {
				return 0, fmt.Errorf("content object %s: %w", c, err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				return 0, nil
			}
			return uint64(st.Size), nil
		}
		ct, err := s.repo.OpenContent(c)
		if err != nil {
			return 0, err
		}
		ct.Close()
		return ct.Size, nil
	}
	err = view.Walk("/", func(e repo.TreeEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir {
			need.root += sp.BlockSize
			if e.Path == etc || strings.HasPrefix(e.Path, etc+"/") {
				need.root += sp.BlockSize // the /etc copy
			}
			return nil
		}
		inEtc := strings.HasPrefix(e.Path, etc+"/")
		if !copyAll && !inEtc {
			return nil
		}
		n, err := size(e.File)
		if err != nil {
			return err
		}
		need.root += roundUp(n, sp.BlockSize)
		return nil
	})
	if err != nil {
		return deploySpace{}, err
	}
	// Kernel files are hardlinked into /boot unless it is another file
	// system (or the kernel directory is already there).
	bootDir := s.abs(filepath.Join("boot", bootDirRel(osname, p.kernel.BootCsum)))
	if _, err := os.Stat(bootDir); err != nil && !sameFS(s.abs("boot"), s.abs("ostree/deploy")) {
		for _, f := range p.kernel.bootFiles() {
			e, err := view.Lookup(filepath.Join(p.kernel.srcDir(), f[0]))
			if err != nil || e.IsDir {
				continue
			}
			n, err := size(e.File)
			if err != nil {
				return deploySpace{}, err
			}
			need.boot += roundUp(n, sp.BlockSize)
		}
	}
	return need, nil
}

func roundUp(n, bs uint64) uint64 {
	if bs == 0 {
		return n
	}
	return (n + bs - 1) / bs * bs
}

// sameFS reports whether two paths are on one file system.
func sameFS(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return true
	}
	return sa.Dev == sb.Dev
}

// checkDeploySpace refuses a deployment that does not fit, before
// anything is written: the deployment's file system must keep the
// repository's min-free-space reserve (the repository lives there too),
// /boot must hold the kernel files.
func (s *Sysroot) checkDeploySpace(ctx context.Context, osname string, p *plan) error {
	need, err := s.estimateDeploy(ctx, osname, p)
	if err != nil {
		return fmt.Errorf("deploy: estimate space: %w", err)
	}
	res, err := s.repo.MinFreeSpace()
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if err := fsutil.CheckSpace("deploy", s.abs("ostree/deploy"), need.root, res); err != nil {
		return err
	}
	if need.boot > 0 {
		if err := fsutil.CheckSpace("deploy: kernel", s.abs("boot"), need.boot, fsutil.Reserve{}); err != nil {
			return err
		}
	}
	return nil
}
