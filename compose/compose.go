// Package compose turns a treefile (a list of RPM packages plus rules)
// into an OSTree commit: it loads rpm-md repositories, solves
// dependencies, downloads and verifies packages in parallel, unpacks them,
// runs their scriptlets in a sandbox, applies the OSTree conventions and
// commits the result reproducibly. Signing, summary and delta generation
// plug in through Options.Sign and Options.PostCommit.
package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osupdate/os-update/compose/postprocess"
	"github.com/osupdate/os-update/compose/rpmdb"
	"github.com/osupdate/os-update/compose/rpmfile"
	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/scriptlet"
	"github.com/osupdate/os-update/compose/solve"
	"github.com/osupdate/os-update/compose/treefile"
	"github.com/osupdate/os-update/compose/treefs"
	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// Commit metadata keys written by a compose.
const (
	// KeyInputHash identifies the inputs (treefile + exact packages);
	// an unchanged hash means an unchanged tree. rpm-ostree's key.
	KeyInputHash = "rpmostree.inputhash"
	// KeyPackageList is the installed package list (see commitmeta).
	KeyPackageList = commitmeta.KeyPackageList
	// KeyVersion is the ostree version key.
	KeyVersion = "version"
)

// ManifestPath is the package manifest written into every composed tree.
const ManifestPath = "/usr/lib/os-update/packages.json"

// Options control a compose.
type Options struct {
	Treefile string
	Repo     *repo.Repo
	CacheDir string // downloaded metadata and packages; default: Repo/tmp/compose-cache
	// DryRun solves and prints the transaction without downloading.
	DryRun bool
	// Lockfile pins package versions (JSON, rpm-ostree's format).
	Lockfile string
	// WriteLockfile writes the solved versions there.
	WriteLockfile string
	// JSONReport writes a report of the compose there.
	JSONReport string
	// SourceDateEpoch, if set, is the commit timestamp; otherwise the
	// newest build time of the installed packages is used, so the same
	// inputs always give the same commit.
	SourceDateEpoch *int64
	// Arches are the acceptable package architectures, preferred first.
	Arches []string
	// Workers bounds parallel downloads and object writes (default 4).
	Workers int
	// Fetcher downloads metadata and packages (default: a plain one).
	Fetcher *rpmmd.Fetcher
	// Bwrap is the bubblewrap binary ("" = from PATH).
	Bwrap string
	// RPM is the rpm binary that writes the tree's rpm database ("" =
	// from PATH).
	RPM string
	// InitramfsInit is a static os-update binary to use as the /init of
	// the initramfs built for a tree that has a kernel but no initramfs
	// and no /usr/bin/os-update of its own.
	InitramfsInit string
	// Log receives progress messages; nil discards them.
	Log io.Writer
	// Sign, if set, signs the new commit (detached metadata) before the
	// ref moves; a failure leaves the ref where it was.
	Sign func(r *repo.Repo, commit object.Checksum) error
	// PostCommit, if set, runs after the ref moved (summary update,
	// static delta from parent); parent is zero for a first commit.
	PostCommit func(ctx context.Context, r *repo.Repo, ref string, parent, commit object.Checksum) error
}

// Timings splits the compose time by phase.
type Timings struct {
	Metadata, Solve, Download, Unpack, Scripts, RPMDB, Postprocess, Commit, Total time.Duration
}

// PackageReport is one installed package.
type PackageReport struct {
	NEVRA    string `json:"nevra"`
	Name     string `json:"name"`
	Epoch    int    `json:"epoch"`
	Version  string `json:"version"`
	Release  string `json:"release"`
	Arch     string `json:"arch"`
	Checksum string `json:"checksum"`
	Repo     string `json:"repo"`
	Signer   string `json:"signer,omitempty"`
}

