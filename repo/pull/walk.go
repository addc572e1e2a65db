package pull

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// workerTx is one walk worker's own transaction. Each worker stages into
// its own directory, so parallel writers do not contend on one directory
// lock (the kernel serializes file creation per directory); the queue
// guarantees that no two workers handle the same object.
type workerTx struct {
	p     *puller
	tx    *repo.Transaction
	n     int
	batch int
}

func (w *workerTx) get() (*repo.Transaction, error) {
	if w.tx == nil {
		tx, err := w.p.r.Begin()
		if err != nil {
			return nil, err
		}
		w.tx, w.n = tx, 0
	}
	return w.tx, nil
}

// staged counts an object and publishes the batch when it is full, so an
// interrupted pull need not fetch it again.
func (w *workerTx) staged() error {
	w.n++
	if w.n < w.batch {
		return nil
	}
	return w.finish()
}

// finish publishes whatever is staged; it runs on success and on failure
// alike, since every staged object was verified.
func (w *workerTx) finish() error {
	if w.tx == nil {
		return nil
	}
	err := w.tx.Commit()
	w.tx = nil
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
	// Each worker publishes its own batches: every publication costs
	// syncfs calls, so batches stay large.
	batch := p.opts.BatchObjects
	var commitErr error
	for i := 0; i < p.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &workerTx{p: p, batch: batch}
			defer func() {
				if err := w.finish(); err != nil {
					errMu.Lock()
					if commitErr == nil {
						commitErr = err
					}
					errMu.Unlock()
				}
			}()
			for {
				n, ok := q.pop()
				if !ok {
					return
				}
				err := p.processObject(ctx, q, n, w)
				q.done()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return commitErr
}

// processObject makes one object present and queues what it references.
func (p *puller) processObject(ctx context.Context, q *walkQueue, n object.Name, w *workerTx) error {
	if n.Type == object.TypeFile {
		present, err := p.r.HasObject(n.Checksum, n.Type)
		if err != nil {
			return err
		}
		if !present {
			tx, err := w.get()
			if err != nil {
				return err
			}
			if err := p.fetchContent(ctx, tx, n.Checksum); err != nil {
				return err
			}
			if err := w.staged(); err != nil {
				return err
			}
		}
		p.objDone.Add(1)
		return nil
	}
	data, err := p.metaObject(ctx, n, w)
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

// metaObject returns a dirtree or dirmeta from the store if present (a
// present dirtree may still lack children after an interrupted pull, so it
// is walked anyway), else fetched, verified and staged.
func (p *puller) metaObject(ctx context.Context, n object.Name, w *workerTx) ([]byte, error) {
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
	tx, err := w.get()
	if err != nil {
		return nil, err
	}
	if _, err := tx.WriteMeta(n.Type, data, &n.Checksum); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	p.fetched.Add(1)
	return data, w.staged()
}

// smallObject is the largest .filez read into memory before it is
// written; Workers buffers of it bound the memory this takes.
const smallObject = 256 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallObject); return &b }}

// fetchContent fetches a .filez object and stores it through tx. The
// decompressed stream never exceeds the size its header declares, and the
// object is staged only if it hashes to c.
func (p *puller) fetchContent(ctx context.Context, tx *repo.Transaction, c object.Checksum) error {
	url := p.contentURL("objects/" + object.LoosePath(c, object.TypeFile, true))
	return p.f.get(ctx, url, func(body io.Reader, length int64) error {
		if length >= 0 && length <= smallObject {
			// Read it whole: the connection goes back to the pool now,
			// not after the (slower) decompress, hash and write.
			bp := smallBufs.Get().(*[]byte)
			defer smallBufs.Put(bp)
			buf := (*bp)[:length]
			if _, err := io.ReadFull(body, buf); err != nil {
				return transient(fmt.Errorf("got fewer than %d bytes: %w", length, err))
			}
			body = bytes.NewReader(buf)
		}
		fz, err := object.NewFilezReader(body)
		if err != nil {
			return fmt.Errorf("%s.file: %w", c, err)
		}
		if err := p.useSpace(fz.Size); err != nil {
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
		p.fetched.Add(1)
		return nil
	})
}
