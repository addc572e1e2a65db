package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/osupdate/os-update/compose/postprocess"
	"github.com/osupdate/os-update/compose/treefs"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// RootfsOptions control CommitRootfs.
type RootfsOptions struct {
	Rootfs  string
	Repo    *repo.Repo
	Branch  string
	Subject string
	Version string // commit "version"; "" for none
	// Timestamp of the commit; zero uses SOURCE_DATE_EPOCH semantics of
	// the caller, or now.
	Timestamp time.Time
	Workers   int
	// InitramfsInit: see Options.InitramfsInit. InitramfsModules are
	// loaded by that initramfs (the treefile's initramfs-modules).
	InitramfsInit    string
	InitramfsModules []string
	Sign             func(r *repo.Repo, commit object.Checksum) error
	PostCommit       func(ctx context.Context, r *repo.Repo, ref string, parent, commit object.Checksum) error
}

// CommitRootfs applies the OSTree conventions to a copy of a root
// filesystem built by other tools and commits it. The source directory is
// not modified (the copy uses hard links where it can: postprocessing only
// renames, removes and creates entries, never writes into a file).
func CommitRootfs(ctx context.Context, opts RootfsOptions) (object.Checksum, *postprocess.Result, error) {
	var zero object.Checksum
	if err := repo.ValidateRef(opts.Branch); err != nil {
		return zero, nil, err
	}
	st, err := os.Stat(opts.Rootfs)
	if err != nil {
		return zero, nil, fmt.Errorf("rootfs: %w", err)
	}
	if !st.IsDir() {
		return zero, nil, fmt.Errorf("rootfs %s is not a directory", opts.Rootfs)
	}
	work, err := os.MkdirTemp(filepath.Join(opts.Repo.Path(), "tmp"), "compose-rootfs-")
	if err != nil {
		return zero, nil, err
	}
	defer os.RemoveAll(work)
	if err := copyTree(ctx, opts.Rootfs, work); err != nil {
		return zero, nil, fmt.Errorf("copy rootfs: %w", err)
	}
	root, err := treefs.Open(work)
	if err != nil {
		return zero, nil, err
	}
	pp, err := postprocess.Apply(root)
	root.Close()
	if err != nil {
		return zero, nil, fmt.Errorf("postprocess %s: %w", opts.Rootfs, err)
	}
	// A missing ref means the first commit of the branch.
	parent, err := opts.Repo.ReadRef("", opts.Branch)
	if errors.Is(err, repo.ErrRefNotFound) {
		parent = object.Checksum{}
	} else if err != nil {
		return zero, nil, err
	}
	meta := object.Metadata{}
	if opts.Version != "" {
		meta.Set(KeyVersion, gvariant.NewVariant("s", opts.Version))
	}
	if pp.KernelVersion != "" {
		commitmeta.SetBootable(&meta, pp.KernelVersion)
	}
	ts := opts.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	note, err := ensureModulesDep(work, pp.KernelVersion)
	if err != nil {
		return zero, pp, err
	}
	if note != "" {
		pp.Notes = append(pp.Notes, note)
	}
	note, err = ensureInitramfs(work, pp.KernelVersion, opts.InitramfsModules, opts.InitramfsInit)
	if err != nil {
		return zero, pp, err
	}
	if note != "" {
		pp.Notes = append(pp.Notes, note)
	}
	commit, err := commitTree(ctx, opts.Repo, work, repo.CommitOptions{
		Branch: opts.Branch, Parent: parent, Orphan: parent.IsZero(), Subject: opts.Subject,
		Timestamp: ts.UTC(), Metadata: meta, TreeOptions: repo.TreeOptions{Workers: opts.Workers},
	}, opts.Sign)
	if err != nil {
		return zero, pp, err
	}
	if opts.PostCommit != nil {
		if err := opts.PostCommit(ctx, opts.Repo, opts.Branch, parent, commit); err != nil {
			return commit, pp, fmt.Errorf("after commit %s: %w", commit, err)
		}
	}
	return commit, pp, nil
}

// copyTree mirrors src into the existing directory dst, hard-linking
// regular files when both are on one filesystem and copying otherwise;
// owners, modes and symlinks are kept.
func copyTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := info.Sys().(*syscall.Stat_t)
		switch {
		case info.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
			if err := os.Lchown(target, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
			return os.Lchown(target, int(sys.Uid), int(sys.Gid))
		case info.Mode().IsRegular():
			if err := os.Link(p, target); err == nil {
				return nil
			} else if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
				return err
			}
			return copyFile(p, target, info, sys)
		default:
			return nil // devices, fifos, sockets cannot be committed
		}
	})
}

func copyFile(src, dst string, info fs.FileInfo, sys *syscall.Stat_t) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
