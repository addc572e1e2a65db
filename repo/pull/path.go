package pull

import (
	"context"
	"fmt"
	"os"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// FetchPath brings in the objects on the way to one path of commit c (the
// dirtree of each directory on it, and the file itself) and
// nothing else, so a caller can read a small file of a commit whose
// signature was verified (a metadata-only pull) before deciding to
// download the whole tree. Every object is checksum-verified before it is
// stored; the commit stays partial and no ref moves. A path that does not
// exist in the tree is an error wrapping os.ErrNotExist.
func FetchPath(ctx context.Context, r *repo.Repo, src *Source, opts Options, c object.Checksum, path string) error {
	opts.setDefaults()
	cm, err := r.LoadCommit(c)
	if err != nil {
		return fmt.Errorf("fetch %s of %s: %w", path, c, err)
	}
	f, err := newFetcher(&opts, src.TLS)
	if err != nil {
		return fmt.Errorf("fetch %s of %s: %w", path, c, err)
	}
	defer f.close()
	p := &puller{r: r, src: src, opts: opts, f: f, res: &Result{}}
	w := &workerTx{p: p, batch: 1 << 30}
	err = p.fetchPath(ctx, w, cm, path)
	if ferr := w.finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("fetch %s of %s: %w", path, c, err)
	}
	return nil
}

func (p *puller) fetchPath(ctx context.Context, w *workerTx, cm *object.Commit, path string) error {
	v := p.r.ViewTreeLoading(repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta}, func(c object.Checksum) (*object.DirTree, error) {
		data, err := p.metaObject(ctx, object.Name{Checksum: c, Type: object.TypeDirTree}, w)
		if err != nil {
			return nil, err
		}
		dt, err := object.UnmarshalDirTree(data)
		if err != nil {
			return nil, fmt.Errorf("dirtree %s: %w", c, err)
		}
		return dt, nil
	})
	e, err := v.Lookup(path)
	if err != nil {
		return err
	}
	if e.IsDir {
		return fmt.Errorf("%s: is a directory: %w", path, os.ErrNotExist)
	}
	if ok, err := p.r.HasObject(e.File, object.TypeFile); err != nil || ok {
		return err
	}
	tx, err := w.get()
	if err != nil {
		return err
	}
	return p.fetchContent(ctx, tx, e.File)
}
