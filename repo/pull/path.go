package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

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
	tree := cm.RootTree
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, name := range parts {
		data, err := p.metaObject(ctx, object.Name{Checksum: tree, Type: object.TypeDirTree}, w)
		if err != nil {
			return err
		}
		dt, err := object.UnmarshalDirTree(data)
		if err != nil {
			return fmt.Errorf("dirtree %s: %w", tree, err)
		}
		if i == len(parts)-1 {
			for _, fe := range dt.Files {
				if fe.Name != name {
					continue
				}
				if ok, err := p.r.HasObject(fe.Checksum, object.TypeFile); err != nil || ok {
					return err
				}
				tx, err := w.get()
				if err != nil {
					return err
				}
				return p.fetchContent(ctx, tx, fe.Checksum)
			}
			return fmt.Errorf("%s: %w", path, os.ErrNotExist)
		}
		found := false
		for _, de := range dt.Dirs {
			if de.Name == name {
				tree, found = de.Tree, true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s: %w", path, os.ErrNotExist)
		}
	}
	return errors.New("empty path")
}
