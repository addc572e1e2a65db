package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/osupdate/os-update/compose/layer"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

// Package layering on the host: PkgChange edits the requests recorded in
// the current deployment's origin file, builds the derived commit
// (compose/layer) on the base commit and deploys it; upgrade, rebase and
// deploy build it again on their new base in the same transaction.

func (b *HostBackend) reposDir() string {
	if b.cfg.ReposDir != "" {
		return b.cfg.ReposDir
	}
	return filepath.Join(b.cfg.Sysroot, "etc/yum.repos.d")
}

func (b *HostBackend) rpmCacheDir() string {
	if b.cfg.RPMCacheDir != "" {
		return b.cfg.RPMCacheDir
	}
	return filepath.Join(b.cfg.Sysroot, "var/cache/os-update")
}

// baseOf is the base commit of a deployed commit: the commit itself
// unless it is a derived one.
func baseOf(r *repo.Repo, c object.Checksum) object.Checksum {
	cm, err := r.LoadCommit(c)
	if err != nil {
		return c
	}
	if s := cm.Metadata.String(layer.KeyBase); s != "" {
		if b, err := object.ParseChecksum(s); err == nil {
			return b
		}
	}
	return c
}

// requestsOf reads a deployment's layering requests from its origin.
func requestsOf(d *sysroot.Deployment) layer.Requests {
	if d.Origin == nil {
		return layer.Requests{}
	}
	_, req := layer.OriginRequests(d.Origin)
	return req
}

// buildLayered builds the derived commit of base for req (nothing when req
// is empty: the base itself is deployed) and returns what to deploy and
// the origin to write.
func (b *HostBackend) buildLayered(ctx context.Context, s *sysroot.Sysroot, cur *sysroot.Deployment, base object.Checksum,
	refspec string, req layer.Requests, reapply, dryRun bool, rep Reporter) (object.Checksum, *keyfile.File, error) {
	origin := keyfile.New()
	if cur != nil && cur.Origin != nil {
		if o, err := keyfile.ParseBytes(cur.Origin.Bytes()); err == nil {
			origin = o
		}
	}
	// A new deployment is never pinned because its predecessor was.
	origin.DeleteGroup("libostree-transient")
	layer.SetOrigin(origin, refspec, req)
	if req.Empty() {
		return base, origin, nil
	}
	rep.Stage("layer")
	res, err := layer.Build(ctx, layer.Options{
		Repo: s.Repo(), Base: base, Requests: req, ReposDir: b.reposDir(), CacheDir: b.rpmCacheDir(),
		Reapply: reapply, DryRun: dryRun, Log: messageWriter{rep}, Progress: rep.Stage,
	})
	if err != nil {
		return object.Checksum{}, nil, fmt.Errorf("layered packages: %w", err)
	}
	for _, n := range res.Notes {
		rep.Message(n)
	}
	if dryRun {
		for _, p := range res.Layered {
			rep.Message("Would install " + p)
		}
		for _, p := range res.Removed {
			rep.Message("Would remove " + p)
		}
		for _, p := range res.Replaced {
			rep.Message("Would replace " + strings.Replace(p, " ", " with ", 1))
		}
		return object.Checksum{}, origin, nil
	}
	t := res.Timings
	rep.Message(fmt.Sprintf("Layered in %s (solve %s, fetch %s, checkout %s, unpack %s, scripts %s, commit %s)",
		t.Total.Round(1e6), t.Solve.Round(1e6), t.Fetch.Round(1e6), t.Checkout.Round(1e6), t.Unpack.Round(1e6), t.Scripts.Round(1e6), t.Commit.Round(1e6)))
	return res.Commit, origin, nil
}

// messageWriter turns the builder's log lines into transaction messages.
type messageWriter struct{ rep Reporter }

func (w messageWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if l != "" {
			w.rep.Message(l)
		}
	}
	return len(p), nil
}

// pkgChange is install, uninstall and override remove/replace/reset.
func (b *HostBackend) pkgChange(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter) (Result, error) {
	cur, err := current(st)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: cur.Commit.String()}
	refspec := cur.Refspec()
	base := baseOf(s.Repo(), cur.Commit)
	old := requestsOf(cur)
	next, err := b.editRequests(old, req, base, s.Repo())
	if err != nil {
		return res, err
	}
	if slices.Equal(next.Install, old.Install) && slices.Equal(next.Remove, old.Remove) && slices.Equal(next.Replace, old.Replace) {
		return res, errors.New("nothing changes: the requests are already recorded")
	}
	target, origin, err := b.buildLayered(ctx, s, cur, base, refspec, next, false, req.DryRun, rep)
	if err != nil || req.DryRun {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	rep.Stage("deploy")
	if _, err := s.Deploy(ctx, sysroot.DeployOptions{OS: cur.OS, Commit: target, Origin: origin}); err != nil {
		return res, err
	}
	res.To, res.Deployed = target.String(), true
	if err := tidyLayerRefs(s); err != nil {
		rep.Message(fmt.Sprintf("warning: tidy layering refs: %v", err))
	}
	rep.Message(fmt.Sprintf("Deployed %s; it boots next", target))
	return res, nil
}