// Result is what a compose did.
type Result struct {
	Ref       string           `json:"ref"`
	Changed   bool             `json:"changed"`
	DryRun    bool             `json:"dry_run,omitempty"`
	Commit    string           `json:"commit,omitempty"`
	Parent    string           `json:"parent,omitempty"`
	Version   string           `json:"version,omitempty"`
	Timestamp int64            `json:"timestamp,omitempty"`
	InputHash string           `json:"inputhash"`
	Kernel    string           `json:"kernel,omitempty"`
	Packages  []PackageReport  `json:"packages"`
	Notes     []string         `json:"notes,omitempty"`
	Error     string           `json:"error,omitempty"`
	Timings   Timings          `json:"-"`
	TimingsMS map[string]int64 `json:"timings_ms"`
}

type composer struct {
	opts  Options
	tf    *treefile.Treefile
	log   io.Writer
	res   *Result
	start time.Time
	// scriptsBefore is the script time spent during install, so that
	// postprocess time excludes treefile postprocess scripts.
	scriptsBefore time.Duration
}

func (c *composer) logf(format string, args ...any) {
	fmt.Fprintf(c.log, format+"\n", args...)
}

// Tree runs a compose.
func Tree(ctx context.Context, opts Options) (*Result, error) {
	if opts.Repo == nil || opts.Treefile == "" {
		return nil, errors.New("compose: a treefile and a repository are required")
	}
	c := &composer{opts: opts, log: opts.Log, start: time.Now()}
	if c.log == nil {
		c.log = io.Discard
	}
	if c.opts.Workers <= 0 {
		c.opts.Workers = 4
	}
	if c.opts.Fetcher == nil {
		c.opts.Fetcher = &rpmmd.Fetcher{}
	}
	if c.opts.CacheDir == "" {
		c.opts.CacheDir = filepath.Join(opts.Repo.Path(), "tmp", "compose-cache")
	}
	res, err := c.run(ctx)
	if res != nil {
		if err != nil {
			res.Error = err.Error()
		}
		res.Timings.Total = time.Since(c.start)
		res.TimingsMS = res.Timings.ms()
		if opts.JSONReport != "" {
			if werr := writeJSON(opts.JSONReport, res); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return res, err
}

func (t Timings) ms() map[string]int64 {
	return map[string]int64{
		"metadata": t.Metadata.Milliseconds(), "solve": t.Solve.Milliseconds(), "download": t.Download.Milliseconds(),
		"unpack": t.Unpack.Milliseconds(), "scripts": t.Scripts.Milliseconds(), "rpmdb": t.RPMDB.Milliseconds(), "postprocess": t.Postprocess.Milliseconds(),
		"commit": t.Commit.Milliseconds(), "total": t.Total.Milliseconds(),
	}
}

func (c *composer) run(ctx context.Context) (*Result, error) {
	tf, err := treefile.Load(c.opts.Treefile)
	if err != nil {
		return nil, err
	}
	c.tf = tf
	if err := repo.ValidateRef(tf.Ref); err != nil {
		return nil, fmt.Errorf("treefile ref %q: %w", tf.Ref, err)
	}
	c.res = &Result{Ref: tf.Ref, DryRun: c.opts.DryRun}
	res := c.res

	// Repositories.
	t0 := time.Now()
	pool, repos, err := c.loadRepos(ctx)
	if err != nil {
		return res, err
	}
	res.Timings.Metadata = time.Since(t0)

	// Solve.
	t0 = time.Now()
	var locked map[string]string
	var lockDigests map[string]string
	if c.opts.Lockfile != "" {
		if locked, lockDigests, err = readLockfile(c.opts.Lockfile); err != nil {
			return res, err
		}
	}
	arches := c.opts.Arches
	if len(arches) == 0 {
		arches = []string{"x86_64", "noarch"}
	}
	sol, err := solve.Solve(ctx, pool, tf.Packages, solve.Options{
		Arches: arches, Exclude: tf.ExcludePackages, Locked: locked, Recommends: tf.Recommends,
	})
	if err != nil {
		return res, err
	}
	res.Timings.Solve = time.Since(t0)
	for _, p := range sol.Install {
		if want, ok := lockDigests[p.Name]; ok && want != "" && want != p.Checksum.String() {
			return res, fmt.Errorf("lockfile: %s has digest %s in repo %s, lockfile says %s", p.NEVRA(), p.Checksum, p.Repo.Config.ID, want)
		}
		res.Packages = append(res.Packages, PackageReport{
			NEVRA: p.NEVRA(), Name: p.Name, Epoch: p.EVR.Epoch, Version: p.EVR.Version, Release: p.EVR.Release,
			Arch: p.Arch, Checksum: p.Checksum.String(), Repo: p.Repo.Config.ID,
		})
	}
	if c.opts.WriteLockfile != "" {
		if err := writeLockfile(c.opts.WriteLockfile, sol.Install); err != nil {
			return res, err
		}
	}
	res.InputHash, err = c.inputHash(sol.Install)
	if err != nil {
		return res, err
	}

	if c.opts.DryRun {
		c.logf("Transaction for %s (%d packages, from %s):", tf.Ref, len(sol.Install), strings.Join(repoIDs(repos), ", "))
		for _, p := range sol.Install {
			c.logf("  %s  (%s)", p.NEVRA(), p.Repo.Config.ID)
		}
		return res, nil
	}

	// No-change detection.
	r := c.opts.Repo
	// A missing ref means a first compose.
	parent, err := r.ReadRef("", tf.Ref)
	if errors.Is(err, repo.ErrRefNotFound) {
		parent = object.Checksum{}
	} else if err != nil {
		return res, fmt.Errorf("read ref %s: %w", tf.Ref, err)
	}
	var prevMeta object.Metadata
	if !parent.IsZero() {
		pc, err := r.LoadCommit(parent)
		if err != nil {
			return res, fmt.Errorf("load previous commit of %s: %w", tf.Ref, err)
		}
		prevMeta = pc.Metadata
		if prevMeta.String(KeyInputHash) == res.InputHash {
			res.Commit = parent.String()
			res.Version = prevMeta.String(KeyVersion)
			c.logf("No changes to %s: inputs are unchanged since commit %s; no new commit.", tf.Ref, parent)
			return res, nil
		}
		res.Parent = parent.String()
	}

	// Download and verify.
	t0 = time.Now()
	files, err := c.download(ctx, sol.Install)
	if err != nil {
		return res, err
	}
	res.Timings.Download = time.Since(t0)

	if err := os.MkdirAll(c.opts.CacheDir, 0o755); err != nil {
		return res, err
	}
	work, err := os.MkdirTemp(c.opts.CacheDir, "work-")
	if err != nil {
		return res, fmt.Errorf("compose work directory: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return res, err
	}
	installed, err := c.install(ctx, work, sol.Install, files)
	if err != nil {
		return res, err
	}
	// The rpm database, before the treefile's postprocess scripts so
	// that they may query it.
	t0 = time.Now()
	if err := c.writeRPMDB(ctx, work, files, c.timestamp(sol.Install)); err != nil {
		return res, err
	}
	res.Timings.RPMDB = time.Since(t0)

	t0 = time.Now()
	version := nextVersion(tf.AutomaticVersionPrefix, prevMeta.String(KeyVersion))
	res.Version = version
	if err := c.treefileOps(ctx, work, installed, version); err != nil {
		return res, err
	}
	if err := writeManifest(work, res.Packages, installed); err != nil {
		return res, err
	}
	root, err := treefs.Open(work)
	if err != nil {
		return res, err
	}
	pp, err := postprocess.Apply(root)
	root.Close()
	if err != nil {
		return res, fmt.Errorf("postprocess: %w", err)
	}
	res.Kernel = pp.KernelVersion
	res.Notes = append(res.Notes, pp.Notes...)
	res.Timings.Postprocess = time.Since(t0) - res.Timings.Scripts + c.scriptsBefore
	for _, n := range pp.Notes {
		c.logf("%s", n)
	}
	note, err := ensureModulesDep(work, pp.KernelVersion)
	if err != nil {
		return res, err
	}
	if note != "" {
		res.Notes = append(res.Notes, note)
		c.logf("%s", note)
	}
	note, err = ensureInitramfs(work, pp.KernelVersion, tf.InitramfsModules, c.opts.InitramfsInit)
	if err != nil {
		return res, err
	}
	if note != "" {
		res.Notes = append(res.Notes, note)
		c.logf("%s", note)
	}

	// Commit.
	t0 = time.Now()
	ts := c.timestamp(sol.Install)
	res.Timestamp = ts
	meta := object.Metadata{}
	if version != "" {
		meta.Set(KeyVersion, gvariant.NewVariant("s", version))
	}
	meta.Set(KeyInputHash, gvariant.NewVariant("s", res.InputHash))
	commitmeta.SetPackageList(&meta, packageList(sol.Install))
	if pp.KernelVersion != "" {
		commitmeta.SetBootable(&meta, pp.KernelVersion)
	}
	subject := tf.Ref
	if version != "" {
		subject += " " + version
	}
	commit, err := commitTree(ctx, r, work, repo.CommitOptions{
		Branch: tf.Ref, Parent: parent, Orphan: parent.IsZero(), Subject: subject,
		Timestamp: time.Unix(ts, 0).UTC(), Metadata: meta,
		TreeOptions: repo.TreeOptions{Workers: c.opts.Workers},
	}, c.opts.Sign)
	if err != nil {
		return res, err
	}
	res.Commit = commit.String()
	res.Changed = true
	res.Timings.Commit = time.Since(t0)
	c.logf("Wrote commit %s for %s%s", commit, tf.Ref, map[bool]string{true: " (version " + version + ")", false: ""}[version != ""])
	if c.opts.PostCommit != nil {
		if err := c.opts.PostCommit(ctx, r, tf.Ref, parent, commit); err != nil {
			return res, fmt.Errorf("after commit %s: %w", commit, err)
		}
	}
	return res, nil
}

// commitTree writes dir as a commit, signs it, then moves the ref: any
// failure before the ref moves leaves the repository's refs untouched.
func commitTree(ctx context.Context, r *repo.Repo, dir string, co repo.CommitOptions, signFn func(*repo.Repo, object.Checksum) error) (object.Checksum, error) {
	// The commit is visible before it is signed and its ref moves: hold
	// the repository lock until then so that no prune deletes it.
	unlock, err := r.LockShared()
	if err != nil {
		return object.Checksum{}, err
	}
	defer unlock()
	var commit object.Checksum
	err = r.Update(ctx, func(tx *repo.Transaction) error {
		tree, err := tx.WriteDir(ctx, dir, co.TreeOptions)
		if err != nil {
			return fmt.Errorf("commit tree: %w", err)
		}
		if commit, err = tx.WriteCommit(tree, co); err != nil {
			return fmt.Errorf("write commit: %w", err)
		}
		return nil
	})
	if err != nil {
		return object.Checksum{}, err
	}
	if signFn != nil {
		if err := signFn(r, commit); err != nil {
			return object.Checksum{}, fmt.Errorf("sign commit %s: %w", commit, err)
		}
	}
	if err := r.SetRef("", co.Branch, commit); err != nil {
		return object.Checksum{}, fmt.Errorf("move ref %s: %w", co.Branch, err)
	}
	return commit, nil
}

func repoIDs(rs []*rpmmd.Repo) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Config.ID)
	}
	return out
}

