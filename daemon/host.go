package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/osupdate/os-update/compose/layer"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/health"
	"github.com/osupdate/os-update/internal/deployinfo"
	"github.com/osupdate/os-update/internal/osrelease"
	"github.com/osupdate/os-update/internal/progress"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/container"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/sysroot"
)

// HostConfig configures the backend that works on a real sysroot.
type HostConfig struct {
	Sysroot        string // "/" on a booted host
	SysrootOptions sysroot.Options
	// RemotesDirs are remotes.d directories besides the repository's own
	// (default: <sysroot>/etc/ostree/remotes.d).
	RemotesDirs []string
	// PullOptions are defaults for every pull (timeouts, workers).
	PullOptions pull.Options
	// ReposDir holds the package sources for layering (default:
	// <sysroot>/etc/yum.repos.d); RPMCacheDir caches their metadata and
	// packages (default: <sysroot>/var/cache/os-update).
	ReposDir, RPMCacheDir string
	// Health is where the boot health checks are (default: those of the
	// running system, health.ForRoot("/")).
	Health *health.Config
}

// HostBackend performs operations on a sysroot: pulls from the origin's
// remote, deploys, rolls back, edits kernel arguments and cleans up.
type HostBackend struct{ cfg HostConfig }

// NewHostBackend returns a backend for cfg.Sysroot.
func NewHostBackend(cfg HostConfig) *HostBackend {
	if cfg.RemotesDirs == nil {
		cfg.RemotesDirs = []string{filepath.Join(cfg.Sysroot, "etc/ostree/remotes.d")}
	}
	return &HostBackend{cfg: cfg}
}

func (b *HostBackend) open() (*sysroot.Sysroot, error) {
	s, err := sysroot.Open(b.cfg.Sysroot, b.cfg.SysrootOptions)
	if err != nil {
		return nil, fmt.Errorf("open sysroot %s: %w", b.cfg.Sysroot, err)
	}
	return s, nil
}

// Status lists the deployments, the staged one first.
func (b *HostBackend) Status(ctx context.Context) (api.Status, error) {
	s, err := b.open()
	if err != nil {
		return api.Status{}, err
	}
	defer s.Close()
	// The roles are the sysroot's (see sysroot.Status), shared with
	// rollback, cleanup and `admin status`, and so is the schema.
	st := api.Status{Deployments: deployinfo.Describe(s), Warnings: s.Warnings}
	if _, err := s.BootCount(); err != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("boot counter: %v", err))
	}
	return st, nil
}

// Repair removes what an interrupted operation left: deployments and boot
// directories the boot configuration does not reference, and staging
// directories of the repository, and the work directories of layerings.
func (b *HostBackend) Repair(ctx context.Context) error {
	s, err := b.open()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing deployed yet
		}
		return err
	}
	defer s.Close()
	if _, err := s.Cleanup(ctx, false); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	// A layering killed with the daemon left its checkout behind; no
	// transaction runs yet, so every work directory is abandoned.
	if err := layer.RemoveAbandoned(filepath.Join(s.Repo().Path(), "tmp")); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	return nil
}

// Run performs one operation.
func (b *HostBackend) Run(ctx context.Context, req Request, rep Reporter) (Result, error) {
	s, err := b.open()
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	// One view of the deployments for the whole operation; the
	// transaction's from-commit is the current deployment's.
	st := s.Status()
	res, err := b.run(ctx, s, st, req, &tallyReporter{Reporter: rep})
	if res.From == "" && st.Current != nil {
		res.From = st.Current.Commit.String()
	}
	return res, err
}

func (b *HostBackend) run(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter) (Result, error) {
	switch req.Kind {
	case KindUpgrade:
		if imageOf(st.Current) != "" {
			return b.imageUpgrade(ctx, s, st, req, rep, "")
		}
		return b.upgrade(ctx, s, st, req, rep, "")
	case KindRebase:
		if container.IsSourceRef(req.Refspec) {
			return b.imageUpgrade(ctx, s, st, req, rep, req.Refspec)
		}
		return b.upgrade(ctx, s, st, req, rep, req.Refspec)
	case KindDeploy:
		return b.deployRevision(ctx, s, st, req, rep)
	case KindRollback:
		return b.rollback(ctx, s, rep)
	case KindKargs:
		return b.kargs(ctx, s, req, rep)
	case KindCleanup:
		return b.cleanup(ctx, s, st, req, rep)
	case KindPkgChange:
		return b.pkgChange(ctx, s, st, req, rep)
	case KindHealthCheck:
		return b.healthCheck(ctx, s, st, req, rep)
	}
	return Result{}, fmt.Errorf("unknown operation %q", req.Kind)
}