// editRequests applies a PkgChange to the recorded requests. Local .rpm
// files are kept in the cache (by checksum) so that later upgrades can
// apply them again.
func (b *HostBackend) editRequests(old layer.Requests, req Request, base object.Checksum, r *repo.Repo) (layer.Requests, error) {
	next := layer.Requests{Install: slices.Clone(old.Install), Remove: slices.Clone(old.Remove), Replace: slices.Clone(old.Replace)}
	keep := func(q string) (string, error) {
		if !strings.HasSuffix(q, ".rpm") {
			return q, nil
		}
		if !filepath.IsAbs(q) {
			return "", fmt.Errorf("%s: give local packages by absolute path", q)
		}
		return layer.KeepLocal(filepath.Join(b.rpmCacheDir(), "local"), q)
	}
	for _, q := range req.Install {
		k, err := keep(q)
		if err != nil {
			return next, err
		}
		if slices.Contains(next.Install, k) {
			return next, fmt.Errorf("install %s: already requested", q)
		}
		next.Install = append(next.Install, k)
	}
	for _, q := range req.Uninstall {
		i := slices.IndexFunc(next.Install, func(s string) bool { return s == q || (strings.HasSuffix(s, ".rpm") && packageOfFile(s) == q) })
		if i < 0 {
			return next, fmt.Errorf("uninstall %s: not a layered package request (requested: %s)", q, strings.Join(next.Install, ", "))
		}
		next.Install = slices.Delete(next.Install, i, i+1)
	}
	for _, q := range req.OverrideRemove {
		if slices.Contains(next.Remove, q) {
			return next, fmt.Errorf("override remove %s: already removed", q)
		}
		next.Remove = append(next.Remove, q)
	}
	for _, q := range req.OverrideReplace {
		k, err := keep(q)
		if err != nil {
			return next, err
		}
		next.Replace = append(next.Replace, k)
	}
	for _, q := range req.OverrideReset {
		found := false
		if i := slices.Index(next.Remove, q); i >= 0 {
			next.Remove = slices.Delete(next.Remove, i, i+1)
			found = true
		}
		for i := 0; i < len(next.Replace); i++ {
			if next.Replace[i] == q || packageOfFile(next.Replace[i]) == q || strings.HasPrefix(next.Replace[i], q+"-") {
				next.Replace = slices.Delete(next.Replace, i, i+1)
				i--
				found = true
			}
		}
		if !found {
			return next, fmt.Errorf("override reset %s: no override of that package", q)
		}
	}
	if req.OverrideResetAll {
		next.Remove, next.Replace = nil, nil
	}
	return next, nil
}

// packageOfFile guesses the package name of a (kept) local file name
// "[SHA256-]NAME-VERSION-RELEASE.ARCH.rpm".
func packageOfFile(p string) string {
	base := strings.TrimSuffix(filepath.Base(p), ".rpm")
	if i := strings.IndexByte(base, '-'); i == 64 {
		base = base[65:]
	}
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	for n := 0; n < 2; n++ {
		if i := strings.LastIndexByte(base, '-'); i > 0 {
			base = base[:i]
		}
	}
	return base
}

// deployTarget deploys commit c of refspec as the next deployment: when the
// current deployment has layering requests they are applied to c first,
// in the same transaction; a request that can no longer be met fails
// before anything is deployed.
func (b *HostBackend) deployTarget(ctx context.Context, s *sysroot.Sysroot, cur *sysroot.Deployment, c object.Checksum, refspec string, stage bool, rep Reporter) (object.Checksum, error) {
	req := requestsOf(cur)
	if req.Empty() {
		if _, err := s.Deploy(ctx, sysroot.DeployOptions{OS: cur.OS, Commit: c, OriginRefspec: refspec, Stage: stage}); err != nil {
			return c, err
		}
		if err := tidyLayerRefs(s); err != nil {
			rep.Message(fmt.Sprintf("warning: tidy layering refs: %v", err))
		}
		return c, nil
	}
	target, origin, err := b.buildLayered(ctx, s, cur, c, refspec, req, true, false, rep)
	if err != nil {
		return object.Checksum{}, err
	}
	if err := ctx.Err(); err != nil {
		return object.Checksum{}, err
	}
	rep.Stage("deploy")
	if _, err = s.Deploy(ctx, sysroot.DeployOptions{OS: cur.OS, Commit: target, Origin: origin, Stage: stage}); err != nil {
		return target, err
	}
	if err := tidyLayerRefs(s); err != nil {
		rep.Message(fmt.Sprintf("warning: tidy layering refs: %v", err))
	}
	return target, nil
}

// tidyLayerRefs removes the builder's refs (derived commits and their
// bases) that no deployment uses any more; the next prune frees them.
func tidyLayerRefs(s *sysroot.Sysroot) error {
	if err := s.Load(); err != nil {
		return err
	}
	used := map[string]bool{}
	for _, d := range s.Status().Deployments { // the staged one too
		base := baseOf(s.Repo(), d.Commit)
		used[layer.LayeredRefPrefix+base.String()] = true
		used[layer.BaseRefPrefix+base.String()] = true
	}
	refs, err := s.Repo().ListRefs()
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.Remote != "" || used[r.Name] || !(strings.HasPrefix(r.Name, layer.LayeredRefPrefix) || strings.HasPrefix(r.Name, layer.BaseRefPrefix)) {
			continue
		}
		if err := s.Repo().SetRef("", r.Name, object.Checksum{}); err != nil {
			return err
		}
	}
	return nil
}

// cleanupRPMCache empties the package cache of layering, keeping the
// local packages deployments still request.
func (b *HostBackend) cleanupRPMCache(s *sysroot.Sysroot) error {
	dir := b.rpmCacheDir()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "local" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	used := map[string]bool{}
	for _, d := range s.Status().Deployments { // the staged one too
		req := requestsOf(d.Deployment)
		for _, q := range append(req.Install, req.Replace...) {
			used[q] = true
		}
	}
	locals, _ := filepath.Glob(filepath.Join(dir, "local", "*.rpm"))
	for _, p := range locals {
		if !used[p] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}
