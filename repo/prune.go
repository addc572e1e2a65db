package repo

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// PruneOptions controls Prune, with the meanings of `ostree prune`.
type PruneOptions struct {
	// RefsOnly computes reachability from refs only, so commits no ref
	// reaches are deleted too; otherwise every commit is a root.
	RefsOnly bool
	// Depth is how many parents to follow from each ref (-1: all).
	Depth int
	// KeepYoungerThan, if set, deletes commits older than it that are
	// behind a ref's head (the head itself is always kept). Implies RefsOnly.
	KeepYoungerThan time.Time
	// DeleteCommits are removed first (refuses commits a ref points to).
	DeleteCommits []object.Checksum
	// DryRun counts without deleting (ostree's --no-prune).
	DryRun bool
}

// PruneResult reports what Prune found and removed.
type PruneResult struct {
	Total     int   // objects in the store before pruning
	Pruned    int   // unreachable objects (deleted unless DryRun)
	Commits   int   // of which commits
	BytesFree int64 // bytes of the pruned objects
}

// Prune deletes objects that no root reaches. It holds the repository lock
// exclusively, so it waits for running transactions and blocks new ones.
// Commits are deleted before the objects they reference, so an interrupted
// prune never leaves a visible commit with missing objects.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	lockFD, err := r.lockRepo(true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(lockFD)

	refs, err := r.ListRefs()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	refHeads := map[object.Checksum]bool{}
	for _, ref := range refs {
		refHeads[ref.Commit] = true
	}
	for _, c := range opts.DeleteCommits {
		if refHeads[c] {
			return nil, fmt.Errorf("prune: commit %s is referenced by a ref", c)
		}
	}
	var all []object.Name
	if err := r.ListObjects(func(n object.Name) error { all = append(all, n); return nil }); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	res := &PruneResult{Total: len(all)}
	doomed := map[object.Checksum]bool{}
	for _, c := range opts.DeleteCommits {
		doomed[c] = true
	}

	keep := Reachable{}
	depth := opts.Depth
	refsOnly := opts.RefsOnly || !opts.KeepYoungerThan.IsZero()
	if refsOnly {
		for _, ref := range refs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := r.keepFromRef(ref.Commit, depth, opts.KeepYoungerThan, doomed, keep); err != nil {
				return nil, fmt.Errorf("prune: ref %s: %w", ref.Refspec(), err)
			}
		}
	} else {
		for _, n := range all {
			if n.Type == object.TypeCommit && !doomed[n.Checksum] {
				if err := r.TraverseCommit(n.Checksum, 0, keep); err != nil {
					return nil, fmt.Errorf("prune: %w", err)
				}
			}
		}
	}

	var victims []object.Name
	for _, n := range all {
		if n.Type == object.TypeCommitMeta {
			// Detached metadata lives and dies with its commit.
			if keep.Has(object.Name{Checksum: n.Checksum, Type: object.TypeCommit}) {
				continue
			}
		} else if keep.Has(n) {
			continue
		}
		victims = append(victims, n)
	}
	rank := func(t object.Type) int {
		switch t {
		case object.TypeCommit:
			return 0
		case object.TypeCommitMeta, object.TypeTombstoneCommit:
			return 1
		case object.TypeDirTree:
			return 2
		}
		return 3
	}
	sort.SliceStable(victims, func(i, j int) bool { return rank(victims[i].Type) < rank(victims[j].Type) })
	for _, n := range victims {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if fi, err := os.Lstat(r.ObjectPath(n.Checksum, n.Type)); err == nil {
			res.BytesFree += fi.Size()
		}
		res.Pruned++
		if n.Type == object.TypeCommit {
			res.Commits++
		}
		if opts.DryRun {
			continue
		}
		if err := r.DeleteObject(n.Checksum, n.Type); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
		if n.Type == object.TypeCommit {
			r.ClearPartial(n.Checksum)
		}
	}
	return res, nil
}

// keepFromRef marks what a ref keeps: its head, and parents up to depth
// that are not older than cutoff.
func (r *Repo) keepFromRef(head object.Checksum, depth int, cutoff time.Time, doomed map[object.Checksum]bool, keep Reachable) error {
	c := head
	for i := 0; ; i++ {
		if doomed[c] && c != head {
			return nil
		}
		cm, err := r.LoadCommit(c)
		if err != nil {
			if c != head {
				return nil // shallow history
			}
			return err
		}
		if c != head && !cutoff.IsZero() && time.Unix(int64(cm.Timestamp), 0).Before(cutoff) {
			return nil
		}
		if err := r.TraverseCommit(c, 0, keep); err != nil {
			return err
		}
		if !cm.HasParent() || depth >= 0 && i >= depth {
			return nil
		}
		c = cm.Parent
	}
}