func (c *composer) loadRepos(ctx context.Context) ([]*rpmmd.Package, []*rpmmd.Repo, error) {
	tf := c.tf
	if len(tf.Repos) == 0 {
		return nil, nil, fmt.Errorf("%s: no repos given", tf.Path)
	}
	cfgs, err := rpmmd.FindRepos(tf.RepoDirs, tf.Repos, rpmmd.Vars{"releasever": tf.Releasever, "basearch": "x86_64"})
	if err != nil {
		return nil, nil, err
	}
	repos := make([]*rpmmd.Repo, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		if !cfg.Enabled {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			repos[i], errs[i] = rpmmd.Load(ctx, c.opts.Fetcher, cfg, c.opts.CacheDir)
		}()
	}
	wg.Wait()
	var pool []*rpmmd.Package
	var loaded []*rpmmd.Repo
	for i := range cfgs {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		if repos[i] != nil {
			pool = append(pool, repos[i].Packages...)
			loaded = append(loaded, repos[i])
		}
	}
	return pool, loaded, nil
}

// inputHash digests everything that determines the tree: the treefile's
// effective content (add-files by content, not path) and the exact
// packages. The compose code's own behaviour is versioned by the prefix.
func (c *composer) inputHash(pkgs []*rpmmd.Package) (string, error) {
	tf := c.tf
	type addFile struct{ Dest, SHA256 string }
	var adds []addFile
	for _, a := range tf.AddFiles {
		b, err := os.ReadFile(a.Src)
		if err != nil {
			return "", fmt.Errorf("add-files: %w", err)
		}
		sum := sha256.Sum256(b)
		adds = append(adds, addFile{a.Dest, hex.EncodeToString(sum[:])})
	}
	var pk []string
	for _, p := range pkgs {
		pk = append(pk, p.NEVRA()+" "+p.Checksum.String())
	}
	in := map[string]any{
		"format": "os-update-compose-1",
		"ref":    tf.Ref, "packages": tf.Packages, "exclude": tf.ExcludePackages,
		"remove-files": tf.RemoveFiles, "remove-from-packages": tf.RemoveFromPackages, "add-files": adds,
		"postprocess": tf.Postprocess, "units": tf.Units, "default-target": tf.DefaultTarget,
		"etc-group-members": tf.EtcGroupMembers, "mutate-os-release": tf.MutateOSRelease,
		"automatic-version-prefix": tf.AutomaticVersionPrefix, "releasever": tf.Releasever,
		"documentation": tf.Documentation, "recommends": tf.Recommends, "installed": pk,
		"source-date-epoch": c.opts.SourceDateEpoch,
	}
	b, err := json.Marshal(in) // map keys are sorted: canonical
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (c *composer) timestamp(pkgs []*rpmmd.Package) int64 {
	if c.opts.SourceDateEpoch != nil {
		return *c.opts.SourceDateEpoch
	}
	var ts int64
	for _, p := range pkgs {
		if p.BuildTime > ts {
			ts = p.BuildTime
		}
	}
	return ts
}

// nextVersion implements automatic-version-prefix: P, then P.1, P.2, ...
func nextVersion(prefix, prev string) string {
	if prefix == "" {
		return ""
	}
	if prev == prefix {
		return prefix + ".1"
	}
	if rest, ok := strings.CutPrefix(prev, prefix+"."); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
			return prefix + "." + strconv.Itoa(n+1)
		}
	}
	return prefix
}

