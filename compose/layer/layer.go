// Package layer builds derived commits: a base commit of the host
// repository plus layered packages (install), minus removed base packages
// (override remove), with base packages swapped for other versions
// (override replace). It solves against the base's installed packages,
// checks the base out by hardlinks, unpacks the new payloads, runs their
// scriptlets in bubblewrap over an overlay (so the repository's objects,
// hardlinked into the checkout, are never written), updates the tree's rpm
// database and commits the result to a local ref. Nothing is left behind
// on failure or cancellation but what the repository's transaction
// cleans up itself.
package layer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osupdate/os-update/compose/postprocess"
	"github.com/osupdate/os-update/compose/rpmdb"
	"github.com/osupdate/os-update/compose/rpmfile"
	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
	"github.com/osupdate/os-update/compose/scriptlet"
	"github.com/osupdate/os-update/compose/solve"
	"github.com/osupdate/os-update/compose/treefs"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// Commit metadata written on a derived commit.
const (
	// KeyClientLayer marks a derived commit (rpm-ostree's key).
	KeyClientLayer = "rpmostree.clientlayer"
	// KeyBase is the base commit (also the commit's parent).
	KeyBase = "os-update.layer.base"
	// KeyRequests is the Requests, as JSON.
	KeyRequests = "os-update.layer.requests"
	// KeyPackages lists the requested packages (rpm-ostree's key).
	KeyPackages = "rpmostree.packages"
	// KeyRemoved lists the NEVRAs of removed base packages
	// (rpm-ostree's key).
	KeyRemoved = "rpmostree.removed-base-packages"
	// KeyReplaced lists "OLD-NEVRA NEW-NEVRA" pairs.
	KeyReplaced = "os-update.layer.replaced"
	// KeyLayered lists the NEVRAs of every layered package (requested
	// ones and their dependencies).
	KeyLayered = "os-update.layer.layered"
)

// Refs the builder writes: the derived commit (LayeredRefPrefix + base)
// and its base (BaseRefPrefix + base), so that pruning keeps the base of
// a deployed derived commit even after the remote ref moved on (the next
// PkgChange builds on it again). Their owner removes them when no
// deployment uses them.
const (
	LayeredRefPrefix = "os-update/layered/"
	BaseRefPrefix    = "os-update/base/"
)

// DefaultCacheDir holds downloaded metadata and packages, by checksum.
const DefaultCacheDir = "/var/cache/os-update"

// DefaultReposDir is where the host's package sources are described.
const DefaultReposDir = "/etc/yum.repos.d"

// TmpfilesConf receives the /var content of layered packages.
const TmpfilesConf = "/usr/lib/tmpfiles.d/os-update-layer.conf"

// Requests is what to change relative to the base. Local files are paths
// ending in ".rpm"; everything else is a name, a provide, a file path
// or "name OP version" (Install) or a NEVRA (Replace).
type Requests struct {
	Install []string `json:"install,omitempty"`
	Remove  []string `json:"remove,omitempty"`
	Replace []string `json:"replace,omitempty"`
}

// Empty reports whether there is nothing to change.
func (r Requests) Empty() bool {
	return len(r.Install) == 0 && len(r.Remove) == 0 && len(r.Replace) == 0
}

// Options control Build.
type Options struct {
	Repo *repo.Repo
	Base object.Checksum
	// Ref receives the derived commit (default "os-update/layered/BASE").
	Ref string
	Requests
	// ReposDir holds the *.repo files (default DefaultReposDir); every
	// enabled section is used.
	ReposDir string
	// Vars expand $releasever and $basearch in .repo files (basearch
	// defaults to x86_64).
	Vars rpmmd.Vars
	// CacheDir is DefaultCacheDir unless set.
	CacheDir string
	// WorkDir is where the checkout is made; it must be on the
	// repository's filesystem for hardlinks (default: the repository's
	// tmp directory).
	WorkDir string
	Fetcher *rpmmd.Fetcher
	Arches  []string
	Bwrap   string
	RPM     string
	// DryRun stops after the solve.
	DryRun bool
	// Reapply says the requests were made against an earlier base (an
	// upgrade, rebase or deploy re-applies them): a removal of a package
	// the new base no longer has is dropped with a note instead of
	// failing.
	Reapply bool
	Log     io.Writer
	// Progress, if set, is told each stage as it starts.
	Progress func(stage string)
}

