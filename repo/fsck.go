package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/osupdate/os-update/repo/object"
)

// FsckOptions controls Fsck.
type FsckOptions struct {
	Delete   bool // remove corrupt objects and mark their commits partial
	Workers  int
	Progress func(done, total int)
}

// Problem is one finding of fsck.
type Problem struct {
	Object object.Name
	Err    error
}

func (p Problem) String() string { return fmt.Sprintf("%s: %v", p.Object, p.Err) }

// FsckReport is the result of Fsck.
type FsckReport struct {
	Objects  int
	Commits  int
	Partial  []object.Checksum // commits marked partial (not an error)
	Problems []Problem
	Deleted  []object.Name
}

// Fsck verifies every loose object against its checksum, that every ref
// resolves to a commit, and that every complete commit reaches only
// objects that exist.
func (r *Repo) Fsck(ctx context.Context, opts FsckOptions) (*FsckReport, error) {
	rep := &FsckReport{}
	refs, err := r.ListRefs()
	if err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	var all []object.Name
	if err := r.ListObjects(func(n object.Name) error { all = append(all, n); return nil }); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	rep.Objects = len(all)
	present := make(map[object.Name]bool, len(all))
	for _, n := range all {
		present[n] = true
	}
	for _, ref := range refs {
		n := object.Name{Checksum: ref.Commit, Type: object.TypeCommit}
		if !present[n] {
			rep.Problems = append(rep.Problems, Problem{n, fmt.Errorf("ref %s points to a missing commit", ref.Refspec())})
		}
	}

	corrupt := r.verifyAll(ctx, all, opts, rep)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for n := range corrupt {
		delete(present, n)
	}

	// Reachability, from every commit in the store.
	var commits []object.Checksum
	for _, n := range all {
		if n.Type == object.TypeCommit && !corrupt.Has(n) {
			commits = append(commits, n.Checksum)
		}
	}
	sort.Slice(commits, func(i, j int) bool { return commits[i].String() < commits[j].String() })
	rep.Commits = len(commits)
	for _, c := range commits {
		if r.IsPartial(c) {
			rep.Partial = append(rep.Partial, c)
			continue
		}
		missing := r.missingFrom(c, present)
		for _, m := range missing {
			if !corrupt.Has(m) { // corrupt ones were reported already
				rep.Problems = append(rep.Problems, Problem{m, fmt.Errorf("missing, referenced by commit %s", c)})
			}
		}
		if len(missing) > 0 && opts.Delete {
			// Like libostree: a damaged commit becomes partial so that a
			// later pull fetches what is missing.
			if err := os.WriteFile(filepath.Join(r.path, "state", c.String()+".commitpartial"), []byte("f"), 0o644); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// verifyAll checks every object's bytes on opts.Workers goroutines and
// returns the set of corrupt ones (deleted if opts.Delete).
func (r *Repo) verifyAll(ctx context.Context, all []object.Name, opts FsckOptions, rep *FsckReport) Reachable {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var mu sync.Mutex
	corrupt := Reachable{}
	var done atomic.Int64
	jobs := make(chan object.Name, 256)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				if ctx.Err() != nil {
					continue
				}
				err := r.VerifyObject(n)
				if err != nil {
					mu.Lock()
					corrupt.Add(n)
					rep.Problems = append(rep.Problems, Problem{n, err})
					if opts.Delete {
						if derr := r.DeleteObject(n.Checksum, n.Type); derr == nil {
							rep.Deleted = append(rep.Deleted, n)
						}
					}
					mu.Unlock()
				}
				d := done.Add(1)
				if opts.Progress != nil {
					opts.Progress(int(d), len(all))
				}
			}
		}()
	}
	for _, n := range all {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	return corrupt
}

// VerifyObject re-reads one object and checks it against its name.
func (r *Repo) VerifyObject(n object.Name) error {
	switch {
	case n.Type == object.TypeFile:
		content, err := r.OpenContent(n.Checksum)
		if err != nil {
			return err
		}
		defer content.Close()
		hasher, err := object.NewContentHasher(content.Header)
		if err != nil {
			return err
		}
		got, err := io.Copy(hasher, content)
		if err != nil {
			return fmt.Errorf("corrupt content: %w", err)
		}
		if uint64(got) != content.Size {
			return fmt.Errorf("content has %d bytes, header declares %d: %w", got, content.Size, object.ErrSizeMismatch)
		}
		if sum := hasher.Checksum(); sum != n.Checksum {
			return fmt.Errorf("corrupted object: content hashes to %s", sum)
		}
		return nil
	case n.Type == object.TypeCommitMeta:
		b, err := r.ReadMeta(n.Type, n.Checksum)
		if err != nil {
			return err
		}
		_, err = object.UnmarshalMetadata(b)
		return err
	case n.Type.IsMeta():
		b, err := r.ReadMeta(n.Type, n.Checksum)
		if err != nil {
			return err
		}
		if sum := object.SumMeta(b); sum != n.Checksum {
			return fmt.Errorf("corrupted object: bytes hash to %s", sum)
		}
		return object.ValidateMeta(n.Type, b)
	}
	return nil
}

// missingFrom lists the objects commit reaches that are not present.
func (r *Repo) missingFrom(c object.Checksum, present map[object.Name]bool) []object.Name {
	var missing []object.Name
	seen := Reachable{}
	cm, err := r.LoadCommit(c)
	if err != nil {
		return []object.Name{{Checksum: c, Type: object.TypeCommit}}
	}
	var walk func(t Tree)
	walk = func(t Tree) {
		mn := object.Name{Checksum: t.DirMeta, Type: object.TypeDirMeta}
		if seen.Add(mn) && !present[mn] {
			missing = append(missing, mn)
		}
		tn := object.Name{Checksum: t.DirTree, Type: object.TypeDirTree}
		if !seen.Add(tn) {
			return
		}
		if !present[tn] {
			missing = append(missing, tn)
			return
		}
		dt, err := r.LoadDirTree(t.DirTree)
		if err != nil {
			if !errors.Is(err, ErrObjectNotFound) {
				missing = append(missing, tn)
			}
			return
		}
		for _, f := range dt.Files {
			fn := object.Name{Checksum: f.Checksum, Type: object.TypeFile}
			if seen.Add(fn) && !present[fn] {
				missing = append(missing, fn)
			}
		}
		for _, d := range dt.Dirs {
			walk(Tree{d.Tree, d.Meta})
		}
	}
	walk(Tree{cm.RootTree, cm.RootMeta})
	return missing
}
