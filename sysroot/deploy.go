package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/object"
)

// DeployOptions controls Deploy.
type DeployOptions struct {
	OS  string
	Rev string // ref or checksum in the sysroot's repository
	// Commit, if set, is deployed as is (Rev is then ignored): callers
	// that resolved the commit already need not turn it back into text.
	Commit object.Checksum
	// Kargs, if non-nil, replace the inherited arguments by key
	// (`--karg`); KargsAppend are appended (`--karg-append`).
	Kargs, KargsAppend []string
	// BaseKargs, if non-nil, replace the merge deployment's arguments as
	// the starting point (e.g. /proc/cmdline).
	BaseKargs bootloader.Kargs
	// Origin is written as the .origin file; nil means refspec=Rev (or
	// OriginRefspec) like ostree does for a ref.
	Origin        *keyfile.File
	OriginRefspec string
	// Stage writes everything but the boot configuration; Finalize
	// completes it.
	Stage bool
	// Retain keeps every existing deployment of the stateroot instead of
	// only the booted, merge and pinned ones.
	Retain bool
}

// DeployResult describes what Deploy did.
type DeployResult struct {
	Deployment *Deployment
	Etc        *EtcMergeReport
}

// plan is everything checked before anything is written.
type plan struct {
	commit object.Checksum
	cm     *object.Commit
	kernel *kernelLayout
	etcTop bool // the tree has /etc instead of /usr/etc
}

// preflight validates a commit for deployment without writing anything:
// it must have exactly one kernel and a readable /usr/etc (or /etc).
func (s *Sysroot) preflight(ctx context.Context, rev string, c object.Checksum) (*plan, error) {
	if c.IsZero() {
		var err error
		if c, err = s.repo.ResolveRev(rev); err != nil {
			return nil, fmt.Errorf("deploy %s: %w", rev, err)
		}
	} else {
		rev = c.String()
	}
	cm, err := s.repo.LoadCommit(c)
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w", rev, err)
	}
	if s.repo.IsPartial(c) {
		return nil, fmt.Errorf("deploy %s: commit %s is partial (not fully pulled)", rev, c)
	}
	view := s.repo.ViewTree(repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta})
	if _, err := view.ReadDir(view.Root()); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", rev, err)
	}
	p := &plan{commit: c, cm: cm}
	if p.kernel, err = findKernel(view); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", c, err)
	}
	usrEtc, err := hasDir(view, "usr/etc")
	if err != nil {
		return nil, fmt.Errorf("deploy %s: usr/etc is unreadable: %w", c, err)
	}
	topEtc, err := hasDir(view, "etc")
	if err != nil {
		return nil, fmt.Errorf("deploy %s: etc is unreadable: %w", c, err)
	}
	if usrEtc && topEtc {
		return nil, fmt.Errorf("deploy %s: the tree has both /etc and /usr/etc", c)
	}
	p.etcTop = !usrEtc && topEtc
	// Every object of the configuration defaults must be readable: the
	// /etc merge reads them all.
	etcPath := "/usr/etc"
	if p.etcTop {
		etcPath = "/etc"
	}
	if usrEtc || topEtc {
		if err := s.checkSubtree(ctx, view, etcPath); err != nil {
			return nil, fmt.Errorf("deploy %s: %s is unreadable: %w", c, etcPath, err)
		}
	}
	return p, nil
}

// hasDir reports whether the tree has a directory at p.
func hasDir(v *repo.TreeView, p string) (bool, error) {
	e, ok, err := lookupOptional(v, p)
	return ok && e.IsDir, err
}