// Timings splits a build by stage.
type Timings struct {
	Solve, Fetch, Checkout, Unpack, Scripts, Commit, Total time.Duration
}

// Result is what Build did (or, with DryRun, would do).
type Result struct {
	Commit object.Checksum
	Base   object.Checksum
	Ref    string
	// Layered are the packages added (requested and dependencies).
	Layered []string
	// Removed are the base packages taken out (override remove).
	Removed []string
	// Replaced are "OLD NEW" pairs (override replace).
	Replaced []string
	// Notes are messages for the user (requests the base already
	// satisfies, ...).
	Notes   []string
	Timings Timings
}

type builder struct {
	opts Options
	log  io.Writer
	res  *Result
	tool *rpmdb.Tool
}

func (b *builder) logf(format string, args ...any) {
	fmt.Fprintf(b.log, format+"\n", args...)
}

func (b *builder) stage(s string) {
	if b.opts.Progress != nil {
		b.opts.Progress(s)
	}
}

// Build makes the derived commit.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Repo == nil || opts.Base.IsZero() {
		return nil, errors.New("layer: a repository and a base commit are required")
	}
	if opts.Requests.Empty() {
		return nil, errors.New("layer: nothing requested")
	}
	if opts.Ref == "" {
		opts.Ref = LayeredRefPrefix + opts.Base.String()
	}
	if opts.ReposDir == "" {
		opts.ReposDir = DefaultReposDir
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(opts.Repo.Path(), "tmp")
	}
	if opts.Fetcher == nil {
		opts.Fetcher = &rpmmd.Fetcher{}
	}
	if len(opts.Arches) == 0 {
		opts.Arches = []string{"x86_64", "noarch"}
	}
	vars := rpmmd.Vars{"basearch": "x86_64"}
	for k, v := range opts.Vars {
		vars[k] = v
	}
	opts.Vars = vars
	b := &builder{opts: opts, log: opts.Log, res: &Result{Base: opts.Base, Ref: opts.Ref}}
	if b.log == nil {
		b.log = io.Discard
	}
	start := time.Now()
	err := b.run(ctx)
	b.res.Timings.Total = time.Since(start)
	if err != nil {
		return b.res, err
	}
	return b.res, nil
}

// local is a package from a local .rpm file.
type local struct {
	path string
	file *rpmfile.Package
	meta *rpmmd.Package
}

func isLocalFile(s string) bool { return strings.HasSuffix(s, ".rpm") }

// workPrefix names the work directories Build makes in WorkDir.
const workPrefix = "layer-"

// RemoveAbandoned removes the work directories that builds killed before
// their own cleanup left in workDir (the default WorkDir is the
// repository's tmp directory). Call it only when no build can be running,
// as the daemon does when it starts. The checkouts hold hardlinks to the
// repository's objects, never the objects themselves, so removing them
// loses nothing.
func RemoveAbandoned(workDir string) error {
	dirs, err := filepath.Glob(filepath.Join(workDir, workPrefix+"*"))
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove abandoned layering work directory: %w", err)
		}
	}
	return nil
}

