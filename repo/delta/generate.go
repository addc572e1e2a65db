package delta

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta/bsdiff"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// Generator defaults, libostree's (decimal megabytes).
const (
	DefaultMaxChunkSize    = 32_000_000
	DefaultMinFallbackSize = 4_000_000
	DefaultMaxBsdiffSize   = 128_000_000
)

// GenerateOptions controls Generate. Zero values mean the defaults.
type GenerateOptions struct {
	// MaxChunkSize is the payload size at which a part is cut.
	MaxChunkSize uint64
	// MinFallbackSize: new content objects larger than this, with no
	// similar file in the source, are left out of the delta for the
	// client to fetch whole. NoFallbacks puts everything in parts.
	MinFallbackSize uint64
	NoFallbacks     bool
	// MaxBsdiffSize bounds old+new size of a file pair that is diffed in
	// memory (rollsum or bsdiff); memory use is both files plus about 9
	// bytes per byte of the old file.
	MaxBsdiffSize  uint64
	DisableBsdiff  bool
	DisableRollsum bool
	// Workers is how many files are diffed at once (default: up to 2).
	// Each holds an old and a new file and a suffix array in memory.
	Workers int
	// Inline stores the parts in the superblock.
	Inline bool
	// Compression of the parts; see Compression.
	Compression Compression
	// XZExtreme uses xz's extreme presets (about 5% smaller, twice as
	// slow) when compressing with the xz command.
	XZExtreme bool
	// Metadata is extra superblock metadata, placed first.
	Metadata object.Metadata
	// Timestamp of the delta; zero means now.
	Timestamp time.Time
}

// GenerateStats reports how Generate encoded the delta.
type GenerateStats struct {
	Name                   Name
	Digest                 [32]byte // of the superblock
	Parts, Fallbacks       int
	SuperblockSize         int64
	PartsSize              int64 // bytes of the part files (0 if inline: they are in the superblock)
	FallbackSize           int64 // .filez bytes of the fallback objects, fetched separately
	Reused                 int   // objects of the target the source already has
	Plain, Rollsum, Bsdiff int   // content objects by encoding
	// Stored is how many whole objects went into parts stored without compression
	// because a sample showed they do not compress; NoDiff how many
	// files with a source were sent whole without diffing because a
	// sample showed they share too little with it.
	Stored, NoDiff          int
	Meta                    int    // metadata objects
	NewBytes, ModifiedBytes uint64 // uncompressed sizes of new and modified content
}

// TotalSize is the size of the delta's files: superblock plus parts
// (fallbacks come on top).
func (s *GenerateStats) TotalSize() int64 {
	return s.SuperblockSize + s.PartsSize
}

// Generate writes the static delta from → to (from zero: from empty) into
// r's deltas/ directory, replacing one that exists. Everything is written
// in a staging directory and moved into place with one rename, so a
// reader sees the old delta or the complete new one.
//
// Objects the source commit has are not carried. A changed regular file
// with a plausible source (same path; else same name elsewhere with a
// size within 30%; else a name equal but for version numbers in the same
// directory) is encoded as copies from the old file (rollsum) or as a
// bsdiff patch, whichever measures smaller, or whole when neither wins.
// Parts are xz-compressed and cut at MaxChunkSize.
func Generate(ctx context.Context, r *repo.Repo, from, to object.Checksum, opts GenerateOptions) (*GenerateStats, error) {
	g := &generator{ctx: ctx, r: r, opts: opts, name: Name{From: from, To: to}}
	st, err := g.run()
	if err != nil {
		return nil, fmt.Errorf("generate delta %s: %w", g.name, err)
	}
	return st, nil
}

type fromFile struct {
	path string
	sum  object.Checksum
}

type newContent struct {
	path string
	sum  object.Checksum
}

type generator struct {
	ctx  context.Context
	r    *repo.Repo
	opts GenerateOptions
	name Name

	have    repo.Reachable             // objects of the source commit
	byPath  map[string]object.Checksum // source files by path
	byBase  map[string][]fromFile      // source files by base name
	byFuzzy map[string][]fromFile      // source files by dir + name without digits
	stage   string
	sb      Superblock
	pw      *PartWriter
	rawPW   *PartWriter // incompressible objects: parts in stored xz chunks
	st      GenerateStats
	est     *zstd.Encoder

	compress compressor
	// Parts are compressed in the background, at most two at a time.
	slots   chan struct{}
	pending []*pendingPart
}

