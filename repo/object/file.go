package object

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/osupdate/os-update/repo/gvariant"
)

// MaxHeaderSize bounds the GVariant header of a content object (it holds
// the symlink target and xattrs; SELinux labels and ACLs stay far below).
const MaxHeaderSize = 1 << 20

// FileHeader is the metadata of a content object (regular file or symlink).
type FileHeader struct {
	UID, GID, Mode uint32
	SymlinkTarget  string
	Xattrs         []Xattr
}

// IsSymlink reports whether the header describes a symbolic link.
func (h *FileHeader) IsSymlink() bool { return h.Mode&ModeTypeMask == ModeSymlink }

// Validate checks the mode and the symlink target.
func (h *FileHeader) Validate() error {
	switch h.Mode & ModeTypeMask {
	case ModeRegular:
		if h.SymlinkTarget != "" {
			return fmt.Errorf("regular file has a symlink target")
		}
	case ModeSymlink:
		if h.SymlinkTarget == "" {
			return fmt.Errorf("symlink has an empty target")
		}
	default:
		return fmt.Errorf("invalid file mode %#o: only regular files and symlinks are content", h.Mode)
	}
	if h.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return fmt.Errorf("invalid file mode %#o", h.Mode)
	}
	return nil
}

func (h *FileHeader) value(size uint64, archive bool) []gvariant.Value {
	v := []gvariant.Value{be32(h.UID), be32(h.GID), be32(h.Mode), uint32(0), h.SymlinkTarget, xattrsValue(h.Xattrs)}
	if archive {
		v = append([]gvariant.Value{be64(size)}, v...)
	}
	return v
}

// frame prefixes a header variant with its big-endian length and padding.
func frame(hdr []byte) []byte {
	out := make([]byte, 8, 8+len(hdr))
	putBE32(out, uint32(len(hdr)))
	return append(out, hdr...)
}

// StreamHeader returns the prefix of the content stream: the framed
// (uuuusa(ayay)) header. The content checksum is SHA-256 over this prefix
// followed by the file's bytes.
func (h *FileHeader) StreamHeader() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b, err := gvariant.Marshal(FileHdrType, h.value(0, false))
	if err != nil {
		return nil, err
	}
	return frame(b), nil
}

// FilezHeader returns the framed (tuuuusa(ayay)) header of an archive-mode
// .filez object for a file of the given uncompressed size.
func (h *FileHeader) FilezHeader(size uint64) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b, err := gvariant.Marshal(FilezHdrType, h.value(size, true))
	if err != nil {
		return nil, err
	}
	return frame(b), nil
}

func headerFrom(f []gvariant.Value) (*FileHeader, error) {
	h := &FileHeader{
		UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32)),
		SymlinkTarget: f[4].(string), Xattrs: xattrsFrom(f[5]),
	}
	if f[3].(uint32) != 0 {
		return nil, fmt.Errorf("file header: rdev must be 0")
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("file header: %w", err)
	}
	return h, nil
}

// readFramed reads the 8-byte frame and the header variant that follows.
func readFramed(r io.Reader) ([]byte, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("file header: %w", noEOF(err))
	}
	n := binary.BigEndian.Uint32(pre[:4])
	if binary.BigEndian.Uint32(pre[4:]) != 0 {
		return nil, fmt.Errorf("file header: non-zero padding")
	}
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("file header: length %d exceeds %d", n, MaxHeaderSize)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("file header: %w", noEOF(err))
	}
	return hdr, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseStreamHeader reads the framed header of a content stream and returns
// it together with its raw bytes (frame included), which are what the
// checksum covers. The reader is left at the start of the file data.
func ParseStreamHeader(r io.Reader) (*FileHeader, []byte, error) {
	hdr, err := readFramed(r)
	if err != nil {
		return nil, nil, err
	}
	v, err := gvariant.Unmarshal(FileHdrType, hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("file header: %w", err)
	}
	h, err := headerFrom(v.([]gvariant.Value))
	if err != nil {
		return nil, nil, err
	}
	return h, frame(hdr), nil
}

// ContentHasher computes a content checksum incrementally: create it with
// the stream header, then write the file's bytes.
type ContentHasher struct{ hash.Hash }

// NewContentHasher starts a content checksum for a file with header h.
func NewContentHasher(h *FileHeader) (*ContentHasher, error) {
	sh, err := h.StreamHeader()
	if err != nil {
		return nil, err
	}
	c := &ContentHasher{sha256.New()}
	c.Write(sh)
	return c, nil
}

// Checksum returns the content checksum of everything written.
func (c *ContentHasher) Checksum() Checksum {
	var out Checksum
	c.Sum(out[:0])
	return out
}

// ContentChecksum hashes a file with header h and data from r.
func ContentChecksum(h *FileHeader, r io.Reader) (Checksum, error) {
	c, err := NewContentHasher(h)
	if err != nil {
		return Checksum{}, err
	}
	if r != nil && !h.IsSymlink() {
		if _, err := io.Copy(c, r); err != nil {
			return Checksum{}, err
		}
	}
	return c.Checksum(), nil
}