func (b *builder) run(ctx context.Context) error {
	opts := &b.opts
	r := opts.Repo
	base, err := r.LoadCommit(opts.Base)
	if err != nil {
		return fmt.Errorf("base commit %s: %w", opts.Base, err)
	}
	b.tool = &rpmdb.Tool{RPM: opts.RPM, Bwrap: opts.Bwrap, SourceDateEpoch: int64(base.Timestamp)}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(opts.WorkDir, workPrefix)
	if err != nil {
		return fmt.Errorf("layer work directory: %w", err)
	}
	// Whatever happens, the checkout and the overlay directories go.
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}

	// Solve.
	b.stage("solve")
	t0 := time.Now()
	basePkgs, err := b.basePackages(ctx, base, work)
	if err != nil {
		return err
	}
	locals, err := b.openLocals(opts.Install, "install")
	if err != nil {
		return err
	}
	replLocals, err := b.openLocals(opts.Replace, "override replace")
	if err != nil {
		return err
	}
	// Local files alone may need nothing but the base: the repositories
	// are loaded only when a request names a package, or when the local
	// files need more than the base has.
	needRepos := len(locals) < len(opts.Install) || len(replLocals) < len(opts.Replace)
	var pool []*rpmmd.Package
	var plan *plan
	if !needRepos {
		saved := *b.res
		if plan, err = b.solve(ctx, basePkgs, nil, locals, replLocals); err != nil {
			var se *solve.Error
			if !errors.As(err, &se) {
				return err
			}
			*b.res = saved
			needRepos = true
		}
	}
	if needRepos {
		if pool, err = b.loadRepos(ctx); err != nil {
			return err
		}
		if plan, err = b.solve(ctx, basePkgs, pool, locals, replLocals); err != nil {
			return err
		}
	}
	b.res.Timings.Solve = time.Since(t0)
	if opts.DryRun {
		return nil
	}
	if len(plan.install) == 0 && len(plan.eraseNEVRAs) == 0 {
		// Every request is met by the base as it is.
		b.res.Commit = opts.Base
		b.res.Notes = append(b.res.Notes, "nothing left to layer: the base commit is used as it is")
		b.logf("nothing left to layer: the base commit %s is used as it is", opts.Base)
		return nil
	}

	// Fetch and verify.
	b.stage("fetch")
	t0 = time.Now()
	files, err := b.fetch(ctx, plan.install, locals, replLocals)
	if err != nil {
		return err
	}
	b.res.Timings.Fetch = time.Since(t0)

	// Checkout.
	b.stage("checkout")
	t0 = time.Now()
	tree := filepath.Join(work, "tree")
	if err := r.Checkout(ctx, opts.Base, tree, repo.CheckoutOptions{}); err != nil {
		return err
	}
	if err := prepareTree(tree); err != nil {
		return err
	}
	b.res.Timings.Checkout = time.Since(t0)

	// Remove, unpack, run scripts.
	b.stage("unpack")
	t0 = time.Now()
	if err := removeFiles(tree, plan.removeFiles); err != nil {
		return err
	}
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	written := map[string]bool{}
	type unpacked struct {
		file    *rpmfile.Package
		scripts []rpmfile.Script
		arg     string
	}
	var done []unpacked
	var scriptT time.Duration
	runner := &scriptlet.Runner{Bwrap: opts.Bwrap, Log: b.log, ReadOnlyVar: true, ReadOnlyDev: true}
	runScript := func(s scriptlet.Script, owner string) error {
		t := time.Now()
		defer func() { scriptT += time.Since(t) }()
		return b.runScript(ctx, work, tree, runner, s, owner, written)
	}
	for i, f := range files {
		arg := "1"
		if plan.replacing[plan.install[i].Name] {
			arg = "2"
		}
		scripts := f.Scripts()
		for _, s := range scripts {
			if s.Kind == "pre" {
				if err := runScript(scriptlet.Script{Name: "%pre scriptlet of " + s.Package, Prog: s.Prog, Body: s.Body, Args: []string{arg}}, s.Package); err != nil {
					return err
				}
			}
		}
		acct, err := rpmfile.LoadAccounts(root)
		if err != nil {
			return err
		}
		out, err := f.Unpack(ctx, root, acct, rpmfile.UnpackOptions{
			NoSymlinkPaths: true,
			Warn:           func(m string) { b.logf("warning: %s", m) },
		})
		if err != nil {
			return err
		}
		for _, wf := range out {
			rel, _ := treefs.Clean(wf.Path)
			written[rel] = true
		}
		for _, s := range scripts {
			if s.Kind == "post" {
				if err := runScript(scriptlet.Script{Name: "%post scriptlet of " + s.Package, Prog: s.Prog, Body: s.Body, Args: []string{arg}}, s.Package); err != nil {
					return err
				}
			}
		}
		done = append(done, unpacked{file: f, scripts: scripts, arg: arg})
	}
	for _, f := range files {
		for _, tr := range f.InstallTriggers() {
			for _, q := range plan.install {
				if !tr.Matches(q.Name, q.EVR) {
					continue
				}
				err := runScript(scriptlet.Script{Name: "%triggerin scriptlet of " + f.NEVRA() + " for " + q.NEVRA(),
					Prog: tr.Script.Prog, Body: tr.Script.Body, Args: []string{"1", "1"}}, f.NEVRA())
				if err != nil {
					return err
				}
			}
		}
	}
	for _, u := range done {
		for _, s := range u.scripts {
			if s.Kind == "posttrans" {
				if err := runScript(scriptlet.Script{Name: "%posttrans scriptlet of " + s.Package, Prog: s.Prog, Body: s.Body, Args: []string{"0"}}, s.Package); err != nil {
					return err
				}
			}
		}
	}
	// The rpm database: out with the removed and replaced, in with the
	// new (rpm's own format, see compose/rpmdb).
	if err := b.tool.Erase(ctx, tree, plan.eraseNEVRAs); err != nil {
		return err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path()
	}
	if err := b.tool.Install(ctx, tree, paths); err != nil {
		return err
	}
	if err := finishTree(root); err != nil {
		return err
	}
	b.res.Timings.Scripts = scriptT
	b.res.Timings.Unpack = time.Since(t0) - scriptT
	if err := ctx.Err(); err != nil {
		return err
	}

	// Commit.
	b.stage("commit")
	t0 = time.Now()
	commit, err := b.commit(ctx, tree, base, plan)
	if err != nil {
		return err
	}
	b.res.Commit = commit
	b.res.Timings.Commit = time.Since(t0)
	b.logf("Wrote derived commit %s on base %s", commit, opts.Base)
	return nil
}