// packageList is the recorded form of the installed packages.
func packageList(pkgs []*rpmmd.Package) []commitmeta.Package {
	out := make([]commitmeta.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = commitmeta.Package{Name: p.Name, Epoch: strconv.Itoa(p.EVR.Epoch), Version: p.EVR.Version, Release: p.EVR.Release, Arch: p.Arch}
	}
	return out
}

// download fetches every package (in parallel), verifying the repository
// checksum and, with gpgcheck, the OpenPGP header signature.
func (c *composer) download(ctx context.Context, pkgs []*rpmmd.Package) ([]*rpmfile.Package, error) {
	got, err := rpmmd.DownloadAll(ctx, c.opts.Fetcher, pkgs, filepath.Join(c.opts.CacheDir, "packages"), c.opts.Workers)
	if err != nil {
		return nil, err
	}
	out := make([]*rpmfile.Package, len(got))
	for i, d := range got {
		out[i] = d.File
		if d.Signer != 0 {
			c.res.Packages[i].Signer = fmt.Sprintf("%016X", d.Signer)
		}
	}
	c.logf("Downloaded and verified %d packages", len(pkgs))
	return out, nil
}

// installedPkg is a package as unpacked in the tree.
type installedPkg struct {
	nevra string
	name  string
	files []rpmfile.File
}