func (g *generator) run() (*GenerateStats, error) {
	o := &g.opts
	if o.MaxChunkSize == 0 {
		o.MaxChunkSize = DefaultMaxChunkSize
	}
	if o.MinFallbackSize == 0 {
		o.MinFallbackSize = DefaultMinFallbackSize
	}
	if o.MaxBsdiffSize == 0 {
		o.MaxBsdiffSize = DefaultMaxBsdiffSize
	}
	commit, err := g.r.ReadMeta(object.TypeCommit, g.name.To)
	if err != nil {
		return nil, err
	}
	if object.SumMeta(commit) != g.name.To {
		return nil, fmt.Errorf("commit %s is corrupt", g.name.To)
	}
	cm, err := object.UnmarshalCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", g.name.To, err)
	}
	if g.r.IsPartial(g.name.To) {
		return nil, fmt.Errorf("commit %s is partial", g.name.To)
	}
	detached, err := g.r.ReadCommitMeta(g.name.To)
	if err != nil {
		return nil, err
	}
	ts := o.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	g.sb = Superblock{Name: g.name, Metadata: o.Metadata, Timestamp: uint64(ts.Unix()), Commit: commit, CommitMeta: detached}
	g.st.Name = g.name

	g.have = repo.Reachable{}
	g.byPath, g.byBase, g.byFuzzy = map[string]object.Checksum{}, map[string][]fromFile{}, map[string][]fromFile{}
	if !g.name.From.IsZero() {
		if g.r.IsPartial(g.name.From) {
			return nil, fmt.Errorf("source commit %s is partial", g.name.From)
		}
		fc, err := g.r.LoadCommit(g.name.From)
		if err != nil {
			return nil, fmt.Errorf("source commit: %w", err)
		}
		g.have.Add(object.Name{Checksum: g.name.From, Type: object.TypeCommit})
		if err := g.indexSource(repo.Tree{DirTree: fc.RootTree, DirMeta: fc.RootMeta}, "/"); err != nil {
			return nil, fmt.Errorf("source commit %s: %w", g.name.From, err)
		}
	}

	if err := os.MkdirAll(filepath.Join(g.r.Path(), "tmp"), 0o755); err != nil {
		return nil, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	g.stage = filepath.Join(g.r.Path(), "tmp", "delta-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(g.stage, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(g.stage)
	if g.compress, err = newCompressor(o.Compression, o.XZExtreme); err != nil {
		return nil, err
	}
	g.slots = make(chan struct{}, 2)
	defer g.wait()
	if g.est, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(4)); err != nil {
		return nil, err
	}
	defer g.est.Close()

	// Metadata first (the client can then walk the tree while content
	// parts arrive), content after, in tree order.
	var content []newContent
	seen := repo.Reachable{}
	g.pw, g.rawPW = NewPartWriter(), NewPartWriter()
	if err := g.walkTarget(repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta}, "/", seen, &content); err != nil {
		return nil, err
	}
	if err := g.encodeAll(content); err != nil {
		return nil, err
	}
	if err := g.flush(false); err != nil {
		return nil, err
	}
	if err := g.flush(true); err != nil {
		return nil, err
	}
	if err := g.wait(); err != nil {
		return nil, err
	}
	return &g.st, g.publish()
}

// indexSource records the objects and file paths of the source tree.
func (g *generator) indexSource(t repo.Tree, dir string) error {
	g.have.Add(object.Name{Checksum: t.DirMeta, Type: object.TypeDirMeta})
	if !g.have.Add(object.Name{Checksum: t.DirTree, Type: object.TypeDirTree}) {
		// The same subtree elsewhere: its objects are known; paths
		// under it only add candidates, which the first copy gave.
		return nil
	}
	dt, err := g.r.LoadDirTree(t.DirTree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		g.have.Add(object.Name{Checksum: f.Checksum, Type: object.TypeFile})
		p := path.Join(dir, f.Name)
		g.byPath[p] = f.Checksum
		ff := fromFile{p, f.Checksum}
		g.byBase[f.Name] = append(g.byBase[f.Name], ff)
		k := fuzzyKey(dir, f.Name)
		g.byFuzzy[k] = append(g.byFuzzy[k], ff)
	}
	for _, d := range dt.Dirs {
		if err := g.indexSource(repo.Tree{DirTree: d.Tree, DirMeta: d.Meta}, path.Join(dir, d.Name)); err != nil {
			return err
		}
	}
	return nil
}

var digits = regexp.MustCompile(`[0-9]+`)