// basePackages reads the base's installed packages from its rpm database
// (dependencies and files included); a base without one (composed before
// trees carried it) falls back to the commit's package list, names and
// versions only.
func (b *builder) basePackages(ctx context.Context, base *object.Commit, work string) ([]*rpmmd.Package, error) {
	list, ok, err := commitmeta.PackageList(base.Metadata)
	if err != nil {
		return nil, fmt.Errorf("base commit %s: %w", b.opts.Base, err)
	}
	dbTree := filepath.Join(work, "rpmdb")
	dbDir := filepath.Join(dbTree, rpmdb.DBPath)
	if err := os.MkdirAll(filepath.Dir(dbDir), 0o755); err != nil {
		return nil, err
	}
	// Only the database, as a copy (rpm may touch it even to read).
	err = b.opts.Repo.Checkout(ctx, b.opts.Base, dbDir, repo.CheckoutOptions{Subpath: rpmdb.DBPath, Copy: true})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		b.logf("base commit %s: no rpm database: %v", b.opts.Base, err)
	}
	if err == nil && rpmdb.Exists(dbTree) {
		pkgs, err := b.tool.Query(ctx, dbTree)
		os.RemoveAll(dbTree)
		if err != nil {
			return nil, fmt.Errorf("base commit %s: %w", b.opts.Base, err)
		}
		return pkgs, nil
	}
	os.RemoveAll(dbTree)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("base commit %s has neither an rpm database nor a package list (%s): it was not composed from packages", b.opts.Base, commitmeta.KeyPackageList)
	}
	b.res.Notes = append(b.res.Notes, fmt.Sprintf("base commit %s has no rpm database; solving against its package list only (names and versions)", b.opts.Base))
	var out []*rpmmd.Package
	for _, p := range list {
		ep := 0
		if p.Epoch != "" {
			if ep, err = strconv.Atoi(p.Epoch); err != nil {
				return nil, fmt.Errorf("base package list: bad epoch %q of %s", p.Epoch, p.Name)
			}
		}
		out = append(out, &rpmmd.Package{Name: p.Name, Arch: p.Arch, EVR: rpmver.EVR{Epoch: ep, Version: p.Version, Release: p.Release}})
	}
	return out, nil
}

// openLocals opens the local .rpm files among reqs.
func (b *builder) openLocals(reqs []string, what string) ([]*local, error) {
	var out []*local
	for _, q := range reqs {
		if !isLocalFile(q) {
			continue
		}
		f, err := rpmfile.Open(q)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err) // names the file
		}
		if err := f.VerifyDigest(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, q, err)
		}
		m, err := headerPackage(f)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, q, err)
		}
		out = append(out, &local{path: q, file: f, meta: m})
	}
	return out, nil
}