// install unpacks every package in order with %pre before and %post after
// it, then runs every %posttrans.
func (c *composer) install(ctx context.Context, work string, pkgs []*rpmmd.Package, files []*rpmfile.Package) ([]installedPkg, error) {
	root, err := treefs.Open(work)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	runner := &scriptlet.Runner{Bwrap: c.opts.Bwrap, Log: c.log}
	var out []installedPkg
	var post []rpmfile.Script
	var unpackT, scriptT time.Duration
	runScript := func(s rpmfile.Script, arg string) error {
		t0 := time.Now()
		defer func() { scriptT += time.Since(t0) }()
		return runner.Run(ctx, work, scriptlet.Script{
			Name: "%" + s.Kind + " scriptlet of " + s.Package, Prog: s.Prog, Body: s.Body, Args: []string{arg},
		})
	}
	for i, f := range files {
		scripts := f.Scripts()
		for _, s := range scripts {
			if s.Kind == "pre" {
				if err := runScript(s, "1"); err != nil {
					return nil, err
				}
			}
		}
		t0 := time.Now()
		acct, err := rpmfile.LoadAccounts(root)
		if err != nil {
			return nil, err
		}
		written, err := f.Unpack(ctx, root, acct, rpmfile.UnpackOptions{
			NoDocs: !c.tf.Documentation,
			Warn:   func(m string) { c.logf("warning: %s", m) },
		})
		if err != nil {
			return nil, err
		}
		unpackT += time.Since(t0)
		out = append(out, installedPkg{nevra: pkgs[i].NEVRA(), name: pkgs[i].Name, files: written})
		for _, s := range scripts {
			switch s.Kind {
			case "post":
				if err := runScript(s, "1"); err != nil {
					return nil, err
				}
			case "posttrans":
				post = append(post, s)
			}
		}
	}
	// %triggerin: every package is new, so each trigger fires once for
	// each installed package it names, after all %post scriptlets.
	for _, f := range files {
		for _, tr := range f.InstallTriggers() {
			for _, q := range pkgs {
				if !tr.Matches(q.Name, q.EVR) {
					continue
				}
				t0 := time.Now()
				err := runner.Run(ctx, work, scriptlet.Script{
					Name: "%triggerin scriptlet of " + f.NEVRA() + " for " + q.NEVRA(),
					Prog: tr.Script.Prog, Body: tr.Script.Body, Args: []string{"1", "1"},
				})
				scriptT += time.Since(t0)
				if err != nil {
					return nil, err
				}
			}
		}
	}
	for _, s := range post {
		if err := runScript(s, "0"); err != nil {
			return nil, err
		}
	}
	c.res.Timings.Unpack = unpackT
	c.res.Timings.Scripts = scriptT
	c.scriptsBefore = scriptT
	c.logf("Installed %d packages", len(files))
	return out, nil
}