// current is the deployment operations start from (Status.Current).
func current(st *sysroot.Status) (*sysroot.Deployment, error) {
	if st.Current == nil {
		return nil, errors.New("no deployment: install one first (os-update admin deploy)")
	}
	return st.Current, nil
}

func (b *HostBackend) source(r *repo.Repo, name string) (*pull.Source, error) {
	store := &remote.Store{Repo: r, ExtraDirs: b.cfg.RemotesDirs}
	rm, err := store.Get(name) // its errors name the remote
	if err != nil {
		return nil, err
	}
	return pull.FromRemote(store, rm)
}

// pull brings ref (or REF@CHECKSUM) from a remote and returns the commit
// the remote resolved it to. metadataOnly fetches commit objects only,
// depth parents of them too (-1: the whole history).
func (b *HostBackend) pull(ctx context.Context, s *sysroot.Sysroot, remoteName, ref string, metadataOnly bool, depth int, rep Reporter) (object.Checksum, error) {
	src, err := b.source(s.Repo(), remoteName)
	if err != nil {
		return object.Checksum{}, err
	}
	opts := b.cfg.PullOptions
	opts.Refs = []string{ref}
	opts.CommitMetadataOnly, opts.Depth = metadataOnly, depth
	tally, ok := rep.(*tallyReporter)
	if !ok {
		tally = &tallyReporter{Reporter: rep}
	}
	opts.Progress = tally.pullProgress()
	opts.Log = func(format string, args ...any) { rep.Message(fmt.Sprintf(format, args...)) }
	opts.Retry = func(e pull.RetryEvent) {
		rep.Message(progress.RetryLine(e.Attempt, e.Attempts, e.URL, e.Err, e.Backoff))
	}
	res, err := pull.Pull(ctx, s.Repo(), src, opts)
	if err != nil {
		return object.Checksum{}, fmt.Errorf("pull %s:%s: %w", remoteName, ref, err)
	}
	if !metadataOnly {
		how := plural(res.ObjectsFetched, "object")
		if res.DeltasUsed > 0 {
			how = fmt.Sprintf("static delta (%s) and %s", plural(res.DeltaParts, "part"), how)
		}
		rep.Message(fmt.Sprintf("Fetched %s in %d requests: %s", progress.Bytes(uint64(res.BytesFetched)), res.Requests, how))
	}
	name, _, _ := strings.Cut(ref, "@") // REF@CHECKSUM reports REF
	c, ok := res.Refs[name]
	if !ok {
		return object.Checksum{}, fmt.Errorf("pull %s:%s: the remote did not resolve the ref", remoteName, ref)
	}
	return c, nil
}

// plural is "1 part", "2 parts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// tallyReporter adds up the pulls of a stage, so that the stage's
// progress counts every byte it fetched: an upgrade pulls the signed
// commit first, then its tree.
type tallyReporter struct {
	Reporter
	mu   sync.Mutex
	base api.Progress // the stage's finished pulls
	cur  api.Progress // the running pull
}

func (t *tallyReporter) Stage(name string) {
	t.mu.Lock()
	t.base, t.cur = api.Progress{}, api.Progress{}
	t.mu.Unlock()
	t.Reporter.Stage(name)
}

// pullProgress starts a pull of the stage and returns its progress
// callback.
func (t *tallyReporter) pullProgress() func(pull.Progress) {
	t.mu.Lock()
	t.base = api.Progress{
		BytesDone: t.base.BytesDone + t.cur.BytesDone, ObjectsDone: t.base.ObjectsDone + t.cur.ObjectsDone,
		ObjectsTotal: t.base.ObjectsTotal + t.cur.ObjectsTotal, PartsDone: t.base.PartsDone + t.cur.PartsDone,
		PartsTotal: t.base.PartsTotal + t.cur.PartsTotal,
	}
	t.cur = api.Progress{}
	t.mu.Unlock()
	return func(p pull.Progress) {
		t.mu.Lock()
		t.cur = api.Progress{BytesDone: uint64(p.BytesDone), BytesExpected: uint64(p.BytesTotal),
			ObjectsDone: uint64(p.ObjectsDone), ObjectsTotal: uint64(p.ObjectsTotal),
			PartsDone: uint32(p.PartsDone), PartsTotal: uint32(p.PartsTotal)}
		out := api.Progress{
			BytesDone: t.base.BytesDone + t.cur.BytesDone, ObjectsDone: t.base.ObjectsDone + t.cur.ObjectsDone,
			ObjectsTotal: t.base.ObjectsTotal + t.cur.ObjectsTotal, PartsDone: t.base.PartsDone + t.cur.PartsDone,
			PartsTotal: t.base.PartsTotal + t.cur.PartsTotal,
		}
		if t.cur.BytesExpected > 0 { // else unknown, for the stage too
			out.BytesExpected = t.base.BytesDone + t.cur.BytesExpected
		}
		t.mu.Unlock()
		t.Reporter.Progress(out)
	}
}