// headerPackage converts an RPM header into solver metadata.
func headerPackage(f *rpmfile.Package) (*rpmmd.Package, error) {
	p := &rpmmd.Package{Name: f.Name(), Arch: f.Architecture(),
		EVR: rpmver.EVR{Epoch: f.Epoch(), Version: f.Version(), Release: f.Release()}}
	deps := func(nameTag, flagsTag, verTag int) ([]rpmmd.Dep, error) {
		names := f.Header.GetTag(nameTag).StringSlice()
		flags := f.Header.GetTag(flagsTag).Int64Slice()
		vers := f.Header.GetTag(verTag).StringSlice()
		if len(flags) != len(names) || len(vers) != len(names) {
			return nil, fmt.Errorf("%s: inconsistent dependency tags in header", f.NEVRA())
		}
		var out []rpmmd.Dep
		for i, n := range names {
			d := rpmmd.Dep{Name: n, Flags: rpmver.Flags((flags[i] & 14) >> 1), Pre: flags[i]&(64|512|1024) != 0}
			if d.Flags != 0 && vers[i] != "" {
				evr, err := rpmver.Parse(vers[i])
				if err != nil {
					return nil, fmt.Errorf("%s: dependency %s: %w", f.NEVRA(), n, err)
				}
				d.EVR = evr
			} else {
				d.Flags = 0
			}
			out = append(out, d)
		}
		return out, nil
	}
	var err error
	if p.Provides, err = deps(1047, 1112, 1113); err != nil {
		return nil, err
	}
	if p.Requires, err = deps(1049, 1048, 1050); err != nil {
		return nil, err
	}
	if p.Conflicts, err = deps(1054, 1053, 1055); err != nil {
		return nil, err
	}
	if p.Obsoletes, err = deps(1090, 1114, 1115); err != nil {
		return nil, err
	}
	files, err := f.FileList()
	if err != nil {
		return nil, err
	}
	for _, fl := range files {
		p.Files = append(p.Files, fl.Path)
	}
	return p, nil
}

// loadRepos loads every enabled repository of ReposDir.
func (b *builder) loadRepos(ctx context.Context) ([]*rpmmd.Package, error) {
	files, err := filepath.Glob(filepath.Join(b.opts.ReposDir, "*.repo"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var cfgs []rpmmd.RepoConfig
	for _, f := range files {
		rs, err := rpmmd.ParseRepoFile(f, b.opts.Vars)
		if err != nil {
			return nil, err
		}
		for _, c := range rs {
			if c.Enabled {
				cfgs = append(cfgs, c)
			}
		}
	}
	if len(cfgs) == 0 {
		return nil, fmt.Errorf("no enabled package repository in %s/*.repo", b.opts.ReposDir)
	}
	repos := make([]*rpmmd.Repo, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repos[i], errs[i] = rpmmd.Load(ctx, b.opts.Fetcher, c, b.opts.CacheDir)
		}()
	}
	wg.Wait()
	var pool []*rpmmd.Package
	for i := range cfgs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		pool = append(pool, repos[i].Packages...)
	}
	return pool, nil
}

// plan is a solved change.
type plan struct {
	install     []*rpmmd.Package // in install order
	local       map[*rpmmd.Package]*local
	replacing   map[string]bool // names of replaced base packages
	eraseNEVRAs []string        // leaving the rpm database
	removeFiles map[string]bool // absolute paths of files leaving the tree (not dirs)
	requested   []string
}