// writeRPMDB records the installed packages in the tree's rpm database
// (rpmdb.DBPath) with rpm itself, and adds the links other rpm builds
// look through.
func (c *composer) writeRPMDB(ctx context.Context, work string, files []*rpmfile.Package, ts int64) error {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path()
	}
	tool := &rpmdb.Tool{RPM: c.opts.RPM, Bwrap: c.opts.Bwrap, SourceDateEpoch: ts}
	if err := tool.Install(ctx, work, paths); err != nil {
		return err
	}
	root, err := treefs.Open(work)
	if err != nil {
		return err
	}
	defer root.Close()
	return rpmdb.MakeLinks(root)
}

// treefileOps applies the treefile's tree edits, then its postprocess
// scripts (in the sandbox, with /etc still in place).
func (c *composer) treefileOps(ctx context.Context, work string, installed []installedPkg, version string) error {
	tf := c.tf
	root, err := treefs.Open(work)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, rp := range tf.RemoveFromPackages {
		var res []*regexp.Regexp
		for _, p := range rp.Paths {
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				return fmt.Errorf("remove-from-packages %s: %w", rp.Package, err)
			}
			res = append(res, re)
		}
		found := false
		for _, ip := range installed {
			if ip.name != rp.Package {
				continue
			}
			found = true
			for _, f := range ip.files {
				for _, re := range res {
					if re.MatchString(f.Path) {
						if err := root.RemoveAll(f.Path); err != nil {
							return fmt.Errorf("remove-from-packages: %w", err)
						}
						break
					}
				}
			}
		}
		if !found {
			return fmt.Errorf("remove-from-packages: package %s is not installed", rp.Package)
		}
	}
	for _, p := range tf.RemoveFiles {
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("remove-files %s: %w", p, err)
		}
	}
	for _, a := range tf.AddFiles {
		f, err := os.Open(a.Src)
		if err != nil {
			return fmt.Errorf("add-files: %w", err)
		}
		st, err := f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", a.Src)
		}
		if err == nil {
			err = root.WriteFile(a.Dest, f, uint32(st.Mode().Perm()), 0, 0)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("add-files %s: %w", a.Dest, err)
		}
	}
	for _, u := range tf.Units {
		if strings.ContainsRune(u, '/') {
			return fmt.Errorf("units: bad unit name %q", u)
		}
		if _, err := root.Lstat("/usr/lib/systemd/system/" + u); err != nil {
			return fmt.Errorf("units: %s is not installed in /usr/lib/systemd/system", u)
		}
		if err := root.Symlink("/usr/lib/systemd/system/"+u, "/etc/systemd/system/multi-user.target.wants/"+u, 0, 0); err != nil {
			return fmt.Errorf("units: %w", err)
		}
	}
	if tf.DefaultTarget != "" {
		if err := root.Symlink("/usr/lib/systemd/system/"+tf.DefaultTarget, "/etc/systemd/system/default.target", 0, 0); err != nil {
			return fmt.Errorf("default-target: %w", err)
		}
	}
	if tf.MutateOSRelease != "" && version != "" {
		if err := mutateOSRelease(root, tf.MutateOSRelease, version); err != nil {
			return err
		}
	}
	if len(tf.Postprocess) > 0 {
		runner := &scriptlet.Runner{Bwrap: c.opts.Bwrap, Log: c.log}
		for i, body := range tf.Postprocess {
			t0 := time.Now()
			err := runner.Run(ctx, work, scriptlet.Script{Name: fmt.Sprintf("treefile postprocess script %d", i+1), Prog: []string{"/bin/sh", "-e"}, Body: body})
			c.res.Timings.Scripts += time.Since(t0)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// mutateOSRelease replaces the release in VERSION and PRETTY_NAME with the
// compose version and adds OSTREE_VERSION, in /usr/lib/os-release (or
// /etc/os-release when that is the real file).
func mutateOSRelease(root *treefs.Root, release, version string) error {
	path := "/usr/lib/os-release"
	if _, err := root.Lstat(path); err != nil {
		path = "/etc/os-release"
	}
	b, err := root.ReadFile(path)
	if err != nil {
		return fmt.Errorf("mutate-os-release: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.HasPrefix(l, "OSTREE_VERSION=") {
			continue
		}
		if strings.HasPrefix(l, "VERSION=") || strings.HasPrefix(l, "PRETTY_NAME=") {
			l = strings.ReplaceAll(l, release, version)
		}
		lines = append(lines, l)
	}
	lines = append(lines, "OSTREE_VERSION='"+version+"'")
	st, _ := root.Lstat(path)
	mode := uint32(0o644)
	if st != nil {
		mode = st.Mode & 0o7777
	}
	return root.WriteFile(path, strings.NewReader(strings.Join(lines, "\n")+"\n"), mode, 0, 0)
}

type manifestPackage struct {
	PackageReport
	Config []string `json:"config,omitempty"`
}

// writeManifest records the installed packages in the tree.
func writeManifest(work string, pkgs []PackageReport, installed []installedPkg) error {
	var list []manifestPackage
	for i, p := range pkgs {
		p.Signer = ""
		mp := manifestPackage{PackageReport: p}
		for _, f := range installed[i].files {
			if f.Config() {
				mp.Config = append(mp.Config, f.Path)
			}
		}
		list = append(list, mp)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].NEVRA < list[j].NEVRA })
	b, err := json.MarshalIndent(map[string]any{"packages": list}, "", "  ")
	if err != nil {
		return err
	}
	root, err := treefs.Open(work)
	if err != nil {
		return err
	}
	defer root.Close()
	return root.WriteFile(ManifestPath, strings.NewReader(string(b)+"\n"), 0o644, 0, 0)
}

// writeJSON writes v atomically (temp file, rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), 0o644, true)
}
