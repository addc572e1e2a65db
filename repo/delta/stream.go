package delta

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"sync"

	"github.com/osupdate/os-update/internal/lzma"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Memory bounds of part decoding. A part is read as a stream: the part
// file is hashed as it arrives and decompressed straight into a spool,
// which keeps up to SpoolMemory bytes of payload in memory and moves to
// an unlinked file in the repository's tmp/ beyond that (the payload's
// framing offsets sit at its end, so it needs random access). Operations
// are then read from the spool as a stream, and blob ranges are copied
// from it in 64 KiB steps; only the mode and xattr tables are decoded
// into memory.
const (
	// MaxPartSize bounds the part file size a superblock may declare.
	// libostree cuts parts at 32 MB of payload by default; only a
	// single huge object without a fallback comes near this.
	MaxPartSize = 1 << 30
	// SpoolMemory is how much of a part's payload is held in memory.
	SpoolMemory = 16 << 20
	// maxTableSection bounds each of the mode and xattr table sections
	// of a payload, which are decoded into memory.
	maxTableSection = 16 << 20
	// maxXZDict bounds the dictionary an xz stream may ask of the
	// built-in decoder (libostree's presets use at most 64 MiB); the xz
	// command gets --memlimit-decompress instead.
	maxXZDict = 64 << 20
)

// payload is a decoded part payload whose blob and operations stay in
// the spool.
type payload struct {
	modes  []Mode
	xattrs [][]object.Xattr
	blob   *io.SectionReader
	ops    *io.SectionReader
	spool  *spool
}

func (p *payload) Close() error {
	if p.spool != nil {
		return p.spool.Close()
	}
	return nil
}

// spool holds a payload: in memory up to mem bytes, then in an unlinked
// temporary file in dir. With dir empty it never leaves memory (and
// fails beyond mem).
type spool struct {
	dir    string
	mem    int
	buf    []byte
	pooled *[]byte // buf's array, from spoolBufs
	f      *os.File
	n      int64
}

// spoolBufs are the in-memory spools of Apply, which has at most two
// parts in flight: reused, not allocated (and faulted in) for every part.
var spoolBufs = sync.Pool{New: func() any { b := make([]byte, SpoolMemory); return &b }}

func newSpool(dir string, mem, hint int) *spool {
	if mem == SpoolMemory && hint == SpoolMemory {
		b := spoolBufs.Get().(*[]byte)
		return &spool{dir: dir, mem: mem, buf: (*b)[:0], pooled: b}
	}
	return &spool{dir: dir, mem: mem, buf: make([]byte, 0, min(hint, mem))}
}

func (s *spool) release() {
	if s.pooled != nil {
		spoolBufs.Put(s.pooled)
		s.pooled = nil
	}
	s.buf = nil
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil {
		if len(s.buf)+len(p) <= s.mem {
			s.buf = append(s.buf, p...)
			s.n += int64(len(p))
			return len(p), nil
		}
		if s.dir == "" {
			return 0, malformedf("payload of more than %d bytes", s.mem)
		}
		f, err := openTemp(s.dir)
		if err != nil {
			return 0, &spoolError{fmt.Errorf("spool part payload: %w", err)}
		}
		if _, err := f.Write(s.buf); err != nil {
			f.Close()
			return 0, &spoolError{fmt.Errorf("spool part payload: %w", err)}
		}
		s.f = f
		s.release()
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		err = &spoolError{fmt.Errorf("spool part payload: %w", err)}
	}
	return n, err
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(s.buf)) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *spool) Close() error {
	s.release()
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}