func (b *builder) solve(ctx context.Context, basePkgs, pool []*rpmmd.Package, locals, replLocals []*local) (*plan, error) {
	opts := &b.opts
	byName := map[string][]*rpmmd.Package{}
	for _, p := range basePkgs {
		byName[p.Name] = append(byName[p.Name], p)
	}
	pl := &plan{local: map[*rpmmd.Package]*local{}, replacing: map[string]bool{}, removeFiles: map[string]bool{}}
	out := map[*rpmmd.Package]bool{} // base packages leaving
	for _, n := range opts.Remove {
		ps := byName[n]
		if len(ps) == 0 && opts.Reapply {
			b.res.Notes = append(b.res.Notes, fmt.Sprintf("override remove %s: base commit %s has no such package any more; dropped", n, opts.Base))
			continue
		}
		if len(ps) == 0 {
			return nil, fmt.Errorf("override remove %s: no package of that name in base commit %s", n, opts.Base)
		}
		for _, p := range ps {
			out[p] = true
			b.res.Removed = append(b.res.Removed, p.NEVRA())
		}
	}
	// Replacements: local files, or NEVRAs from the repositories.
	var replNew []*rpmmd.Package
	for _, l := range replLocals {
		replNew = append(replNew, l.meta)
		pl.local[l.meta] = l
	}
	for _, q := range opts.Replace {
		if isLocalFile(q) {
			continue
		}
		var found *rpmmd.Package
		for _, p := range pool {
			if p.NEVRA() == q || p.Name+"-"+p.EVR.String() == q {
				found = p
				break
			}
		}
		if found == nil {
			return nil, fmt.Errorf("override replace %s: no such package in the enabled repositories", q)
		}
		replNew = append(replNew, found)
	}
	var requests []string
	for _, p := range replNew {
		olds := byName[p.Name]
		if len(olds) == 1 && olds[0].NEVRA() == p.NEVRA() {
			b.res.Notes = append(b.res.Notes, fmt.Sprintf("override replace %s: base commit %s has this version already; dropped", p.NEVRA(), opts.Base))
			delete(pl.local, p)
			continue
		}
		if len(olds) == 0 {
			return nil, fmt.Errorf("override replace %s: base commit %s has no package %s to replace (install it instead)", p.NEVRA(), opts.Base, p.Name)
		}
		for _, o := range olds {
			if out[o] {
				return nil, fmt.Errorf("override replace %s: %s is also to be removed", p.NEVRA(), o.NEVRA())
			}
			out[o] = true
			b.res.Replaced = append(b.res.Replaced, o.NEVRA()+" "+p.NEVRA())
		}
		pl.replacing[p.Name] = true
		requests = append(requests, p.Name+" = "+p.EVR.String())
	}
	for _, l := range locals {
		pl.local[l.meta] = l
		requests = append(requests, l.meta.Name+" = "+l.meta.EVR.String())
	}
	for _, q := range opts.Install {
		if !isLocalFile(q) {
			requests = append(requests, q)
		}
	}
	pl.requested = requests
	// The pool: repository packages, but never another version of a
	// local or replacing package, nor anything removed.
	pinned := map[string]*rpmmd.Package{}
	for l := range pl.local {
		pinned[l.Name] = l
	}
	for _, p := range replNew {
		pinned[p.Name] = p
	}
	var fullPool []*rpmmd.Package
	for _, p := range pool {
		if q, ok := pinned[p.Name]; ok && q != p {
			continue
		}
		fullPool = append(fullPool, p)
	}
	for l := range pl.local {
		fullPool = append(fullPool, l)
	}
	var exclude []string
	var keep []*rpmmd.Package
	for _, p := range basePkgs {
		if !out[p] {
			keep = append(keep, p)
		} else if !pl.replacing[p.Name] {
			exclude = append(exclude, p.Name)
		}
	}
	sol, err := solve.Solve(ctx, fullPool, requests, solve.Options{Arches: opts.Arches, Installed: keep, Exclude: exclude})
	if err != nil {
		return nil, err
	}
	for req, p := range sol.Satisfied {
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("%s is already provided by base package %s; not layered", req, p.NEVRA()))
	}
	sort.Strings(b.res.Notes)
	pl.install = sol.Install
	for _, p := range sol.Install {
		b.res.Layered = append(b.res.Layered, p.NEVRA())
	}
	// Files leaving with removed and replaced packages: those no kept
	// package also owns.
	kept := map[string]bool{}
	for _, p := range keep {
		for _, f := range p.Files {
			kept[f] = true
		}
	}
	for p := range out {
		pl.eraseNEVRAs = append(pl.eraseNEVRAs, p.NEVRA())
		for _, f := range p.Files {
			if !kept[f] {
				pl.removeFiles[f] = true
			}
		}
	}
	sort.Strings(pl.eraseNEVRAs)
	sort.Strings(b.res.Removed)
	sort.Strings(b.res.Replaced)
	for _, l := range b.res.Layered {
		b.logf("layer: install %s", l)
	}
	for _, r := range b.res.Removed {
		b.logf("layer: remove %s", r)
	}
	for _, r := range b.res.Replaced {
		b.logf("layer: replace %s", strings.Replace(r, " ", " with ", 1))
	}
	for _, n := range b.res.Notes {
		b.logf("%s", n)
	}
	return pl, nil
}