// emptyDeflate is the raw deflate stream zlib writes for empty input; using
// it keeps empty .filez files byte-identical to libostree's.
var emptyDeflate = []byte{0x03, 0x00}

// FilezWriter writes an archive-mode .filez object: the header, then the
// file data compressed as raw deflate.
type FilezWriter struct {
	w    io.Writer
	fw   Deflater
	want uint64
	n    uint64
}

// NewFilezWriter writes the header for a file of size bytes and returns a
// writer for its data. Close must be called; it fails if the number of
// bytes written differs from size. Symlinks take no data.
func NewFilezWriter(w io.Writer, h *FileHeader, size uint64, level int) (*FilezWriter, error) {
	return NewFilezWriterWith(w, h, size, level, nil)
}

// NewFilezWriterWith is NewFilezWriter reusing a compressor (reset to w);
// compressors are large, so writers of many objects keep a pool.
func NewFilezWriterWith(w io.Writer, h *FileHeader, size uint64, level int, fw Deflater) (*FilezWriter, error) {
	if h.IsSymlink() {
		size = 0
	}
	hdr, err := h.FilezHeader(size)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	fz := &FilezWriter{w: w, want: size}
	if !h.IsSymlink() && size > 0 {
		if fw != nil {
			fw.Reset(w)
			fz.fw = fw
		} else if fz.fw, err = NewDeflater(w, level); err != nil {
			return nil, err
		}
	} else if !h.IsSymlink() {
		if _, err := w.Write(emptyDeflate); err != nil {
			return nil, err
		}
	}
	return fz, nil
}

// Write compresses file data.
func (fz *FilezWriter) Write(p []byte) (int, error) {
	if fz.n+uint64(len(p)) > fz.want {
		return 0, fmt.Errorf("filez: more data than the declared %d bytes", fz.want)
	}
	if fz.fw == nil {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("filez: object takes no data")
	}
	n, err := fz.fw.Write(p)
	fz.n += uint64(n)
	return n, err
}

// Close flushes the compressor and checks the size.
func (fz *FilezWriter) Close() error {
	if fz.n != fz.want {
		return fmt.Errorf("filez: wrote %d bytes, declared %d", fz.n, fz.want)
	}
	if fz.fw != nil {
		return fz.fw.Close()
	}
	return nil
}

// FilezReader reads an archive-mode .filez object.
type FilezReader struct {
	Header *FileHeader
	Size   uint64 // uncompressed size from the header
	data   io.Reader
	fr     io.ReadCloser
	n      uint64
}

// ErrSizeMismatch reports content whose length disagrees with its header.
var ErrSizeMismatch = errors.New("content size disagrees with its header")

// NewFilezReader parses the header of a .filez stream. Reading returns the
// uncompressed data, never more than the declared size (so a decompression
// bomb costs nothing), and fails if the data is shorter or longer.
func NewFilezReader(r io.Reader) (*FilezReader, error) {
	hdr, err := readFramed(r)
	if err != nil {
		return nil, err
	}
	v, err := gvariant.Unmarshal(FilezHdrType, hdr)
	if err != nil {
		return nil, fmt.Errorf("filez header: %w", err)
	}
	f := v.([]gvariant.Value)
	h, err := headerFrom(f[1:])
	if err != nil {
		return nil, err
	}
	fz := &FilezReader{Header: h, Size: be64(f[0].(uint64))}
	if h.IsSymlink() {
		if fz.Size != 0 {
			return nil, fmt.Errorf("filez: symlink declares %d bytes: %w", fz.Size, ErrSizeMismatch)
		}
		fz.data = eofReader{}
		return fz, nil
	}
	fz.fr = flate.NewReader(r)
	fz.data = fz.fr
	return fz, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func (fz *FilezReader) Read(p []byte) (int, error) {
	if rem := fz.Size - fz.n; uint64(len(p)) > rem {
		p = p[:rem]
	}
	if len(p) == 0 {
		return 0, fz.checkEnd()
	}
	n, err := fz.data.Read(p)
	fz.n += uint64(n)
	if err == io.EOF {
		if fz.n < fz.Size {
			return n, fmt.Errorf("filez: data ends at %d of %d bytes: %w", fz.n, fz.Size, ErrSizeMismatch)
		}
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("filez: %w", err)
	}
	return n, nil
}

// checkEnd is called at the declared size: the stream must end there too.
func (fz *FilezReader) checkEnd() error {
	var one [1]byte
	for i := 0; i < 64; i++ {
		n, err := fz.data.Read(one[:])
		switch {
		case n > 0:
			return fmt.Errorf("filez: data longer than the declared %d bytes: %w", fz.Size, ErrSizeMismatch)
		case err == io.EOF:
			return io.EOF
		case err != nil:
			return fmt.Errorf("filez: %w", err)
		}
	}
	return fmt.Errorf("filez: compressed stream does not end after %d bytes", fz.Size)
}

// Checksum reads the whole object and returns its content checksum.
func (fz *FilezReader) Checksum() (Checksum, error) {
	return ContentChecksum(fz.Header, fz)
}
