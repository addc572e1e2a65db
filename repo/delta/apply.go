package delta

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta/bsdiff"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// ApplyOptions tells Apply where a delta's parts and fallback objects
// come from.
type ApplyOptions struct {
	// FetchPart returns the bytes of part file index (deltas/…/<index>).
	// It is not called for inline parts nor for parts whose objects are
	// all present. Apply reads at most the size the superblock declares
	// plus one byte and checks size and checksum. It is called from a
	// goroutine of Apply's (the next part loads while one executes), one
	// call at a time. If the reader has a method Verified(), Apply
	// calls it once the part's size and checksum have matched (e.g. so
	// that a cache keeps it), before closing it.
	FetchPart func(ctx context.Context, index int) (io.ReadCloser, error)
	// FetchFallback must store the content object n in the transaction
	// (e.g. by fetching its .filez and calling tx.WriteContent with n's
	// checksum as expected). It is called only for fallbacks the
	// repository lacks. Nil: a delta needing fallbacks fails.
	FetchFallback func(ctx context.Context, n object.Name) error
	// VerifyCommit, if set, runs before anything is written, with the
	// superblock's embedded to-commit and its detached metadata (e.g. to
	// check a GPG signature). An error aborts the apply.
	VerifyCommit func(ctx context.Context, sb *Superblock) error
	// Progress, if set, is called after each part.
	Progress func(done, total int)
}

// ApplyStats reports what Apply did.
type ApplyStats struct {
	Parts, PartsSkipped int
	PartBytes           uint64 // bytes of part files fetched
	Objects             int    // objects written from parts
	Fallbacks           int    // fallback objects fetched
}

// Apply executes the delta whose superblock is given, writing every
// object it produces into tx, where each is checksum-verified before it
// is staged. It writes the target's detached metadata and the commit
// last. On error the caller should Abort tx: nothing becomes visible
// until tx.Commit.
func Apply(ctx context.Context, tx *repo.Transaction, superblock []byte, opts ApplyOptions) (*ApplyStats, error) {
	sb, err := DecodeSuperblock(superblock)
	if err != nil {
		return nil, err
	}
	st, err := applySuperblock(ctx, tx, sb, opts)
	if err != nil {
		return st, fmt.Errorf("delta %s: %w", sb.Name, err)
	}
	return st, nil
}

