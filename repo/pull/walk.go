package pull

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// beginTx starts the walk's current transaction.
func (p *puller) beginTx() error {
	tx, err := p.r.Begin()
	if err != nil {
		return err
	}
	p.tx, p.txN = tx, 0
	return nil
}

// withTx runs fn with the current transaction; batches rotate between
// calls, never during one.
func (p *puller) withTx(fn func(tx *repo.Transaction) error) error {
	p.txMu.RLock()
	tx := p.tx
	err := fn(tx)
	p.txMu.RUnlock()
	if err != nil {
		return err
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.tx != tx {
		return nil
	}
	p.txN++
	if p.txN < p.opts.BatchObjects {
		return nil
	}
	// Publish this batch so an interrupted pull need not fetch it again.
	if err := p.tx.Commit(); err != nil {
		return err
	}
	return p.beginTx()
}

// finishTx publishes whatever is staged; it runs on success and on
// failure alike, since every staged object was verified.
func (p *puller) finishTx() error {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.tx == nil {
		return nil
	}
	err := p.tx.Commit()
	p.tx = nil
	return err
}

// walkQueue is a work list with metadata ahead of content, so the tree is
// discovered quickly while content fetches keep the connections busy.
type walkQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	meta    []object.Name
	content []object.Checksum
	active  int
	closed  bool
	seen    map[object.Name]struct{}
}

func (q *walkQueue) push(n object.Name) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.seen[n]; ok {
		return false
	}
	q.seen[n] = struct{}{}
	if n.Type == object.TypeFile {
		q.content = append(q.content, n.Checksum)
	} else {
		q.meta = append(q.meta, n)
	}
	q.cond.Signal()
	return true
}

// pop blocks for work; ok is false when everything is done or the queue
// was closed.
func (q *walkQueue) pop() (object.Name, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return object.Name{}, false
		}
		if n := len(q.meta); n > 0 {
			it := q.meta[n-1]
			q.meta = q.meta[:n-1]
			q.active++
			return it, true
		}
		if n := len(q.content); n > 0 {
			c := q.content[n-1]
			q.content = q.content[:n-1]
			q.active++
			return object.Name{Checksum: c, Type: object.TypeFile}, true
		}
		if q.active == 0 {
			q.closed = true
			q.cond.Broadcast()
			return object.Name{}, false
		}
		q.cond.Wait()
	}
}

func (q *walkQueue) done() {
	q.mu.Lock()
	q.active--
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *walkQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// walk fetches every missing object of commit c's tree.
func (p *puller) walk(ctx context.Context, c object.Checksum) error {
	cm, err := p.r.LoadCommit(c)
	if err != nil {
		return err
	}
	if err := p.beginTx(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := &walkQueue{seen: map[object.Name]struct{}{}}
	q.cond = sync.NewCond(&q.mu)
	q.push(object.Name{Checksum: cm.RootMeta, Type: object.TypeDirMeta})
	q.push(object.Name{Checksum: cm.RootTree, Type: object.TypeDirTree})
	p.objTotal.Add(2)

	var (
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
		q.close()
	}
	for i := 0; i < p.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, ok := q.pop()
				if !ok {
					return
				}
				err := p.processObject(ctx, q, n)
				q.done()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cerr := p.finishTx()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return cerr
}

// processObject makes one object present and queues what it references.
func (p *puller) processObject(ctx context.Context, q *walkQueue, n object.Name) error {
	if n.Type == object.TypeFile {
		var present bool
		err := p.withTxRead(func(tx *repo.Transaction) (err error) {
			present, err = tx.Has(n)
			return err
		})
		if err != nil {
			return err
		}
		if !present {
			if err := p.withTx(func(tx *repo.Transaction) error { return p.fetchContent(ctx, tx, n.Checksum) }); err != nil {
				return err
			}
		}
		p.objDone.Add(1)
		return nil
	}
	data, err := p.metaObject(ctx, n)
	if err != nil {
		return err
	}
	p.objDone.Add(1)
	if n.Type != object.TypeDirTree {
		return nil
	}
	dt, err := object.UnmarshalDirTree(data)
	if err != nil {
		return fmt.Errorf("%s: %w", n, err)
	}
	added := 0
	for _, f := range dt.Files {
		if q.push(object.Name{Checksum: f.Checksum, Type: object.TypeFile}) {
			added++
		}
	}
	for _, d := range dt.Dirs {
		if q.push(object.Name{Checksum: d.Meta, Type: object.TypeDirMeta}) {
			added++
		}
		if q.push(object.Name{Checksum: d.Tree, Type: object.TypeDirTree}) {
			added++
		}
	}
	p.objTotal.Add(int64(added))
	return nil
}

func (p *puller) withTxRead(fn func(tx *repo.Transaction) error) error {
	p.txMu.RLock()
	defer p.txMu.RUnlock()
	return fn(p.tx)
}

// metaObject returns a dirtree or dirmeta, from the store or the staging
// transaction if present (a present dirtree may still lack children after
// an interrupted pull, so it is walked anyway), else fetched and verified.
func (p *puller) metaObject(ctx context.Context, n object.Name) ([]byte, error) {
	if ok, err := p.r.HasObject(n.Checksum, n.Type); err != nil {
		return nil, err
	} else if ok {
		return p.r.ReadMeta(n.Type, n.Checksum)
	}
	url := p.contentURL("objects/" + object.LoosePath(n.Checksum, n.Type, true))
	var data []byte
	err := p.f.get(ctx, url, func(body io.Reader, length int64) error {
		b, err := readAll(body, length, repo.MaxMetadataSize)
		if err != nil {
			return err
		}
		if got := object.SumMeta(b); got != n.Checksum {
			return fmt.Errorf("%s: content hashes to %s: checksum mismatch", n, got)
		}
		data = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.withTx(func(tx *repo.Transaction) error {
		_, err := tx.WriteMeta(n.Type, data, &n.Checksum)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return data, nil
}

// fetchContent fetches a .filez object and stores it through tx. The
// decompressed stream never exceeds the size its header declares, and the
// object is staged only if it hashes to c.
func (p *puller) fetchContent(ctx context.Context, tx *repo.Transaction, c object.Checksum) error {
	url := p.contentURL("objects/" + object.LoosePath(c, object.TypeFile, true))
	return p.f.get(ctx, url, func(body io.Reader, length int64) error {
		fz, err := object.NewFilezReader(body)
		if err != nil {
			return fmt.Errorf("%s.file: %w", c, err)
		}
		w, err := tx.ContentWriter(fz.Header, fz.Size)
		if err != nil {
			return fmt.Errorf("%s.file: %w", c, err)
		}
		if !fz.Header.IsSymlink() {
			if _, err := io.Copy(w, fz); err != nil {
				w.Abort()
				return fmt.Errorf("%s.file: %w", c, err)
			}
		}
		if _, err := w.Commit(&c); err != nil {
			return err
		}
		return nil
	})
}