// fetch downloads repository packages into the cache (verified by
// checksum and, with gpgcheck, signature) and opens them; local files
// are already open.
func (b *builder) fetch(ctx context.Context, pkgs []*rpmmd.Package, locals, replLocals []*local) ([]*rpmfile.Package, error) {
	out := make([]*rpmfile.Package, len(pkgs))
	lm := map[*rpmmd.Package]*local{}
	for _, l := range append(append([]*local(nil), locals...), replLocals...) {
		lm[l.meta] = l
	}
	var remote []*rpmmd.Package
	var at []int // index in out of each remote package
	for i, p := range pkgs {
		if l := lm[p]; l != nil {
			out[i] = l.file
			continue
		}
		remote, at = append(remote, p), append(at, i)
	}
	got, err := rpmmd.DownloadAll(ctx, b.opts.Fetcher, remote, filepath.Join(b.opts.CacheDir, "rpms"), 4)
	if err != nil {
		return nil, err
	}
	for j, d := range got {
		out[at[j]] = d.File
	}
	return out, nil
}

// prepareTree turns a checkout into the shape packages and scripts
// expect: the base's /etc defaults (/usr/etc) back at /etc, and its own
// copy of the rpm database (the checkout's files are hardlinks to the
// repository's objects; rpm writes its database in place).
func prepareTree(tree string) error {
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Lstat("usr/etc"); err == nil {
		if _, err := root.Lstat("etc"); err == nil {
			return errors.New("base tree has both /etc and /usr/etc")
		}
		if err := root.Rename("usr/etc", "etc"); err != nil {
			return err
		}
	}
	db := strings.TrimPrefix(rpmdb.DBPath, "/")
	names, err := root.ReadDir(db)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, n := range names {
		p := db + "/" + n
		st, err := root.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode&0o170000 != 0o100000 {
			continue
		}
		// Stream a copy (a distribution's database is 100 MB and more),
		// then replace the hardlink by it.
		src, err := root.Open(p)
		if err != nil {
			return err
		}
		err = root.WriteFile(p+".osupdate-copy", src, st.Mode&0o7777, int(st.Uid), int(st.Gid))
		src.Close()
		if err == nil {
			err = root.Rename(p+".osupdate-copy", p)
		}
		if err != nil {
			return fmt.Errorf("copy the rpm database %s: %w", p, err)
		}
	}
	return nil
}

// finishTree puts /etc back at /usr/etc and turns /var content of the
// layered packages into tmpfiles.d lines.
func finishTree(root *treefs.Root) error {
	if _, err := postprocess.VarToTmpfiles(root, TmpfilesConf); err != nil {
		return fmt.Errorf("/var of layered packages: %w", err)
	}
	if _, err := root.Lstat("etc"); err == nil {
		if err := root.Rename("etc", "usr/etc"); err != nil {
			return err
		}
	}
	return nil
}