func applySuperblock(ctx context.Context, tx *repo.Transaction, sb *Superblock, opts ApplyOptions) (*ApplyStats, error) {
	st := &ApplyStats{}
	xz := bestXZ()
	if opts.VerifyCommit != nil {
		if err := opts.VerifyCommit(ctx, sb); err != nil {
			return st, err
		}
	}
	for _, fb := range sb.Fallbacks {
		ok, err := tx.Has(fb.Object)
		if err != nil {
			return st, err
		}
		if ok {
			continue
		}
		if opts.FetchFallback == nil {
			return st, fmt.Errorf("fallback object %s is missing and no fallback source was given", fb.Object)
		}
		if err := opts.FetchFallback(ctx, fb.Object); err != nil {
			return st, fmt.Errorf("fallback %s: %w", fb.Object, err)
		}
		if ok, err := tx.Has(fb.Object); err != nil || !ok {
			return st, fmt.Errorf("fallback %s: not stored by the fetcher (%v)", fb.Object, err)
		}
		st.Fallbacks++
	}
	// Parts whose objects are all present are skipped, as libostree
	// does; the rest are fetched and decoded one ahead of execution.
	var todo []int
	for i, ph := range sb.Parts {
		skip, err := allPresent(tx, ph.Objects)
		if err != nil {
			return st, err
		}
		if skip {
			st.PartsSkipped++
			continue
		}
		todo = append(todo, i)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type loaded struct {
		part  *payload
		bytes int
		err   error
	}
	tmp := tmpDir(tx.Repo())
	load := func(i int) <-chan loaded {
		ch := make(chan loaded, 1)
		go func() {
			part, n, err := loadPart(ctx, sb, i, opts.FetchPart, xz, tmp)
			ch <- loaded{part, n, err}
		}()
		return ch
	}
	// The part loading ahead is closed however the loop ends.
	var next <-chan loaded
	defer func() {
		if next != nil {
			cancel()
			if l := <-next; l.part != nil {
				l.part.Close()
			}
		}
	}()
	if len(todo) > 0 {
		next = load(todo[0])
	}
	for k, i := range todo {
		l := <-next
		next = nil
		if k+1 < len(todo) {
			next = load(todo[k+1])
		}
		if l.err != nil {
			return st, fmt.Errorf("%s: %w", partLabel(i), l.err)
		}
		st.PartBytes += uint64(l.bytes)
		n, err := executePayload(ctx, tx, l.part, sb.Parts[i].Objects)
		l.part.Close()
		st.Objects += n
		if err != nil {
			return st, fmt.Errorf("%s: %w", partLabel(i), err)
		}
		st.Parts++
		if opts.Progress != nil {
			opts.Progress(k+1, len(todo))
		}
	}
	if sb.CommitMeta != nil {
		if err := tx.WriteCommitMeta(sb.Name.To, sb.CommitMeta); err != nil {
			return st, err
		}
	}
	if _, err := tx.WriteMeta(object.TypeCommit, sb.Commit, &sb.Name.To); err != nil {
		return st, err
	}
	return st, nil
}

// loadPart fetches (unless inline), verifies and decodes part i as a
// stream, spooling its payload in tmpDir beyond SpoolMemory. It returns
// the number of bytes fetched.
func loadPart(ctx context.Context, sb *Superblock, i int, fetch func(context.Context, int) (io.ReadCloser, error), xz xzDecoder, tmpDir string) (*payload, int, error) {
	ph := sb.Parts[i]
	src := partSource{size: ph.Size, checksum: ph.Checksum}
	raw, inline := sb.Inline[i]
	if inline {
		// The superblock's digest (from the summary) vouches for inline
		// parts; their header checksum is checked as well.
		src.r = bytes.NewReader(raw)
		src.size = uint64(len(raw))
	} else {
		if ph.Size > MaxPartSize {
			return nil, 0, malformedf("declared size %d bytes exceeds the %d-byte limit for a part", ph.Size, MaxPartSize)
		}
		if fetch == nil {
			return nil, 0, fmt.Errorf("no part source given")
		}
		rc, err := fetch(ctx, i)
		if err != nil {
			return nil, 0, err
		}
		defer rc.Close()
		src.r = rc
	}
	p, err := readPart(ctx, src, maxPayload(ph.USize), tmpDir, max(len(ph.Objects), 1), xz)
	if err != nil {
		return nil, 0, err
	}
	if v, ok := src.r.(interface{ Verified() }); ok {
		v.Verified()
	}
	if inline {
		return p, 0, nil
	}
	return p, int(ph.Size), nil
}

func allPresent(tx *repo.Transaction, objs []object.Name) (bool, error) {
	for _, o := range objs {
		ok, err := tx.Has(o)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// executor runs one part's operations. The operation stream is read and
// checked in order; the data movement of each content object (blob and
// source copies, bspatch, hashing, writing its file) runs in a worker,
// up to writers objects at a time: objects of a part are independent
// (read sources are objects of the repository, never ones the delta
// writes).
type executor struct {
	ctx  context.Context
	tx   *repo.Transaction
	part *payload
	objs []object.Name
	next int // index of the object the next S or o creates

	src     *readSource
	lastSrc *readSource // stays open until the part ends
	cur     *openObject
	curSize uint64
	curN    uint64
	jobs    *jobs
}

// openObject is a content object between 'o' and 'c': its header and the
// steps that produce its data, run by a worker at 'c'.
type openObject struct {
	name  object.Name
	hdr   *object.FileHeader
	size  uint64
	steps []func(w io.Writer, buf []byte) error
	srcs  []*readSource // references held until the object is written
}

func (o *openObject) release() {
	for _, s := range o.srcs {
		s.release()
	}
	o.srcs = nil
}

// copyBufs are the workers' copy buffers: blob ranges and sources are
// section readers, for which io.Copy would allocate one per operation.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// writers is how many objects of a part are written at once.
func writers() int { return min(4, 2*runtime.GOMAXPROCS(0)) }

// jobs runs object writes in the background, at most cap(sem) at a
// time, and keeps the first error.
type jobs struct {
	sem chan struct{}
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func newJobs(n int) *jobs { return &jobs{sem: make(chan struct{}, n)} }

func (j *jobs) failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// start runs f in a worker once one is free.
func (j *jobs) start(ctx context.Context, f func() error) error {
	if err := j.failed(); err != nil {
		return err
	}
	select {
	case j.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer func() { <-j.sem }()
		if err := f(); err != nil {
			j.mu.Lock()
			if j.err == nil {
				j.err = err
			}
			j.mu.Unlock()
		}
	}()
	return nil
}

func (j *jobs) wait() error {
	j.wg.Wait()
	return j.failed()
}

// execute runs the operations of an in-memory part and returns how many
// objects it wrote.
func execute(ctx context.Context, tx *repo.Transaction, part *Part, objs []object.Name) (int, error) {
	p := &payload{
		modes:  part.Modes,
		xattrs: part.Xattrs,
		blob:   io.NewSectionReader(bytes.NewReader(part.Blob), 0, int64(len(part.Blob))),
		ops:    io.NewSectionReader(bytes.NewReader(part.Ops), 0, int64(len(part.Ops))),
	}
	return executePayload(ctx, tx, p, objs)
}

// executePayload runs a part's operations, read as a stream, and returns
// how many objects it wrote.
func executePayload(ctx context.Context, tx *repo.Transaction, part *payload, objs []object.Name) (int, error) {
	e := &executor{ctx: ctx, tx: tx, part: part, objs: objs, jobs: newJobs(writers())}
	defer e.cleanup()
	r := newOpStream(bufio.NewReaderSize(part.ops, 64<<10))
	for {
		at := r.Offset()
		meta := e.next < len(objs) && objs[e.next].Type.IsMeta()
		op, err := r.Next(meta)
		if err == io.EOF {
			break
		}
		if err == nil {
			err = e.run(op)
		}
		if err != nil {
			return e.next, fmt.Errorf("op %q at offset %d: %w", op.Code, at, err)
		}
		if err := e.jobs.failed(); err != nil {
			return e.next, err
		}
	}
	if err := e.jobs.wait(); err != nil {
		return e.next, err
	}
	if e.cur != nil {
		return e.next, malformedf("object %s left open at the end of the part", e.objs[e.next])
	}
	if e.next != len(objs) {
		return e.next, malformedf("operations created %d of the %d objects listed", e.next, len(objs))
	}
	return e.next, nil
}

func (e *executor) cleanup() {
	e.jobs.wait()
	if e.cur != nil {
		e.cur.release()
		e.cur = nil
	}
	e.src = nil
	if e.lastSrc != nil {
		e.lastSrc.release()
		e.lastSrc = nil
	}
}

// unsetSource clears the read source but keeps it open: operation
// streams toggle r/R around every literal run, and reopening an archive
// object means decompressing it again.
func (e *executor) unsetSource() { e.src = nil }

// setSource makes object c the read source, reusing the last one opened.
func (e *executor) setSource(c object.Checksum) error {
	if e.lastSrc != nil && e.lastSrc.name == c {
		e.src = e.lastSrc
		return nil
	}
	if e.lastSrc != nil {
		e.lastSrc.release()
		e.lastSrc = nil
	}
	src, err := openSource(e.tx.Repo(), c)
	if err != nil {
		return err
	}
	e.src, e.lastSrc = src, src
	return nil
}

// blobRange returns a reader of blob[off:off+n] or an error if out of
// range.
func (e *executor) blobRange(off, n uint64) (*io.SectionReader, error) {
	size := uint64(e.part.blob.Size())
	if off > size || n > size-off {
		return nil, malformedf("blob range [%d, +%d) outside the %d-byte blob", off, n, size)
	}
	return io.NewSectionReader(e.part.blob, int64(off), int64(n)), nil
}

// blob reads blob[off:off+n] into memory; n is at most max.
func (e *executor) blob(off, n uint64, max uint64, what string) ([]byte, error) {
	sr, err := e.blobRange(off, n)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, malformedf("%s of %d bytes, more than %d", what, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr, b); err != nil {
		return nil, fmt.Errorf("read part payload: %w", err)
	}
	return b, nil
}

func (e *executor) header(modeIdx, xattrIdx uint64) (*object.FileHeader, error) {
	if modeIdx >= uint64(len(e.part.modes)) {
		return nil, malformedf("mode index %d out of range (%d modes)", modeIdx, len(e.part.modes))
	}
	if xattrIdx >= uint64(len(e.part.xattrs)) {
		return nil, malformedf("xattr index %d out of range (%d lists)", xattrIdx, len(e.part.xattrs))
	}
	m := e.part.modes[modeIdx]
	return &object.FileHeader{UID: m.UID, GID: m.GID, Mode: m.Mode, Xattrs: e.part.xattrs[xattrIdx]}, nil
}

func (e *executor) target() (object.Name, error) {
	if e.next >= len(e.objs) {
		return object.Name{}, malformedf("creates more objects than the %d listed", len(e.objs))
	}
	return e.objs[e.next], nil
}

func (e *executor) run(op Op) error {
	a := op.Args
	if err := e.ctx.Err(); err != nil {
		return err
	}
	switch op.Code {
	case OpOpenSpliceAndClose:
		if e.cur != nil {
			return malformedf("splice while object %s is open", e.objs[e.next])
		}
		n, err := e.target()
		if err != nil {
			return err
		}
		if n.Type.IsMeta() {
			data, err := e.blob(a[1], a[0], repo.MaxMetadataSize, "metadata object")
			if err != nil {
				return err
			}
			if _, err := e.tx.WriteMeta(n.Type, data, &n.Checksum); err != nil {
				return err
			}
		} else {
			h, err := e.header(a[0], a[1])
			if err != nil {
				return err
			}
			data, err := e.blobRange(a[3], a[2])
			if err != nil {
				return err
			}
			size := a[2]
			switch h.Mode & object.ModeTypeMask {
			case object.ModeSymlink:
				target, err := e.blob(a[3], a[2], object.MaxHeaderSize, "symlink target")
				if err != nil {
					return err
				}
				h.SymlinkTarget, size = string(target), 0
				data = io.NewSectionReader(bytes.NewReader(nil), 0, 0)
			case object.ModeRegular:
			default:
				return malformedf("object %s: mode %#o is neither a regular file nor a symlink", n, h.Mode)
			}
			if err := h.Validate(); err != nil {
				return malformedf("object %s: %v", n, err)
			}
			if err := e.jobs.start(e.ctx, func() error {
				w, err := e.tx.ContentWriter(h, size)
				if err != nil {
					return err
				}
				buf := copyBufs.Get().(*[]byte)
				defer copyBufs.Put(buf)
				if _, err := io.CopyBuffer(w, data, *buf); err != nil {
					w.Abort()
					return err
				}
				_, err = w.Commit(&n.Checksum)
				return err
			}); err != nil {
				return err
			}
		}
		e.next++
	case OpOpen:
		if e.cur != nil {
			return malformedf("open while object %s is open", e.objs[e.next])
		}
		n, err := e.target()
		if err != nil {
			return err
		}
		if n.Type != object.TypeFile {
			return malformedf("open of %s, which is not a content object", n)
		}
		h, err := e.header(a[0], a[1])
		if err != nil {
			return err
		}
		if h.Mode&object.ModeTypeMask != object.ModeRegular {
			return malformedf("open of %s with mode %#o: only regular files can be opened", n, h.Mode)
		}
		e.cur = &openObject{name: n, hdr: h, size: a[2]}
		e.curSize, e.curN = a[2], 0
	case OpWrite:
		if e.cur == nil {
			return malformedf("write with no open object")
		}
		length, off := a[0], a[1]
		if length > e.curSize-e.curN {
			return malformedf("write of %d bytes past the declared size %d of %s", length, e.curSize, e.objs[e.next])
		}
		if e.src == nil {
			data, err := e.blobRange(off, length)
			if err != nil {
				return err
			}
			e.cur.steps = append(e.cur.steps, func(w io.Writer, buf []byte) error {
				_, err := io.CopyBuffer(w, data, buf)
				return err
			})
		} else {
			src := e.src
			if off > src.size || length > src.size-off {
				return malformedf("source range [%d, +%d) outside the %d-byte source %s", off, length, src.size, src.name)
			}
			e.cur.hold(src)
			e.cur.steps = append(e.cur.steps, func(w io.Writer, buf []byte) error {
				if _, err := io.CopyBuffer(w, io.NewSectionReader(src, int64(off), int64(length)), buf); err != nil {
					return fmt.Errorf("copy from source %s: %w", src.name, err)
				}
				return nil
			})
		}
		e.curN += length
	case OpSetReadSource:
		b, err := e.blob(a[0], 32, 32, "checksum")
		if err != nil {
			return err
		}
		c, _ := object.ChecksumFromBytes(b)
		if err := e.setSource(c); err != nil {
			return err
		}
	case OpUnsetReadSource:
		e.unsetSource()
	case OpClose:
		if e.cur == nil {
			return malformedf("close with no open object")
		}
		if e.curN != e.curSize {
			return malformedf("close of %s after %d of its %d bytes", e.objs[e.next], e.curN, e.curSize)
		}
		o := e.cur
		e.cur = nil
		if err := e.jobs.start(e.ctx, func() error {
			defer o.release()
			w, err := e.tx.ContentWriter(o.hdr, o.size)
			if err != nil {
				return err
			}
			buf := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(buf)
			for _, step := range o.steps {
				if err := step(w, *buf); err != nil {
					w.Abort()
					return err
				}
			}
			_, err = w.Commit(&o.name.Checksum)
			return err
		}); err != nil {
			o.release()
			return err
		}
		e.unsetSource()
		e.next++
	case OpBspatch:
		if e.cur == nil || e.src == nil {
			return malformedf("bspatch needs an open object and a read source")
		}
		if e.curN != 0 {
			return malformedf("bspatch into a partly written object")
		}
		patch, err := e.blobRange(a[0], a[1])
		if err != nil {
			return err
		}
		src, size, name := e.src, e.curSize, e.objs[e.next]
		e.cur.hold(src)
		e.cur.steps = append(e.cur.steps, func(w io.Writer, _ []byte) error {
			if err := bsdiff.PatchReader(src, int64(src.size), bufio.NewReaderSize(patch, 64<<10), patch.Size(), size, w); err != nil {
				if errors.Is(err, bsdiff.ErrCorrupt) {
					return malformedf("object %s: %v", name, err)
				}
				return fmt.Errorf("object %s: %w", name, err)
			}
			return nil
		})
		e.curN = e.curSize
	}
	return nil
}

// readSource is random access to a local content object's file data,
// shared by the executor and the objects being written from it; the
// last reference closes it. bsdiff and rollsum copies read a source in
// many small pieces (thousands per binary), each of which would be a
// pread system call: a small source is read into memory at once, a
// larger one mapped, as libostree maps its sources (a mapping costs an
// munmap, which interrupts the other CPUs running the process).
type readSource struct {
	name   object.Checksum
	size   uint64
	f      *os.File
	data   []byte  // the file's data; nil for an empty file or if reading it failed
	mapped bool    // data is a mapping, else buf holds it
	buf    *[]byte // from smallSources
	refs   atomic.Int32
}

// smallSource is the largest source read into memory whole.
const smallSource = 1 << 20

var smallSources = sync.Pool{New: func() any { b := make([]byte, smallSource); return &b }}

func (s *readSource) ReadAt(p []byte, off int64) (int, error) {
	if s.data == nil {
		return s.f.ReadAt(p, off)
	}
	if off < 0 {
		return 0, fmt.Errorf("source %s: negative offset", s.name)
	}
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *readSource) release() {
	if s.refs.Add(-1) == 0 {
		if s.mapped {
			unix.Munmap(s.data)
		}
		if s.buf != nil {
			smallSources.Put(s.buf)
			s.buf = nil
		}
		s.data = nil
		s.f.Close()
	}
}

// hold keeps src open until the object is written.
func (o *openObject) hold(src *readSource) {
	for _, s := range o.srcs {
		if s == src {
			return
		}
	}
	src.refs.Add(1)
	o.srcs = append(o.srcs, src)
}

// openSource opens a local content object for random access: bare
// objects directly, archive objects decompressed into an unlinked
// temporary file.
func openSource(r *repo.Repo, c object.Checksum) (*readSource, error) {
	content, err := r.OpenContent(c)
	if err != nil {
		if errors.Is(err, repo.ErrObjectNotFound) {
			return nil, fmt.Errorf("source object %s.file is not in the repository: %w", c, err)
		}
		return nil, fmt.Errorf("source object %s: %w", c, err)
	}
	defer content.Close()
	if f, ok := content.ReadCloser.(*os.File); ok {
		// Bare mode: the object file is the data. Reopen so the
		// descriptor outlives content.
		nf, err := os.Open(f.Name())
		if err != nil {
			return nil, fmt.Errorf("source object %s: %w", c, err)
		}
		return newReadSource(c, content.Size, nf), nil
	}
	tmp, err := os.OpenFile(filepath.Join(r.Path(), "tmp"), os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("source object %s: %w", c, err)
	}
	n, err := io.Copy(tmp, content)
	if err == nil && uint64(n) != content.Size {
		err = fmt.Errorf("read %d of %d bytes", n, content.Size)
	}
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("source object %s: %w", c, err)
	}
	return newReadSource(c, content.Size, tmp), nil
}

func newReadSource(c object.Checksum, size uint64, f *os.File) *readSource {
	s := &readSource{name: c, size: size, f: f}
	switch {
	case size == 0:
	case size <= smallSource:
		buf := smallSources.Get().(*[]byte)
		if n, err := f.ReadAt((*buf)[:size], 0); err == nil && uint64(n) == size {
			s.data, s.buf = (*buf)[:size], buf
		} else {
			smallSources.Put(buf) // ReadAt reads the file
		}
	case size <= maxMapped:
		// Objects are never modified in place, so the mapping cannot
		// shrink under the reader; without it, ReadAt reads the file.
		if data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			s.data, s.mapped = data, true
		}
	}
	s.refs.Store(1)
	return s
}

// maxMapped bounds a source mapping (address space only: pages are
// read in as used and belong to the page cache).
const maxMapped = 1 << 30