// osID is the ID of a commit's os-release, or "" if it has none.
func osID(r *repo.Repo, c object.Checksum) string {
	v, err := r.ViewCommit(c)
	if err != nil {
		return ""
	}
	vals, err := osrelease.Read(osrelease.CommitPaths, func(p string) ([]byte, error) {
		return v.ReadFile(p, 1<<20)
	}, func(err error) bool { return errors.Is(err, fs.ErrNotExist) })
	if err != nil {
		return ""
	}
	return vals["ID"]
}

// remoteOSID reads ID= of a commit whose object (but not necessarily its
// tree) is local: it fetches only the objects on the way to os-release.
func (b *HostBackend) remoteOSID(ctx context.Context, r *repo.Repo, remoteName string, c object.Checksum) (string, error) {
	src, err := b.source(r, remoteName)
	if err != nil {
		return "", err
	}
	for _, p := range osrelease.CommitPaths {
		err := pull.FetchPath(ctx, r, src, b.cfg.PullOptions, c, p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if id := osID(r, c); id != "" {
			return id, nil
		}
	}
	return "", nil
}

// upgrade pulls the origin (or, for a rebase, the new refspec) and deploys
// the result if it is new. Everything that can refuse the target is
// decided from its signed commit object (a metadata-only pull, which moves
// no ref) before any of its tree is fetched.
func (b *HostBackend) upgrade(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter, rebaseTo string) (Result, error) {
	cur, err := current(st)
	if err != nil {
		return Result{}, err
	}
	refspec := cur.Refspec()
	if rebaseTo != "" {
		refspec = rebaseTo
	}
	remoteName, ref, err := repo.ParseRefspec(refspec)
	if err != nil {
		return Result{}, fmt.Errorf("origin %q: %w", refspec, err)
	}
	if remoteName == "" {
		return Result{}, fmt.Errorf("origin %q is a local ref: there is no remote to update from (rebase to REMOTE:REF)", refspec)
	}
	res := Result{From: cur.Commit.String()}
	// A check fetches only the signed commit: it downloads no update, and
	// its stage says so.
	if req.Check || req.Preview {
		rep.Stage("check")
	} else {
		rep.Stage("download")
	}
	c, err := b.pull(ctx, s, remoteName, ref, true, 0, rep)
	if err != nil {
		return res, err
	}
	newCm, err := s.Repo().LoadCommit(c)
	if err != nil {
		return res, err
	}
	installed := installedAs(s.Repo(), st, refspec, c, rebaseTo != "")
	res.Cached = &api.CachedUpdate{Refspec: refspec, Checksum: c.String(), Version: newCm.Version(),
		Timestamp: int64(newCm.Timestamp), CheckedAt: time.Now().Unix(), Available: installed == ""}
	if installed != "" {
		res.NoUpdate = true
		if c != cur.Commit {
			rep.Message(fmt.Sprintf("%s %s is already %s", newCm.Version(), c, installed))
		}
		return res, nil
	}
	// A rebase to another branch allows an older head, as libostree's
	// `admin switch` does: two branches have no chronological order. On the
	// same branch an older head is a rollback attack or a mistake.
	switchesBranch := rebaseTo != "" && rebaseTo != cur.Refspec()
	if !req.AllowDowngrade && !switchesBranch {
		if base, baseTime, older := newerThan(s.Repo(), cur.Commit, newCm.Timestamp); older {
			return res, fmt.Errorf("%s (%s) is older than the current commit %s (%s): refusing to downgrade (pass --allow-downgrade, or deploy a chosen version with os-update deploy)",
				c, fmtUnix(newCm.Timestamp), base, fmtUnix(baseTime))
		}
	}
	if rebaseTo != "" {
		oldID := osID(s.Repo(), cur.Commit)
		newID, err := b.remoteOSID(ctx, s.Repo(), remoteName, c)
		if err != nil {
			return res, fmt.Errorf("rebase %s: read os-release: %w", refspec, err)
		}
		if oldID != "" && newID != "" && oldID != newID {
			return res, fmt.Errorf("%s is a different operating system (%s, current %s): install it in its own stateroot instead of rebasing", refspec, newID, oldID)
		}
	}
	if req.Check || req.Preview {
		rep.Message(fmt.Sprintf("Update available: %s %s", newCm.Version(), c))
		if req.Preview {
			// Base against base: layered packages and overrides are
			// applied again on top of the new base.
			diff, err := diffPackages(s.Repo(), baseOf(s.Repo(), cur.Commit), c)
			if err != nil {
				rep.Message(fmt.Sprintf("No package changes to show: %v", err))
			} else {
				for _, line := range formatDiff(diff) {
					rep.Message(line)
				}
			}
		}
		return res, nil
	}
	// The tree of exactly the commit decided on; this moves the ref.
	if _, err := b.pull(ctx, s, remoteName, ref+"@"+c.String(), false, 0, rep); err != nil {
		return res, err
	}
	res.To = c.String() // what this transaction brings in (checks bring nothing)
	if req.DownloadOnly {
		rep.Message(fmt.Sprintf("Downloaded %s %s; deploy it with os-update upgrade", newCm.Version(), c))
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	rep.Stage("deploy")
	deployed, err := b.deployTarget(ctx, s, cur, c, refspec, req.Stage, rep)
	if err != nil {
		return res, err
	}
	res.To = deployed.String()
	res.Deployed = true
	if req.Stage {
		rep.Message(fmt.Sprintf("Staged %s %s; it becomes the default when the system shuts down (os-update finalize)", newCm.Version(), c))
	} else {
		rep.Message(fmt.Sprintf("Deployed %s %s; it boots next", newCm.Version(), c))
	}
	return res, nil
}

// installedAs says how commit c of refspec is already installed ("the
// current deployment", "staged", "the pending deployment"), or "" if it
// is not. For a rebase only a deployment of the same refspec counts.
func installedAs(r *repo.Repo, st *sysroot.Status, refspec string, c object.Checksum, rebase bool) string {
	cur := st.Current
	// A deployment with layered packages counts by its base commit.
	is := func(d *sysroot.Deployment) bool { return d.Commit == c || baseOf(r, d.Commit) == c }
	if is(cur) && (!rebase || cur.Refspec() == refspec) {
		return "the current deployment"
	}
	if d := st.Staged; d != nil && is(d) && d.Refspec() == refspec {
		return "staged"
	}
	if d := st.Pending; d != nil && d != cur && is(d) && d.Refspec() == refspec {
		return "the pending deployment"
	}
	return ""
}

// newerThan reports whether the current commit is newer than timestamp ts.
func newerThan(r *repo.Repo, cur object.Checksum, ts uint64) (object.Checksum, uint64, bool) {
	cm, err := r.LoadCommit(cur)
	if err != nil {
		return cur, 0, false
	}
	return cur, cm.Timestamp, ts < cm.Timestamp
}

func fmtUnix(ts uint64) string { return time.Unix(int64(ts), 0).UTC().Format(time.RFC3339) }

// deployRevision deploys a version or checksum of the origin's history.
func (b *HostBackend) deployRevision(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter) (Result, error) {
	cur, err := current(st)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: cur.Commit.String()}
	remoteName, ref, err := repo.ParseRefspec(cur.Refspec())
	if err != nil {
		return res, err
	}
	rep.Stage("download")
	var head object.Checksum
	if remoteName != "" {
		// One metadata-only pull brings the history (commit objects
		// only) and names the head; it moves no ref.
		head, err = b.pull(ctx, s, remoteName, ref, true, -1, rep)
	} else {
		head, err = s.Repo().ReadRef("", ref)
	}
	if err != nil {
		return res, err
	}
	target, err := s.Repo().FindInHistory(head, req.Revision)
	if err != nil {
		return res, fmt.Errorf("deploy %s: %w", req.Revision, err)
	}
	if err := b.fetchCommit(ctx, s, remoteName, ref, target); err != nil {
		return res, fmt.Errorf("deploy %s: %w", req.Revision, err)
	}
	res.To = target.String()
	if target == cur.Commit || target == baseOf(s.Repo(), cur.Commit) {
		return res, fmt.Errorf("deploy %s: %s is already the current deployment", req.Revision, target)
	}
	rep.Stage("deploy")
	deployed, err := b.deployTarget(ctx, s, cur, target, cur.Refspec(), false, rep)
	if err != nil {
		return res, err
	}
	res.To = deployed.String()
	res.Deployed = true
	version := ""
	if cm, err := s.Repo().LoadCommit(target); err == nil {
		version = cm.Version()
	}
	rep.Message(fmt.Sprintf("Deployed %s %s; it boots next", version, target))
	return res, nil
}

func hasCommit(r *repo.Repo, c object.Checksum) bool {
	ok, _ := r.HasObject(c, object.TypeCommit)
	return ok
}

func (b *HostBackend) rollback(ctx context.Context, s *sysroot.Sysroot, rep Reporter) (Result, error) {
	rep.Stage("deploy")
	d, err := s.Rollback(ctx)
	if err != nil {
		return Result{}, err
	}
	rep.Message(fmt.Sprintf("Rolled back to %s %s; it boots next", d.Version, d.Commit))
	return Result{To: d.Commit.String(), Deployed: true}, nil
}

func (b *HostBackend) kargs(ctx context.Context, s *sysroot.Sysroot, req Request, rep Reporter) (Result, error) {
	if len(s.Deployments) == 0 {
		return Result{}, errors.New("no deployment")
	}
	rep.Stage("deploy")
	k, err := s.SetKargs(ctx, 0, sysroot.KargsEdit{Append: req.KargsAppend, Delete: req.KargsDelete, Replace: req.KargsReplace})
	if err != nil {
		return Result{}, err
	}
	rep.Message("Kernel arguments: " + k.String())
	return Result{Deployed: true}, nil
}

func (b *HostBackend) cleanup(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter) (Result, error) {
	rep.Stage("cleanup")
	// Every step prunes what it made unreachable; the report adds them up.
	var freed repo.PruneResult
	count := func(cr *sysroot.CleanupResult) {
		if cr != nil && cr.Pruned != nil {
			freed.Pruned += cr.Pruned.Pruned
			freed.BytesFree += cr.Pruned.BytesFree
		}
	}
	// The roles are sysroot.Status's; deployments are named, so removing
	// one never moves another. A staged pending deployment is discarded
	// with its record (run/ostree/staged-deployment), as rpm-ostree
	// cleanup -p does. Offline the default counts as pending (nothing
	// was booted), as before.
	var remove []*sysroot.Deployment
	if req.CleanupPending && st.Pending != nil {
		remove = append(remove, st.Pending)
	}
	if req.CleanupRollback && st.Rollback != nil {
		remove = append(remove, st.Rollback)
	}
	for _, d := range remove {
		cr, err := s.Undeploy(ctx, d.OS+"/"+d.Name())
		count(cr)
		if err != nil {
			return Result{}, fmt.Errorf("cleanup: %w", err)
		}
		if d.Staged {
			rep.Message(fmt.Sprintf("Removed staged deployment %s", d.Name()))
			continue
		}
		rep.Message(fmt.Sprintf("Removed deployment %s", d.Name()))
	}
	if req.CleanupCache {
		if err := os.RemoveAll(filepath.Join(s.Repo().Path(), "tmp", "cache")); err != nil {
			return Result{}, err
		}
	}
	if req.CleanupRPMCache {
		if err := b.cleanupRPMCache(s); err != nil {
			return Result{}, fmt.Errorf("cleanup rpm cache: %w", err)
		}
		rep.Message("Emptied the package cache " + b.rpmCacheDir())
	}
	if req.CleanupRefs {
		removed, err := removeUnusedRemoteRefs(s)
		if err != nil {
			return Result{}, err
		}
		for _, r := range removed {
			rep.Message("Removed ref " + r)
		}
	}
	cr, err := s.Cleanup(ctx, true)
	count(cr)
	if err != nil {
		return Result{}, err
	}
	rep.Message(fmt.Sprintf("Freed %d objects (%d bytes)", freed.Pruned, freed.BytesFree))
	return Result{}, nil
}

// removeUnusedRemoteRefs deletes the remote-tracking refs
// (refs/remotes/REMOTE/REF) that no deployment, staged ones included,
// follows; the prune after it then frees what only they kept. Local refs
// are left alone: they are the administrator's.
func removeUnusedRemoteRefs(s *sysroot.Sysroot) ([]string, error) {
	used := map[string]bool{}
	for _, d := range s.Status().Deployments {
		used[d.Refspec()] = true
	}
	refs, err := s.Repo().ListRefs()
	if err != nil {
		return nil, fmt.Errorf("cleanup refs: %w", err)
	}
	var removed []string
	for _, r := range refs {
		if r.Remote == "" || used[r.Refspec()] {
			continue
		}
		if err := s.Repo().SetRef(r.Remote, r.Name, object.Checksum{}); err != nil {
			return removed, fmt.Errorf("cleanup refs: %w", err)
		}
		removed = append(removed, r.Refspec())
	}
	return removed, nil
}

// fetchCommit makes sure a commit of the origin's history is complete
// locally.
func (b *HostBackend) fetchCommit(ctx context.Context, s *sysroot.Sysroot, remoteName, ref string, c object.Checksum) error {
	if hasCommit(s.Repo(), c) && !s.Repo().IsPartial(c) {
		return nil
	}
	if remoteName == "" {
		return fmt.Errorf("commit %s is not in the repository", c)
	}
	src, err := b.source(s.Repo(), remoteName)
	if err != nil {
		return err
	}
	opts := b.cfg.PullOptions
	opts.Refs = []string{ref + "@" + c.String()}
	if _, err := pull.Pull(ctx, s.Repo(), src, opts); err != nil {
		return fmt.Errorf("pull %s: %w", c, err)
	}
	return nil
}

// DbDiff compares two revisions, as rpm-ostree's db diff does: without
// arguments from the current (booted, offline the default) deployment to
// the pending one (staged, or a default that is not the booted one), and
// when nothing is pending from the rollback deployment to the current one,
// so the diff always reads from older to newer. With only FROM, TO is the
// deployment that boots next. A revision is a deployment's version or
// checksum, a version in a deployment's history, or anything ResolveRev
// takes (a ref or checksum).
func (b *HostBackend) DbDiff(ctx context.Context, from, to string) (*api.PackageDiff, error) {
	s, err := b.open()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	st := s.Status()
	cur, err := current(st)
	if err != nil {
		return nil, err
	}
	pending := st.Pending
	if pending == cur {
		pending = nil // offline the default is pending and current: nothing to compare
	}
	var fromC, toC object.Checksum
	switch {
	case from != "":
		if fromC, err = resolveRevision(s, from); err != nil {
			return nil, err
		}
	case pending != nil:
		fromC = cur.Commit
	default:
		rb := st.Rollback
		if rb == nil {
			return nil, errors.New("db diff: there is no pending or rollback deployment to compare with: give FROM and TO")
		}
		fromC = rb.Commit
	}
	switch {
	case to != "":
		if toC, err = resolveRevision(s, to); err != nil {
			return nil, err
		}
	case pending != nil:
		toC = pending.Commit
	default:
		toC = cur.Commit
	}
	return diffPackages(s.Repo(), fromC, toC)
}

// resolveRevision finds a commit by a deployment's version or checksum
// prefix, a version in the history of a deployment, or a ref or checksum
// of the repository.
func resolveRevision(s *sysroot.Sysroot, rev string) (object.Checksum, error) {
	deps := s.Status().Deployments
	for _, d := range deps {
		if d.Version == rev || len(rev) >= 4 && strings.HasPrefix(d.Commit.String(), rev) {
			return d.Commit, nil
		}
	}
	if c, err := s.Repo().ResolveRev(rev); err == nil {
		return c, nil
	}
	for _, d := range deps {
		if c, err := s.Repo().FindInHistory(d.Commit, rev); err == nil {
			return c, nil
		}
	}
	return object.Checksum{}, fmt.Errorf("db diff: no deployment, ref or commit matches %q (give a version or a checksum)", rev)
}

// formatDiff renders a package diff as lines for people.
func formatDiff(d *api.PackageDiff) []string {
	var out []string
	for _, c := range d.Upgraded {
		out = append(out, fmt.Sprintf("  upgraded   %s -> %s", c.From, c.To))
	}
	for _, c := range d.Downgraded {
		out = append(out, fmt.Sprintf("  downgraded %s -> %s", c.From, c.To))
	}
	for _, p := range d.Removed {
		out = append(out, "  removed    "+p)
	}
	for _, p := range d.Added {
		out = append(out, "  added      "+p)
	}
	if len(out) == 0 {
		out = append(out, "  (no package changes)")
	}
	return out
}
