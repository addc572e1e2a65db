package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
)

func runPull(ctx context.Context, e *env, args []string) error {
	c := newCmd("pull", "REMOTE [BRANCH...]", "Download data from remote repository", true)
	var metaOnly, cacheDir, disableFsync, perObjectFsync, noDeltas, requireDeltas, mirror, subpath, untrusted, httpTrusted, bareuseronly, dryRun, tsCheck, tsCheckFromRev, noVerifyBindings bool
	var urlOverride, localcache string
	var headers []string
	depth, freq, retries := 0, 0, 5
	c.flag("commit-metadata-only", 0, &metaOnly, "Fetch only the commit metadata")
	c.flag("cache-dir", 0, &cacheDir, "Use custom cache dir")
	c.flag("disable-fsync", 0, &disableFsync, "Do not invoke fsync()")
	c.flag("per-object-fsync", 0, &perObjectFsync, "Perform writes in such a way that avoids stalling concurrent processes")
	c.flag("disable-static-deltas", 0, &noDeltas, "Do not use static deltas")
	c.flag("require-static-deltas", 0, &requireDeltas, "Require static deltas")
	c.flag("mirror", 0, &mirror, "Write refs suitable for a mirror and fetches all refs if none provided")
	c.flag("subpath", 0, &subpath, "Only pull the provided subpath(s)")
	c.flag("untrusted", 0, &untrusted, "Verify checksums of local sources (always enabled for HTTP pulls)")
	c.flag("http-trusted", 0, &httpTrusted, "Do not verify checksums of HTTP sources (mostly useful when mirroring)")
	c.flag("bareuseronly-files", 0, &bareuseronly, "Reject regular files with mode outside of 0775 (world writable, suid, etc.)")
	c.flag("dry-run", 0, &dryRun, "Only print information on what will be downloaded (requires static deltas)")
	c.integer("depth", 0, &depth, "DEPTH", "Traverse DEPTH parents (-1=infinite) (default: 0)")
	c.str("url", 0, &urlOverride, "URL", "Pull objects from this URL instead of the one from the remote config")
	c.strs("http-header", 0, &headers, "NAME=VALUE", "Add NAME=VALUE as HTTP header to all requests")
	c.integer("update-frequency", 0, &freq, "FREQUENCY", "Sets the update frequency, in milliseconds (0=1000ms) (default: 0)")
	c.integer("network-retries", 0, &retries, "N", "Specifies how many times each download should be retried upon error (default: 5)")
	c.str("localcache-repo", 'L', &localcache, "REPO", "Add REPO as local cache source for objects during this pull")
	c.flag("timestamp-check", 'T', &tsCheck, "Require fetched commits to have newer timestamps")
	c.flag("timestamp-check-from-rev", 0, &tsCheckFromRev, "Require fetched commits to have newer timestamps than given rev")
	c.flag("disable-verify-bindings", 0, &noVerifyBindings, "Do not verify commit bindings")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	for name, set := range map[string]bool{"--subpath": subpath, "--require-static-deltas": requireDeltas, "--dry-run": dryRun,
		"--http-header": len(headers) > 0, "--localcache-repo": localcache != "", "--timestamp-check-from-rev": tsCheckFromRev,
		"--bareuseronly-files": bareuseronly} {
		if set {
			return fmt.Errorf("ostree pull %s: not implemented by os-update", name)
		}
	}
	if len(pos) < 1 {
		return c.usageError(e, "REMOTE must be specified")
	}
	name, refs := pos[0], pos[1:]
	if n, ref, ok := strings.Cut(name, ":"); ok {
		name = n
		refs = append([]string{ref}, refs...)
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	r.SetFsync(!disableFsync)
	st := &remote.Store{Repo: r}
	rem, err := getRemote(st, name)
	if err != nil {
		return err
	}
	if urlOverride != "" {
		rem.URL = urlOverride
	}
	trustGlobalKeys(rem)
	if rem.URL != "" && strings.HasPrefix(rem.URL, "file://") && !isArchiveAt(strings.TrimPrefix(rem.URL, "file://")) {
		// A local non-archive repository: copy objects as pull-local does.
		src, err := repo.Open(strings.TrimPrefix(rem.URL, "file://"))
		if err != nil {
			return err
		}
		defer src.Close()
		if len(refs) == 0 {
			refs = rem.Branches
		}
		return pullLocalRefs(ctx, e, src, r, refs, name, depth, metaOnly)
	}
	src, err := pull.FromRemote(st, rem)
	if err != nil {
		return err
	}
	opts := pull.Options{
		Refs: refs, Branches: rem.Branches, Mirror: mirror, CommitMetadataOnly: metaOnly,
		Depth: depth, DisableDeltas: noDeltas, TimestampCheck: tsCheck, Retries: retries,
	}
	start := time.Now()
	res, err := pull.Pull(ctx, r, src, opts)
	if err != nil {
		return err
	}
	if res.DeltasUsed > 0 {
		e.printf("%d delta parts fetched; %s transferred in %d seconds\n", res.DeltasUsed, formatSize(uint64(res.BytesFetched)), int(time.Since(start).Seconds()))
	} else if res.ObjectsFetched > 0 {
		e.printf("%d objects fetched; %s transferred in %d seconds\n", res.ObjectsFetched, formatSize(uint64(res.BytesFetched)), int(time.Since(start).Seconds()))
	}
	return nil
}

func isArchiveAt(p string) bool {
	r, err := repo.Open(p)
	if err != nil {
		return true // let the HTTP-style pull report it
	}
	defer r.Close()
	return r.IsArchive()
}

func runPullLocal(ctx context.Context, e *env, args []string) error {
	c := newCmd("pull-local", "SRC_REPO [REFS...]", "Copy data from SRC_REPO", true)
	var metaOnly, disableFsync, perObjectFsync, untrusted, bareuseronly, requireDeltas, gpgVerify, gpgVerifySummary, noVerifyBindings bool
	var remoteName string
	depth := 0
	c.flag("commit-metadata-only", 0, &metaOnly, "Fetch only the commit metadata")
	c.str("remote", 0, &remoteName, "REMOTE", "Add REMOTE to refspec")
	c.flag("disable-fsync", 0, &disableFsync, "Do not invoke fsync()")
	c.flag("per-object-fsync", 0, &perObjectFsync, "Perform writes in such a way that avoids stalling concurrent processes")
	c.flag("untrusted", 0, &untrusted, "Verify checksums of local sources (always enabled for HTTP pulls)")
	c.flag("bareuseronly-files", 0, &bareuseronly, "Reject regular files with mode outside of 0775 (world writable, suid, etc.)")
	c.flag("require-static-deltas", 0, &requireDeltas, "Require static deltas")
	c.flag("gpg-verify", 0, &gpgVerify, "GPG verify commits (must specify --remote)")
	c.flag("gpg-verify-summary", 0, &gpgVerifySummary, "GPG verify summary (must specify --remote)")
	c.flag("disable-verify-bindings", 0, &noVerifyBindings, "Do not verify commit bindings")
	c.integer("depth", 0, &depth, "DEPTH", "Traverse DEPTH parents (-1=infinite) (default: 0)")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if bareuseronly || requireDeltas || gpgVerify || gpgVerifySummary {
		return errors.New("ostree pull-local --bareuseronly-files/--require-static-deltas/--gpg-verify: not implemented by os-update")
	}
	if len(pos) < 1 {
		return c.usageError(e, "DESTINATION must be specified")
	}
	dst, err := c.openRepo()
	if err != nil {
		return err
	}
	defer dst.Close()
	dst.SetFsync(!disableFsync)
	srcPath := strings.TrimPrefix(pos[0], "file://")
	src, err := repo.Open(srcPath)
	if err != nil {
		return fmt.Errorf("opening repo: %w", err)
	}
	defer src.Close()
	if filepath.Clean(src.Path()) == filepath.Clean(dst.Path()) {
		return nil
	}
	return pullLocalRefs(ctx, e, src, dst, pos[1:], remoteName, depth, metaOnly)
}

// pullLocalRefs copies refs (all of src's when none are given) and the
// objects they need from src to dst. A ref is stored under remoteName's
// refs when one is given; a bare checksum only copies objects.
func pullLocalRefs(ctx context.Context, e *env, src, dst *repo.Repo, refs []string, remoteName string, depth int, metaOnly bool) error {
	if len(refs) == 0 {
		all, err := src.ListRefs()
		if err != nil {
			return err
		}
		for _, r := range all {
			refs = append(refs, r.Refspec())
		}
	}
	type target struct {
		remote, ref string
		commit      object.Checksum
	}
	var targets []target
	for _, spec := range refs {
		sum, err := resolve(src, spec)
		if err != nil {
			return err
		}
		t := target{commit: sum}
		if _, perr := object.ParseChecksum(spec); perr != nil {
			_, ref, err := repo.ParseRefspec(spec)
			if err != nil {
				return err
			}
			t.remote, t.ref = remoteName, ref
			if remoteName == "" {
				// pull-local keeps the refspec as given (remote refs too).
				t.remote, t.ref, _ = repo.ParseRefspec(spec)
			}
		}
		targets = append(targets, t)
	}
	fetched := 0
	err := dst.Update(ctx, func(tx *repo.Transaction) error {
		for _, t := range targets {
			n, err := copyCommit(ctx, src, tx, t.commit, depth, metaOnly)
			if err != nil {
				return err
			}
			fetched += n
		}
		if metaOnly {
			return nil
		}
		for _, t := range targets {
			if t.ref != "" {
				if err := tx.SetRef(t.remote, t.ref, t.commit); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range targets {
		mark := dst.ClearPartial
		if metaOnly {
			mark = dst.MarkPartial
		}
		if err := mark(t.commit); err != nil {
			return err
		}
	}
	e.printf("%d objects copied\n", fetched)
	return nil
}

// copyCommit stages every object of commit (and depth parents) that dst
// lacks, with the commits' detached metadata. It returns how many objects
// it copied.
func copyCommit(ctx context.Context, src *repo.Repo, tx *repo.Transaction, commit object.Checksum, depth int, metaOnly bool) (int, error) {
	set := repo.Reachable{}
	if metaOnly {
		for c, i := commit, 0; depth < 0 || i <= depth; i++ {
			set[object.Name{Checksum: c, Type: object.TypeCommit}] = struct{}{}
			cm, err := src.LoadCommit(c)
			if err != nil || !cm.HasParent() {
				break
			}
			if ok, _ := src.HasObject(cm.Parent, object.TypeCommit); !ok {
				break
			}
			c = cm.Parent
		}
	} else if err := src.TraverseCommit(commit, depth, set); err != nil {
		return 0, err
	}
	n := 0
	for name := range set {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if has, err := tx.Has(name); err != nil {
			return n, err
		} else if has && name.Type != object.TypeCommit {
			continue
		}
		switch name.Type {
		case object.TypeFile:
			content, err := src.OpenContent(name.Checksum)
			if err != nil {
				return n, err
			}
			_, err = tx.WriteContent(content.Header, content.Size, content, &name.Checksum)
			content.Close()
			if err != nil {
				return n, err
			}
		case object.TypeCommitMeta:
			continue
		default:
			data, err := src.ReadMeta(name.Type, name.Checksum)
			if err != nil {
				return n, err
			}
			if _, err := tx.WriteMeta(name.Type, data, &name.Checksum); err != nil {
				return n, err
			}
			if name.Type == object.TypeCommit {
				m, err := src.ReadCommitMeta(name.Checksum)
				if err != nil {
					return n, err
				}
				if m != nil {
					if err := tx.WriteCommitMeta(name.Checksum, m); err != nil {
						return n, err
					}
				}
			}
		}
		n++
	}
	return n, nil
}