// removeFiles deletes the files of removed packages, then directories
// that became empty.
func removeFiles(tree string, files map[string]bool) error {
	if len(files) == 0 {
		return nil
	}
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	// Deepest first, so directories are emptied before they are tried.
	sort.Slice(paths, func(i, j int) bool { return paths[i] > paths[j] })
	for _, p := range paths {
		st, err := root.Lstat(p)
		if err != nil {
			continue // not in the tree (moved by compose: /var, /boot)
		}
		if st.Mode&0o170000 == 0o040000 {
			if names, err := root.ReadDir(p); err == nil && len(names) == 0 {
				if err := root.Remove(p); err != nil {
					return err
				}
			}
			continue
		}
		if err := root.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// runScript runs one scriptlet over an overlay of the tree and merges
// its changes back. A script may delete what the layered packages
// wrote, and anything in /etc, but not the base's other files.
func (b *builder) runScript(ctx context.Context, work, tree string, runner *scriptlet.Runner, s scriptlet.Script, owner string, written map[string]bool) error {
	ov, err := os.MkdirTemp(work, "overlay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ov)
	upper, owork, merged := filepath.Join(ov, "upper"), filepath.Join(ov, "work"), filepath.Join(ov, "merged")
	for _, d := range []string{upper, owork, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	err = withOverlay(tree, upper, owork, merged, func() error {
		return runner.Run(ctx, merged, s)
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mergeUpper(upper, tree, s.Name, func(rel string) bool {
		return written[rel] || rel == "etc" || strings.HasPrefix(rel, "etc/") || rel == "var" || strings.HasPrefix(rel, "var/") || strings.HasPrefix(rel, "tmp/") || strings.HasPrefix(rel, "run/")
	})
}

func (b *builder) commit(ctx context.Context, tree string, base *object.Commit, pl *plan) (object.Checksum, error) {
	opts := &b.opts
	// The package list: the base's, minus what left, plus what came.
	pkgs, _, err := commitmeta.PackageList(base.Metadata)
	if err != nil {
		return object.Checksum{}, err
	}
	gone := map[string]bool{}
	for _, n := range pl.eraseNEVRAs {
		gone[n] = true
	}
	var list []commitmeta.Package
	for _, p := range pkgs {
		if !gone[p.String()] {
			list = append(list, p)
		}
	}
	for _, p := range pl.install {
		list = append(list, commitmeta.Package{Name: p.Name, Epoch: strconv.Itoa(p.EVR.Epoch), Version: p.EVR.Version, Release: p.EVR.Release, Arch: p.Arch})
	}
	meta := object.Metadata{}
	for _, e := range base.Metadata {
		switch e.Key {
		case "version", commitmeta.KeyLinux, commitmeta.KeyBootable, "ostree.source-title":
			meta.Set(e.Key, e.Value)
		}
	}
	commitmeta.SetPackageList(&meta, list)
	reqJSON, err := json.Marshal(opts.Requests)
	if err != nil {
		return object.Checksum{}, err
	}
	strs := func(l []string) gvariant.Variant {
		v := []gvariant.Value{}
		for _, s := range l {
			v = append(v, s)
		}
		return gvariant.NewVariant("as", v)
	}
	meta.Set(KeyClientLayer, gvariant.NewVariant("b", true))
	meta.Set(KeyBase, gvariant.NewVariant("s", opts.Base.String()))
	meta.Set(KeyRequests, gvariant.NewVariant("s", string(reqJSON)))
	meta.Set(KeyPackages, strs(opts.Install))
	meta.Set(KeyRemoved, strs(b.res.Removed))
	meta.Set(KeyReplaced, strs(b.res.Replaced))
	meta.Set(KeyLayered, strs(b.res.Layered))
	subject := "Derived from " + opts.Base.String()
	var commit object.Checksum
	err = opts.Repo.Update(ctx, func(tx *repo.Transaction) error {
		t, err := tx.WriteDir(ctx, tree, repo.TreeOptions{})
		if err != nil {
			return fmt.Errorf("commit tree: %w", err)
		}
		commit, err = tx.WriteCommit(t, repo.CommitOptions{
			Parent: opts.Base, Subject: subject, Metadata: meta, NoBindings: true,
			Timestamp: time.Unix(int64(base.Timestamp), 0).UTC(),
		})
		if err != nil {
			return err
		}
		// The refs move with the transaction: prune never sees the
		// commit or its base unreferenced.
		if err := tx.SetRef("", BaseRefPrefix+opts.Base.String(), opts.Base); err != nil {
			return err
		}
		return tx.SetRef("", opts.Ref, commit)
	})
	if err != nil {
		return object.Checksum{}, fmt.Errorf("derived commit for %s: %w", opts.Ref, err)
	}
	return commit, nil
}