// fuzzyKey names a file the same across version bumps:
// /usr/lib/libfoo.so.1.2 and /usr/lib/libfoo.so.1.3 share a key.
func fuzzyKey(dir, name string) string {
	return dir + "\x00" + digits.ReplaceAllString(name, "#")
}

// walkTarget emits the target's new metadata objects and lists its new
// content objects.
func (g *generator) walkTarget(t repo.Tree, dir string, seen repo.Reachable, content *[]newContent) error {
	if err := g.addMeta(object.Name{Checksum: t.DirMeta, Type: object.TypeDirMeta}, seen); err != nil {
		return err
	}
	dtName := object.Name{Checksum: t.DirTree, Type: object.TypeDirTree}
	if g.have.Has(dtName) {
		// The source has this whole subtree (indexSource saw all of it).
		g.st.Reused++
		return nil
	}
	if seen.Has(dtName) {
		return nil // the same subtree elsewhere in the target, emitted already
	}
	if err := g.addMeta(dtName, seen); err != nil {
		return err
	}
	dt, err := g.r.LoadDirTree(t.DirTree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		n := object.Name{Checksum: f.Checksum, Type: object.TypeFile}
		if g.have.Has(n) {
			g.st.Reused++
			continue
		}
		if seen.Add(n) {
			*content = append(*content, newContent{path.Join(dir, f.Name), f.Checksum})
		}
	}
	for _, d := range dt.Dirs {
		if err := g.walkTarget(repo.Tree{DirTree: d.Tree, DirMeta: d.Meta}, path.Join(dir, d.Name), seen, content); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) addMeta(n object.Name, seen repo.Reachable) error {
	if g.have.Has(n) || !seen.Add(n) {
		return nil
	}
	data, err := g.r.ReadMeta(n.Type, n.Checksum)
	if err != nil {
		return err
	}
	if object.SumMeta(data) != n.Checksum {
		return fmt.Errorf("%s is corrupt", n)
	}
	off := g.pw.Blob(data)
	g.pw.Op(OpOpenSpliceAndClose, uint64(len(data)), off)
	g.pw.Add(n, uint64(len(data)))
	g.st.Meta++
	return g.maybeFlush()
}

// source picks the old file a new file most plausibly derives from.
func (g *generator) source(p string, size uint64) (object.Checksum, bool) {
	if c, ok := g.byPath[p]; ok {
		return c, true
	}
	dir, base := path.Split(p)
	similar := func(cands []fromFile) (object.Checksum, bool) {
		best, bestDiff := object.Checksum{}, uint64(1<<63)
		for i, c := range cands {
			if i >= 16 {
				break
			}
			oc, err := g.r.OpenContent(c.sum)
			if err != nil {
				continue
			}
			oc.Close()
			if oc.Header.IsSymlink() {
				continue
			}
			d := max(oc.Size, size) - min(oc.Size, size)
			if 10*d <= 3*min(oc.Size, size) && d < bestDiff {
				best, bestDiff = c.sum, d
			}
		}
		return best, bestDiff != 1<<63
	}
	if c, ok := similar(g.byBase[base]); ok {
		return c, true
	}
	return similar(g.byFuzzy[fuzzyKey(path.Clean(dir), base)])
}

// encoding kinds of a content object.
const (
	encWhole = iota
	encSymlink
	encRollsum
	encBsdiff
	encFallback
)

// encoded is a content object's chosen encoding, computed in parallel
// and emitted in tree order.
type encoded struct {
	nc     newContent
	hdr    *object.FileHeader
	size   uint64
	kind   int
	data   []byte // whole: the file data
	old    object.Checksum
	segs   []segment // rollsum
	patch  []byte    // bsdiff
	zsize  uint64    // fallback: .filez size
	raw    bool      // whole: incompressible, goes to an uncompressed part
	noDiff bool      // a source existed but shares too little to diff
	err    error
}

// encodeAll encodes the content objects with up to Workers diffs at a
// time, emitting the results in order. At most a few encoded objects
// wait in memory.
func (g *generator) encodeAll(content []newContent) error {
	workers := g.opts.Workers
	if workers <= 0 {
		workers = min(2, runtime.GOMAXPROCS(0))
	}
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	queue := make(chan chan encoded, 2*workers)
	sem := make(chan struct{}, workers)
	go func() {
		defer close(queue)
		for _, nc := range content {
			ch := make(chan encoded, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				ch <- g.encode(ctx, nc)
			}()
		}
	}()
	for ch := range queue {
		var e encoded
		select {
		case e = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if e.err != nil {
			return fmt.Errorf("%s (%s): %w", e.nc.path, e.nc.sum, e.err)
		}
		if err := g.emit(e); err != nil {
			return fmt.Errorf("%s (%s): %w", e.nc.path, e.nc.sum, err)
		}
	}
	return ctx.Err()
}

// encode chooses how to carry one content object.
func (g *generator) encode(ctx context.Context, nc newContent) (e encoded) {
	e.nc = nc
	if e.err = ctx.Err(); e.err != nil {
		return e
	}
	c, err := g.r.OpenContent(nc.sum)
	if err != nil {
		e.err = err
		return e
	}
	defer c.Close()
	e.hdr, e.size = c.Header, c.Size
	if c.Header.IsSymlink() {
		e.kind = encSymlink
		return e
	}
	if !g.name.From.IsZero() && c.Size > 0 {
		if old, ok := g.source(nc.path, c.Size); ok {
			if e.err = g.tryDiff(&e, c, old); e.err != nil || e.kind != encWhole {
				return e
			}
		}
	}
	if !g.opts.NoFallbacks && c.Size > g.opts.MinFallbackSize {
		e.kind = encFallback
		var data io.Reader = c
		if e.data != nil {
			data = bytes.NewReader(e.data)
		}
		e.zsize, e.err = g.filezSize(nc.sum, c.Header, c.Size, data)
		e.data = nil
		return e
	}
	if e.data == nil {
		if e.data, e.err = readAll(c, c.Size); e.err != nil {
			return e
		}
	}
	e.raw = g.incompressible(e.data)
	return e
}

// Objects at least this large are checked for compressibility; smaller
// ones stay in the compressed parts, where they share xz's window.
const minStoredSize = 16 << 10

// incompressible reports, from a few samples compressed with zstd's
// fastest level, whether data would gain almost nothing from xz. xz
// crawls through such data (about 1.5 MB/s on random bytes), so it goes
// into parts whose xz stream stores it as is (writeXZStored).
func (g *generator) incompressible(data []byte) bool {
	if len(data) < minStoredSize || g.opts.Compression == CompressNone {
		return false
	}
	const win = 16 << 10
	var in, out int
	for i := 0; i < 4; i++ {
		off := (len(data) - win) * i / 3
		in += win
		out += g.estimate(data[off : off+win])
	}
	// zstd-fastest within 2% of the input: xz will not do much better
	// on such data (compressed archives, images, random bytes).
	return out*100 >= in*98
}

func readAll(r io.Reader, size uint64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("read %d bytes: %w", size, err)
	}
	return data, nil
}

// estimate is a fast stand-in for the compressed size of b in a part.
func (g *generator) estimate(b []byte) int {
	return len(g.est.EncodeAll(b, make([]byte, 0, len(b)/4+64)))
}

// tryDiff measures the rollsum and bsdiff encodings of the new file
// against the old one and sets e to the smallest, if it beats the whole
// file. It leaves the new data in e.data when it read it.
func (g *generator) tryDiff(e *encoded, c *repo.Content, oldSum object.Checksum) error {
	oc, err := g.r.OpenContent(oldSum)
	if err != nil {
		return err
	}
	defer oc.Close()
	if oc.Size == 0 || oc.Size+c.Size > g.opts.MaxBsdiffSize {
		return nil
	}
	old, err := readAll(oc, oc.Size)
	if err != nil {
		return fmt.Errorf("source %s: %w", oldSum, err)
	}
	data, err := readAll(c, c.Size)
	if err != nil {
		return err
	}
	e.data, e.old = data, oldSum
	if !mayShare(old, data) {
		// Unrelated content (random, re-compressed, rewritten): no
		// copy can win, and bsdiff would spend seconds finding that.
		e.noDiff = true
		return nil
	}
	bestCost := g.estimate(data)
	if !g.opts.DisableRollsum {
		segs, literal := rollsumMatch(old, data)
		if literal < len(data) {
			lits := make([]byte, 0, literal)
			for _, s := range segs {
				if !s.Copy {
					lits = append(lits, data[s.NewOff:s.NewOff+s.Len]...)
				}
			}
			if cost := g.estimate(lits) + 6*len(segs); cost < bestCost {
				bestCost, e.kind, e.segs = cost, encRollsum, segs
			}
			// Nearly everything copied: bsdiff cannot do much better
			// and would cost time.
			if literal*100 < len(data) {
				return nil
			}
		}
	}
	if !g.opts.DisableBsdiff {
		patch := bsdiff.Diff(old, data)
		if cost := g.estimate(patch) + 16; cost < bestCost {
			e.kind, e.patch, e.segs = encBsdiff, patch, nil
		}
	}
	return nil
}

// emit adds an encoded object to the current part (or the fallbacks).
func (g *generator) emit(e encoded) error {
	n := object.Name{Checksum: e.nc.sum, Type: object.TypeFile}
	if e.kind == encFallback {
		g.sb.Fallbacks = append(g.sb.Fallbacks, Fallback{Object: n, Size: e.zsize, USize: e.size})
		g.st.Fallbacks++
		g.st.FallbackSize += int64(e.zsize)
		g.st.NewBytes += e.size
		return nil
	}
	if e.noDiff {
		g.st.NoDiff++
	}
	pw := g.pw
	if e.kind == encWhole && e.raw {
		pw = g.rawPW
		g.st.Stored++
	}
	modeIdx, xattrIdx := pw.Mode(e.hdr), pw.Xattrs(e.hdr.Xattrs)
	switch e.kind {
	case encSymlink:
		t := []byte(e.hdr.SymlinkTarget)
		pw.Op(OpOpenSpliceAndClose, modeIdx, xattrIdx, uint64(len(t)), pw.Blob(t))
		pw.Add(n, uint64(len(t)))
		g.st.Plain++
	case encWhole:
		pw.Op(OpOpenSpliceAndClose, modeIdx, xattrIdx, uint64(len(e.data)), pw.Blob(e.data))
		pw.Add(n, e.size)
		g.st.Plain++
		g.st.NewBytes += e.size
	case encBsdiff:
		// The sequence libostree emits: r, o, B, c, R.
		pw.Op(OpSetReadSource, pw.Blob(e.old[:]))
		pw.Op(OpOpen, modeIdx, xattrIdx, e.size)
		pw.Op(OpBspatch, pw.Blob(e.patch), uint64(len(e.patch)))
		pw.Op(OpClose)
		pw.Op(OpUnsetReadSource)
		pw.Add(n, e.size)
		g.st.Bsdiff++
		g.st.ModifiedBytes += e.size
	case encRollsum:
		pw.Op(OpOpen, modeIdx, xattrIdx, e.size)
		csumOff, haveCsum, srcSet := uint64(0), false, false
		for _, s := range e.segs {
			if s.Copy {
				if !srcSet {
					if !haveCsum {
						csumOff, haveCsum = pw.Blob(e.old[:]), true
					}
					pw.Op(OpSetReadSource, csumOff)
					srcSet = true
				}
				pw.Op(OpWrite, uint64(s.Len), uint64(s.Off))
				continue
			}
			if srcSet {
				pw.Op(OpUnsetReadSource)
				srcSet = false
			}
			pw.Op(OpWrite, uint64(s.Len), pw.Blob(e.data[s.NewOff:s.NewOff+s.Len]))
		}
		pw.Op(OpClose)
		if srcSet {
			pw.Op(OpUnsetReadSource)
		}
		pw.Add(n, e.size)
		g.st.Rollsum++
		g.st.ModifiedBytes += e.size
	}
	return g.maybeFlush()
}

// filezSize is the size of a content object in .filez form, which
// fallback entries record.
func (g *generator) filezSize(sum object.Checksum, h *object.FileHeader, size uint64, data io.Reader) (uint64, error) {
	if g.r.IsArchive() {
		var st unix.Stat_t
		if err := unix.Stat(g.r.ObjectPath(sum, object.TypeFile), &st); err != nil {
			return 0, err
		}
		return uint64(st.Size), nil
	}
	cw := &countWriter{}
	fz, err := object.NewFilezWriter(cw, h, size, repo.CompressionLevel)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(fz, data); err != nil {
		return 0, err
	}
	if err := fz.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

type countWriter struct{ n uint64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += uint64(len(p)); return len(p), nil }

func (g *generator) maybeFlush() error {
	if uint64(g.pw.Size()) >= g.opts.MaxChunkSize {
		if err := g.flush(false); err != nil {
			return err
		}
	}
	if uint64(g.rawPW.Size()) >= g.opts.MaxChunkSize {
		return g.flush(true)
	}
	return nil
}

// pendingPart is a part being compressed and written.
type pendingPart struct {
	done chan struct{}
	raw  []byte // kept only for inline parts
	sum  [32]byte
	size int
	err  error
}

// flush hands the current part (raw: the uncompressed one), if it has
// objects, to a background compressor; wait collects the results in
// order.
func (g *generator) flush(raw bool) error {
	pw := g.pw
	if raw {
		pw = g.rawPW
	}
	if len(pw.Objects) == 0 {
		return nil
	}
	if raw {
		g.rawPW = NewPartWriter()
	} else {
		g.pw = NewPartWriter()
	}
	i := len(g.sb.Parts)
	payload, err := pw.Part().Marshal()
	if err != nil {
		return fmt.Errorf("%s: %w", partLabel(i), err)
	}
	g.sb.Parts = append(g.sb.Parts, PartHeader{USize: pw.USize, Objects: pw.Objects})
	p := &pendingPart{done: make(chan struct{})}
	g.pending = append(g.pending, p)
	select {
	case g.slots <- struct{}{}:
	case <-g.ctx.Done():
		close(p.done)
		return g.ctx.Err()
	}
	go func() {
		defer func() { <-g.slots; close(p.done) }()
		compress := g.compress
		if raw {
			compress = func(_ context.Context, dst io.Writer, payload []byte) error {
				if _, err := dst.Write([]byte{CompressionXZ}); err != nil {
					return err
				}
				return writeXZStored(dst, payload)
			}
			if !g.opts.Inline {
				// Stored parts are as large as their payload: write
				// them straight to the file instead of through memory.
				p.sum, p.size, p.err = writePartFile(g.ctx, filepath.Join(g.stage, strconv.Itoa(i)), payload, compress)
				if p.err != nil {
					p.err = fmt.Errorf("%s: %w", partLabel(i), p.err)
				}
				return
			}
		}
		var buf bytes.Buffer
		if p.err = compress(g.ctx, &buf, payload); p.err != nil {
			p.err = fmt.Errorf("%s: %w", partLabel(i), p.err)
			return
		}
		raw := buf.Bytes()
		p.sum, p.size = sha256.Sum256(raw), len(raw)
		if g.opts.Inline {
			p.raw = raw
			return
		}
		p.err = writeSynced(filepath.Join(g.stage, strconv.Itoa(i)), raw)
	}()
	return nil
}

// wait waits for every part in flight and fills in their headers.
func (g *generator) wait() error {
	var first error
	for i, p := range g.pending {
		<-p.done
		if p.err != nil {
			if first == nil {
				first = p.err
			}
			continue
		}
		if first != nil {
			continue
		}
		g.sb.Parts[i].Checksum, g.sb.Parts[i].Size = p.sum, uint64(p.size)
		g.st.Parts++
		g.st.PartsSize += int64(p.size)
		if p.raw != nil {
			if g.sb.Inline == nil {
				g.sb.Inline = map[int][]byte{}
			}
			g.sb.Inline[i] = p.raw
		}
	}
	g.pending = nil
	return first
}

// writePartFile writes a part file synced, hashing it on the way.
func writePartFile(ctx context.Context, p string, payload []byte, compress compressor) (sum [32]byte, size int, err error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return sum, 0, err
	}
	h, cw := sha256.New(), &countWriter{}
	bw := bufio.NewWriterSize(io.MultiWriter(f, h, cw), 256<<10)
	err = compress(ctx, bw, payload)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	copy(sum[:], h.Sum(nil))
	return sum, int(cw.n), err
}

func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// publish writes the superblock and moves the staged delta into place.
func (g *generator) publish() error {
	raw, err := g.sb.Marshal()
	if err != nil {
		return err
	}
	if len(raw) > MaxSuperblockSize {
		return fmt.Errorf("superblock of %d bytes exceeds %d (too many inline parts?)", len(raw), MaxSuperblockSize)
	}
	if err := writeSynced(filepath.Join(g.stage, "superblock"), raw); err != nil {
		return err
	}
	g.st.Digest = Digest(raw)
	g.st.SuperblockSize = int64(len(raw))
	if g.opts.Inline {
		g.st.PartsSize = 0 // counted in the superblock
	}
	if err := fsutil.SyncDir(g.stage); err != nil {
		return err
	}
	dst := filepath.Join(g.r.Path(), g.name.Dir())
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, g.stage, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		// Replace the old delta in one step, then remove it.
		if err = unix.Renameat2(unix.AT_FDCWD, g.stage, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err == nil {
			os.RemoveAll(g.stage)
		}
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", g.name.Dir(), err)
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}