// checkSubtree verifies that every object under a path of the tree is
// present and intact.
func (s *Sysroot) checkSubtree(ctx context.Context, v *repo.TreeView, path string) error {
	set := repo.Reachable{}
	if err := v.AddObjects(path, set); err != nil {
		return err
	}
	for n := range set {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.repo.VerifyObject(n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// Deploy checks out a commit as a new deployment of opts.OS and makes it
// the default (or stages it). The previous default (or the booted
// deployment) stays as the rollback target.
func (s *Sysroot) Deploy(ctx context.Context, opts DeployOptions) (res *DeployResult, err error) {
	// A write that ran out of blocks or inodes says which, and where;
	// what it wrote is removed (below), the boot configuration untouched.
	defer func() { err = fsutil.ExplainFull("deploy", s.abs("ostree/deploy"), err) }()
	if err := ValidateOSName(opts.OS); err != nil {
		return nil, err
	}
	// Kernel arguments are checked where they enter, before anything is
	// written: one with a newline would add lines to the boot entry.
	for _, args := range [][]string{opts.Kargs, opts.KargsAppend, opts.BaseKargs} {
		if err := bootloader.ValidateArgs(args); err != nil {
			return nil, fmt.Errorf("deploy: %w", err)
		}
	}
	if _, err := os.Stat(s.abs(filepath.Join("ostree/deploy", opts.OS, "var"))); err != nil {
		return nil, fmt.Errorf("deploy: stateroot %q is not initialized (run admin os-init): %w", opts.OS, err)
	}
	unlock, err := s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The repository lock is held shared from resolving the commit until
	// a deployment ref names it, so a concurrent prune (refs are its only
	// roots) cannot delete the commit in between. It is released before
	// the cleanup's own prune, which takes it exclusively.
	unlockRepo, err := s.repo.LockShared()
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	defer unlockRepo()
	if err := s.Load(); err != nil {
		return nil, err
	}
	p, err := s.preflight(ctx, opts.Rev, opts.Commit)
	if err != nil {
		return nil, err
	}
	// Refused before anything is written when the deployment would not
	// fit (or would eat into the repository's min-free-space reserve).
	if err := s.checkDeploySpace(ctx, opts.OS, p); err != nil {
		return nil, err
	}
	merge := s.MergeDeployment(opts.OS)
	var etcDiff *etcDiff
	if merge != nil && !opts.Stage {
		// Read the current /etc changes before writing anything.
		if etcDiff, err = diffEtc(s.abs(merge.RelDir())); err != nil {
			return nil, fmt.Errorf("deploy: merge deployment %s: %w", merge.Name(), err)
		}
	}
	kargs := bootloader.Kargs{}
	if opts.BaseKargs != nil {
		kargs = append(kargs, opts.BaseKargs...)
	} else if merge != nil {
		kargs = append(kargs, merge.Kargs...)
	}
	for _, k := range opts.Kargs {
		kargs = kargs.Replace(k)
	}
	for _, k := range opts.KargsAppend {
		kargs = kargs.Append(k)
	}
	origin := opts.Origin
	if origin == nil {
		origin = keyfile.New()
		spec := opts.OriginRefspec
		if spec == "" && opts.Commit.IsZero() {
			if _, perr := object.ParseChecksum(opts.Rev); perr != nil {
				spec = opts.Rev
			}
		}
		if spec != "" {
			origin.Set("origin", "refspec", spec)
		} else {
			origin.Set("origin", "refspec", p.commit.String())
		}
	}

	// Writing starts here. Leftovers of interrupted operations go first.
	if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
		return nil, err
	}
	if s.Staged != nil {
		// A new deployment replaces a staged one.
		if err := s.removeStaged(); err != nil {
			return nil, err
		}
	}
	d := &Deployment{OS: opts.OS, Commit: p.commit, Serial: s.allocSerial(opts.OS, p.commit),
		BootCsum: p.kernel.BootCsum, Kargs: kargs, Origin: origin, Version: p.cm.Version()}
	s.checkpoint("preflight-done")
	// Until the deployment is handed to the boot configuration (or the
	// staged record), nothing references it: a failure or a cancel
	// removes what was written, so no partial deployment stays behind.
	handedOff := false
	defer func() {
		if !handedOff {
			s.removeUnreferenced(d)
		}
	}()
	if err := s.checkoutDeployment(ctx, d, p); err != nil {
		return nil, err
	}
	res = &DeployResult{Deployment: d}
	if etcDiff != nil {
		rep, err := applyEtcMerge(etcDiff, s.abs(merge.RelDir()), s.abs(d.RelDir()))
		if err != nil {
			return nil, fmt.Errorf("deploy: /etc merge: %w", err)
		}
		res.Etc = rep
		s.logEtc(rep)
	}
	s.checkpoint("etc-merged")
	if err := s.finishDeployment(d); err != nil {
		return nil, err
	}
	if opts.Stage {
		if !s.opts.NoSync {
			if err := fsutil.SyncFS(s.Path); err != nil {
				return nil, err
			}
		}
		rec := stagedRecord{target: d, merge: merge, kargs: kargs, hasKargs: true}
		handedOff = true
		if err := s.writeStaged(rec); err != nil {
			return nil, err
		}
		d.Staged = true
		s.Staged = d
		// The staged commit gets its deployment ref now: until finalize,
		// nothing else keeps a refs-only prune from deleting it.
		if err := s.writeDeploymentRefs(); err != nil {
			return res, fmt.Errorf("staged, but: %w", err)
		}
		s.logf("Staged deployment %s; run finalize (at shutdown) to make it the default", d.Name())
		return res, nil
	}
	list := s.newList(d, merge, opts.Retain)
	handedOff = true
	if err := s.writeDeployments(list); err != nil {
		return nil, err
	}
	if err := s.writeDeploymentRefs(); err != nil {
		return res, fmt.Errorf("deployed, but: %w", err)
	}
	unlockRepo()
	if _, err := s.cleanup(ctx, true); err != nil {
		return res, fmt.Errorf("deployed, but cleanup failed: %w", err)
	}
	return res, nil
}

// newList is the deployment list with d first: other stateroots, the
// booted, merge and pinned deployments are kept (every one with retain).
func (s *Sysroot) newList(d, merge *Deployment, retain bool) []*Deployment {
	list := []*Deployment{d}
	for _, o := range s.Deployments {
		if o.OS != d.OS || o.same(s.Booted) || o.same(merge) || o.Pinned() || retain {
			list = append(list, o)
		}
	}
	return list
}

// allocSerial is one more than the largest serial of the commit in the
// stateroot's deploy directory, or 0.
func (s *Sysroot) allocSerial(osname string, c object.Checksum) int {
	serial := 0
	des, _ := os.ReadDir(s.abs(filepath.Join("ostree/deploy", osname, "deploy")))
	for _, de := range des {
		m := nameRe.FindStringSubmatch(de.Name())
		if m != nil && m[1] == c.String() {
			if n, _ := strconv.Atoi(m[2]); n >= serial {
				serial = n + 1
			}
		}
	}
	return serial
}

// checkoutDeployment writes the deployment tree: a hardlink checkout of
// the commit, with /etc a copy of /usr/etc.
func (s *Sysroot) checkoutDeployment(ctx context.Context, d *Deployment, p *plan) error {
	dir := s.abs(d.RelDir())
	setImmutable(dir, false)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	// A stateroot made by `ostree admin os-init` has no deploy/ until its
	// first deployment; libostree creates it here too.
	if err := os.MkdirAll(filepath.Dir(dir), 0o775); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if err := s.repo.Checkout(ctx, d.Commit, dir, repo.CheckoutOptions{}); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	s.checkpoint("checked-out")
	if fi, err := os.Stat(filepath.Join(dir, "var")); err == nil && fi.IsDir() {
		if des, _ := os.ReadDir(filepath.Join(dir, "var")); len(des) > 0 {
			s.logf("note: commit %s has content in /var that is ignored: /var is shared by the stateroot", d.Commit)
		}
	}
	if p.etcTop {
		if err := os.Rename(filepath.Join(dir, "etc"), filepath.Join(dir, "usr/etc")); err != nil {
			return fmt.Errorf("deploy: move /etc to /usr/etc: %w", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "usr/etc")); err == nil {
		if err := s.repo.Checkout(ctx, d.Commit, filepath.Join(dir, "etc"),
			repo.CheckoutOptions{Subpath: etcSubpath(p), Copy: true}); err != nil {
			return fmt.Errorf("deploy: create /etc: %w", err)
		}
	}
	return nil
}

func etcSubpath(p *plan) string {
	if p.etcTop {
		return "/etc"
	}
	return "/usr/etc"
}

// finishDeployment writes the origin file and makes the directory
// immutable. The origin is written last: until then the directory is a
// leftover by any measure.
func (s *Sysroot) finishDeployment(d *Deployment) error {
	dir := s.abs(d.RelDir())
	for _, f := range []string{"etc/.updated", "var/.updated"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	if err := s.writeOrigin(d); err != nil {
		return err
	}
	if !s.opts.MutableDeployments {
		if err := setImmutable(dir, true); err != nil {
			return err
		}
	}
	s.checkpoint("deployment-finished")
	return nil
}

func (s *Sysroot) writeOrigin(d *Deployment) error {
	if err := fsutil.WriteFileAtomic(s.abs(d.RelDir()+".origin"), d.Origin.Bytes(), 0o644, !s.opts.NoSync); err != nil {
		return fmt.Errorf("write origin of %s: %w", d.Name(), err)
	}
	return nil
}

func (s *Sysroot) logEtc(rep *EtcMergeReport) {
	s.logf("Copying /etc changes: %d modified, %d removed, %d added", len(rep.Modified), len(rep.Removed), len(rep.Added))
	for _, c := range rep.Conflicts {
		s.logf("conflict: /etc/%s: %s; keeping the local version", c.Path, c.Reason)
	}
}

// removeUnreferenced deletes a deployment that no boot configuration or
// staged record names (best effort: cleanup catches what this misses).
func (s *Sysroot) removeUnreferenced(d *Deployment) {
	dir := s.abs(d.RelDir())
	setImmutable(dir, false)
	os.RemoveAll(dir)
	os.Remove(dir + ".origin")
}