// openTemp opens an unlinked temporary file in dir.
func openTemp(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err == nil {
		return f, nil
	}
	// Filesystems without O_TMPFILE: create and unlink at once.
	f, err = os.CreateTemp(dir, "delta-part-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n uint64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += uint64(n)
	return n, err
}

// partSource is where readPart takes a part file from.
type partSource struct {
	r        io.Reader
	size     uint64   // declared size of the part file
	checksum [32]byte // declared SHA-256 of the part file
}

// readPart reads a part file from src as a stream: it checks the size
// and SHA-256 the superblock declares, decompresses into a spool in
// tmpDir (memory only when tmpDir is empty) with the payload bounded by
// limit, and decodes the payload's framing. maxTable, if non-zero, bounds
// the entries of the mode and xattr tables (libostree deduplicates them
// per part, so a part has no more of either than objects). Nothing of the
// payload is trusted before the whole file has been hashed.
func readPart(ctx context.Context, src partSource, limit uint64, tmpDir string, maxTable int, dec xzDecoder) (*payload, error) {
	hr := &hashingReader{r: io.LimitReader(src.r, int64(src.size)+1), h: sha256.New()}
	mem := SpoolMemory
	if tmpDir == "" {
		mem = int(min(limit, 1<<30))
	}
	sp := newSpool(tmpDir, mem, int(min(limit, uint64(SpoolMemory))))
	ok := false
	defer func() {
		if !ok {
			sp.Close()
		}
	}()
	var flag [1]byte
	_, err := io.ReadFull(hr, flag[:])
	if err == nil {
		switch flag[0] {
		case CompressionNone:
			err = copyLimited(sp, hr, limit)
		case CompressionXZ:
			switch {
			case dec.liblzma:
				err = unxzLiblzmaTo(sp, hr, limit)
			case dec.command != "":
				err = unxzCommandTo(ctx, dec.command, sp, hr, limit)
			default:
				err = unxzTo(sp, hr, limit)
			}
		default:
			err = malformedf("unknown compression type %q", flag[0])
		}
	} else if errors.Is(err, io.EOF) {
		err = malformedf("empty part file")
	}
	// Size and checksum come first: a damaged part is reported as such,
	// whatever the decompressor made of it.
	if _, derr := io.Copy(io.Discard, hr); derr != nil {
		return nil, derr
	}
	if hr.n != src.size {
		return nil, malformedf("%d bytes, superblock declares %d", hr.n, src.size)
	}
	if got := hr.h.Sum(nil); !bytes.Equal(got, src.checksum[:]) {
		return nil, malformedf("checksum mismatch: the part hashes to %x, superblock says %x", got, src.checksum)
	}
	if err != nil {
		return nil, err
	}
	p, err := parsePayload(sp, uint64(sp.n), maxTable)
	if err != nil {
		return nil, err
	}
	p.spool = sp
	ok = true
	return p, nil
}

// copyLimited copies src to dst, failing beyond limit bytes.
func copyLimited(dst io.Writer, src io.Reader, limit uint64) error {
	n, err := io.Copy(dst, io.LimitReader(src, int64(limit)+1))
	if err != nil {
		return err
	}
	if uint64(n) > limit {
		return malformedf("payload of more than %d bytes", limit)
	}
	return nil
}

func unxzTo(dst io.Writer, src io.Reader, limit uint64) error {
	br := bufio.NewReader(src)
	if head, err := br.Peek(64); err == nil || len(head) > 0 {
		if d, ok := xzDictSize(head); ok && d > maxXZDict {
			return malformedf("xz: dictionary of %d bytes, more than the %d allowed", d, maxXZDict)
		}
	}
	zr, err := xz.NewReader(br)
	if err != nil {
		return malformedf("xz: %v", err)
	}
	n, err := io.Copy(dst, io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		var perr *spoolError
		if errors.As(err, &perr) || errors.Is(err, ErrMalformed) {
			return err
		}
		return malformedf("xz: %v", err)
	}
	if uint64(n) > limit {
		return malformedf("decompresses to more than %d bytes", limit)
	}
	return nil
}

// spoolError marks a failure to store the payload (not the part's fault).
type spoolError struct{ err error }

func (e *spoolError) Error() string { return e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// xzDictSize reads the LZMA2 dictionary size from the first block header
// of an .xz stream, if it is there.
func xzDictSize(b []byte) (uint64, bool) {
	// Stream header (12 bytes), then the block header: size byte, flags,
	// optional compressed and uncompressed sizes, then filter flags.
	if len(b) < 14 || !bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return 0, false
	}
	h := b[12:]
	flags := h[1]
	pos := 2
	skip := func() bool {
		_, k := binary.Uvarint(h[min(pos, len(h)):])
		if k <= 0 {
			return false
		}
		pos += k
		return true
	}
	for _, bit := range []byte{0x40, 0x80} {
		if flags&bit != 0 && !skip() {
			return 0, false
		}
	}
	// Filters: the last is LZMA2 (ID 0x21) with a one-byte property.
	nf := int(flags&3) + 1
	for i := 0; i < nf; i++ {
		if pos >= len(h) {
			return 0, false
		}
		id, k := binary.Uvarint(h[pos:])
		if k <= 0 {
			return 0, false
		}
		pos += k
		psize, k := binary.Uvarint(h[min(pos, len(h)):])
		if k <= 0 || pos+k+int(min(psize, 64)) > len(h) {
			return 0, false
		}
		pos += k
		if id == 0x21 && psize == 1 {
			c := uint64(h[pos])
			if c > 40 {
				return 1 << 63, true
			}
			if c == 40 {
				return 1<<32 - 1, true
			}
			return (2 | c&1) << (c/2 + 11), true
		}
		pos += int(psize)
	}
	return 0, false
}

// xzDecoder says which decoder reads xz parts: liblzma in-process, the
// xz command, or (neither set) the built-in Go decoder.
type xzDecoder struct {
	liblzma bool
	command string
}

// bestXZ is the fastest decoder at hand: liblzma in-process (a cgo
// build), else liblzma through the xz command (one process per part,
// every byte through two pipes), else the built-in decoder (about half
// liblzma's speed).
func bestXZ() xzDecoder {
	if lzma.Available {
		return xzDecoder{liblzma: true}
	}
	p, _ := xzUtils()
	return xzDecoder{command: p}
}

// xzMemLimit bounds the decoder memory liblzma (in-process or the xz
// command) may take for one stream, whatever dictionary it declares.
const xzMemLimit = 256 << 20

// unxzLiblzmaTo decodes one .xz stream with liblzma in-process, writing
// at most limit bytes.
func unxzLiblzmaTo(dst io.Writer, src io.Reader, limit uint64) error {
	zr, err := lzma.NewReader(src, xzMemLimit)
	if err != nil {
		return err
	}
	defer zr.Close()
	n, err := io.Copy(dst, io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		var perr *spoolError
		if errors.As(err, &perr) || errors.Is(err, ErrMalformed) {
			return err
		}
		return malformedf("%v", err)
	}
	if uint64(n) > limit {
		return malformedf("decompresses to more than %d bytes", limit)
	}
	return nil
}

// unxzCommandTo decodes one .xz stream with the xz command (liblzma,
// about twice as fast as the built-in decoder), writing at most limit
// bytes of output (the process is killed beyond that) and letting it use
// at most 256 MiB of memory whatever dictionary size the stream
// declares.
func unxzCommandTo(ctx context.Context, xzPath string, dst io.Writer, src io.Reader, limit uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, xzPath, "--decompress", "--stdout", "--format=xz", "--single-stream", "--memlimit-decompress=256MiB", "--quiet", "--no-warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("xz: %w", err)
	}
	// Feed the part to xz; a read error of the source is the result,
	// a write error only means xz stopped reading.
	fed := make(chan error, 1)
	go func() {
		var rerr error
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := stdin.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rerr = err
				break
			}
		}
		stdin.Close()
		fed <- rerr
	}()
	n, cerr := io.Copy(dst, io.LimitReader(out, int64(limit)+1))
	if uint64(n) > limit || cerr != nil {
		cancel()
	}
	werr := cmd.Wait()
	rerr := <-fed
	switch {
	case rerr != nil:
		return rerr
	case uint64(n) > limit:
		return malformedf("decompresses to more than %d bytes", limit)
	case cerr != nil:
		return cerr
	case werr != nil:
		return malformedf("xz: %v: %s", werr, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// gvariantWidth is the framing offset width GVariant's normal form uses
// for a container with a body of the given size and count offsets.
func gvariantWidth(body uint64, count int) int {
	w := 1
	for ; w < 8; w *= 2 {
		if body+uint64(count*w) <= uint64(1)<<(8*w)-1 {
			break
		}
	}
	return w
}

// parsePayload decodes the framing of a (a(uuu)aa(ayay)ayay) payload of n
// bytes readable through r, accepting exactly what gvariant.Unmarshal of
// PayloadType accepts. The mode and xattr tables are read into memory
// (each at most maxTableSection bytes, and at most maxTable entries if
// non-zero); the blob and operations are left in r.
func parsePayload(r io.ReaderAt, n uint64, maxTable int) (*payload, error) {
	// Member ends of the first three members are stored, in reverse
	// order, in the last 3w bytes; the fourth ends where they start.
	w := 0
	for _, c := range []int{1, 2, 4, 8} {
		if n >= uint64(3*c) && gvariantWidth(n-uint64(3*c), 3) == c {
			w = c
			break
		}
	}
	if w == 0 {
		return nil, malformedf("payload: %d bytes: framing offsets not in normal form", n)
	}
	tableStart := n - uint64(3*w)
	var tail [24]byte
	if _, err := r.ReadAt(tail[:3*w], int64(tableStart)); err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	off := func(i int) uint64 { // end of member i
		var v uint64
		b := tail[(2-i)*w : (3-i)*w]
		for j := w - 1; j >= 0; j-- {
			v = v<<8 | uint64(b[j])
		}
		return v
	}
	e0, e1, e2 := off(0), off(1), off(2)
	if e0 > e1 || e1 > e2 || e2 > tableStart {
		return nil, malformedf("payload: member bounds %d, %d, %d past the offset table at %d", e0, e1, e2, tableStart)
	}
	if e0 > maxTableSection || e1-e0 > maxTableSection {
		return nil, malformedf("payload: mode table of %d bytes or xattr table of %d bytes, more than %d", e0, e1-e0, maxTableSection)
	}
	tables := make([]byte, e1)
	if _, err := r.ReadAt(tables, 0); err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	if maxTable > 0 {
		if e0/12 > uint64(maxTable) {
			return nil, malformedf("payload: %d modes for %d objects", e0/12, maxTable)
		}
		if k := arrayLen(tables[e0:e1]); k > maxTable {
			return nil, malformedf("payload: %d xattr lists for %d objects", k, maxTable)
		}
	}
	mv, err := gvariant.Unmarshal(modesType, tables[:e0])
	if err != nil {
		return nil, malformedf("payload: modes: %v", err)
	}
	xv, err := gvariant.Unmarshal(xattrTablesType, tables[e0:e1])
	if err != nil {
		return nil, malformedf("payload: xattrs: %v", err)
	}
	p := &payload{
		blob: io.NewSectionReader(r, int64(e1), int64(e2-e1)),
		ops:  io.NewSectionReader(r, int64(e2), int64(tableStart-e2)),
	}
	p.modes, p.xattrs = decodeTables(mv, xv)
	return p, nil
}

// arrayLen is the element count of a serialized array of variable-size
// elements (its offset table's length), or 0 if that cannot be read.
func arrayLen(b []byte) int {
	n := len(b)
	if n == 0 {
		return 0
	}
	w := 1
	switch {
	case n > 0xffffffff:
		w = 8
	case n > 0xffff:
		w = 4
	case n > 0xff:
		w = 2
	}
	if n < w {
		return 0
	}
	var start uint64
	for j := w - 1; j >= 0; j-- {
		start = start<<8 | uint64(b[n-w+j])
	}
	if start > uint64(n) {
		return 0
	}
	return (n - int(start)) / w
}

var (
	modesType       = gvariant.MustParseType("a(uuu)")
	xattrTablesType = gvariant.MustParseType("aa(ayay)")
)

func decodeTables(mv, xv gvariant.Value) ([]Mode, [][]object.Xattr) {
	var modes []Mode
	for _, v := range mv.([]gvariant.Value) {
		m := v.([]gvariant.Value)
		// Stored big-endian; the codec reads little-endian.
		modes = append(modes, Mode{bits.ReverseBytes32(m[0].(uint32)), bits.ReverseBytes32(m[1].(uint32)), bits.ReverseBytes32(m[2].(uint32))})
	}
	var xattrs [][]object.Xattr
	for _, v := range xv.([]gvariant.Value) {
		var list []object.Xattr
		for _, e := range v.([]gvariant.Value) {
			kv := e.([]gvariant.Value)
			list = append(list, object.Xattr{Name: kv[0].([]byte), Value: kv[1].([]byte)})
		}
		xattrs = append(xattrs, list)
	}
	return modes, xattrs
}

// tmpDir is where a repository's parts are spooled.
func tmpDir(r *repo.Repo) string { return r.Path() + "/tmp" }
