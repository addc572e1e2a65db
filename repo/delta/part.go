package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strings"

	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/ulikunitz/xz"
)

// Part compression flags (the first byte of a part file).
const (
	CompressionNone = 0x00
	CompressionXZ   = 'x'
)

// Opcodes of the part operation stream.
const (
	OpOpenSpliceAndClose = 'S'
	OpOpen               = 'o'
	OpWrite              = 'w'
	OpSetReadSource      = 'r'
	OpUnsetReadSource    = 'R'
	OpClose              = 'c'
	OpBspatch            = 'B'
)

// Mode is a (uid, gid, mode) entry of a part's mode table.
type Mode struct{ UID, GID, Mode uint32 }

// Part is a decoded part payload.
type Part struct {
	Modes  []Mode
	Xattrs [][]object.Xattr
	Blob   []byte
	Ops    []byte
}

// maxPayload bounds the decompressed payload of a part with the given
// uncompressed object size: the objects' bytes plus room for bsdiff
// control records, opcodes and the mode/xattr tables. It keeps a small
// hostile part from expanding without limit.
func maxPayload(usize uint64) uint64 {
	const slack = 64 << 20
	if usize > 1<<40 {
		return 1 << 41
	}
	return 2*usize + slack
}

// DecodePart decodes a part file (compression flag and payload) into
// memory. limit bounds the decompressed payload; 0 means a 1 GiB cap. xz
// data is decoded by the built-in decoder. Apply does not use it: it
// streams parts (see readPart).
func DecodePart(raw []byte, limit uint64) (*Part, error) {
	if limit == 0 || limit > 1<<30 {
		limit = 1 << 30
	}
	p, err := readPart(context.Background(), partSource{r: bytes.NewReader(raw), size: uint64(len(raw)), checksum: sha256.Sum256(raw)}, limit, "", 0, xzDecoder{})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	part := &Part{Modes: p.modes, Xattrs: p.xattrs, Blob: make([]byte, p.blob.Size()), Ops: make([]byte, p.ops.Size())}
	if _, err := io.ReadFull(p.blob, part.Blob); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(p.ops, part.Ops); err != nil {
		return nil, err
	}
	return part, nil
}

// DecodePayload decodes an uncompressed (a(uuu)aa(ayay)ayay) payload.
func DecodePayload(payload []byte) (*Part, error) {
	v, err := gvariant.Unmarshal(PayloadType, payload)
	if err != nil {
		return nil, malformedf("payload: %v", err)
	}
	f := v.([]gvariant.Value)
	p := &Part{Blob: f[2].([]byte), Ops: f[3].([]byte)}
	p.Modes, p.Xattrs = decodeTables(f[0], f[1])
	return p, nil
}

// Marshal serializes the payload (uncompressed, without the flag byte).
func (p *Part) Marshal() ([]byte, error) {
	modes := make([]gvariant.Value, len(p.Modes))
	for i, m := range p.Modes {
		modes[i] = []gvariant.Value{bits.ReverseBytes32(m.UID), bits.ReverseBytes32(m.GID), bits.ReverseBytes32(m.Mode)}
	}
	xattrs := make([]gvariant.Value, len(p.Xattrs))
	for i, list := range p.Xattrs {
		l := make([]gvariant.Value, len(list))
		for j, x := range list {
			l[j] = []gvariant.Value{x.Name, x.Value}
		}
		xattrs[i] = l
	}
	blob, ops := p.Blob, p.Ops
	if blob == nil {
		blob = []byte{}
	}
	if ops == nil {
		ops = []byte{}
	}
	return gvariant.Marshal(PayloadType, []gvariant.Value{modes, xattrs, blob, ops})
}

// Op is one decoded operation.
type Op struct {
	Code byte
	Args []uint64
}

func (o Op) String() string {
	var b strings.Builder
	b.WriteByte(o.Code)
	for _, a := range o.Args {
		fmt.Fprintf(&b, " %d", a)
	}
	return b.String()
}

// OpReader decodes an operation stream. The operand count of 'S' depends
// on the type of the object it creates, which only the caller knows. It
// reads the stream as it goes, so operations need not fit in memory.
type OpReader struct {
	r   io.ByteReader
	pos int
}

// NewOpReader reads ops.
func NewOpReader(ops []byte) *OpReader { return &OpReader{r: bytes.NewReader(ops)} }

// newOpStream reads operations from r.
func newOpStream(r io.ByteReader) *OpReader { return &OpReader{r: r} }

// Offset is the position of the next operation in the stream.
func (r *OpReader) Offset() int { return r.pos }

// ReadByte counts the bytes binary.ReadUvarint consumes.
func (r *OpReader) ReadByte() (byte, error) {
	c, err := r.r.ReadByte()
	if err == nil {
		r.pos++
	}
	return c, err
}

// Next returns the next operation, or io.EOF at the end. metaTarget says
// whether the object an 'S' would create is a metadata object.
func (r *OpReader) Next(metaTarget bool) (Op, error) {
	code, err := r.ReadByte()
	if err == io.EOF {
		return Op{}, io.EOF
	}
	if err != nil {
		return Op{}, fmt.Errorf("read operations: %w", err)
	}
	op := Op{Code: code}
	var n int
	switch op.Code {
	case OpOpenSpliceAndClose:
		n = 4
		if metaTarget {
			n = 2
		}
	case OpOpen:
		n = 3
	case OpWrite, OpBspatch:
		n = 2
	case OpSetReadSource:
		n = 1
	case OpUnsetReadSource, OpClose:
	default:
		return op, malformedf("unknown opcode 0x%02x at offset %d", op.Code, r.pos-1)
	}
	op.Args = make([]uint64, n)
	for i := range op.Args {
		at := r.pos
		v, err := binary.ReadUvarint(r)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "overflow") {
				return op, malformedf("opcode %q at offset %d: truncated or overlong varint", op.Code, at)
			}
			return op, fmt.Errorf("read operations: %w", err)
		}
		op.Args[i] = v
	}
	return op, nil
}

// PartWriter builds a part: it deduplicates modes and xattr lists,
// accumulates the blob and encodes operations.
type PartWriter struct {
	part     Part
	modeIdx  map[Mode]uint64
	xattrIdx map[string]uint64
	Objects  []object.Name
	USize    uint64
}

// NewPartWriter returns an empty part.
func NewPartWriter() *PartWriter {
	return &PartWriter{modeIdx: map[Mode]uint64{}, xattrIdx: map[string]uint64{}}
}

// Size estimates the payload size so far.
func (w *PartWriter) Size() int { return len(w.part.Blob) + len(w.part.Ops) + 12*len(w.part.Modes) }

// Mode returns the index of a mode entry, adding it if new.
func (w *PartWriter) Mode(h *object.FileHeader) uint64 {
	m := Mode{h.UID, h.GID, h.Mode}
	if i, ok := w.modeIdx[m]; ok {
		return i
	}
	i := uint64(len(w.part.Modes))
	w.part.Modes = append(w.part.Modes, m)
	w.modeIdx[m] = i
	return i
}

// Xattrs returns the index of an xattr list, adding it if new.
func (w *PartWriter) Xattrs(list []object.Xattr) uint64 {
	key, _ := gvariant.Marshal(xattrsType, xattrValue(list))
	if i, ok := w.xattrIdx[string(key)]; ok {
		return i
	}
	i := uint64(len(w.part.Xattrs))
	w.part.Xattrs = append(w.part.Xattrs, list)
	w.xattrIdx[string(key)] = i
	return i
}

func xattrValue(list []object.Xattr) []gvariant.Value {
	l := make([]gvariant.Value, len(list))
	for j, x := range list {
		l[j] = []gvariant.Value{x.Name, x.Value}
	}
	return l
}

// Blob appends data to the blob and returns its offset.
func (w *PartWriter) Blob(data []byte) uint64 {
	off := uint64(len(w.part.Blob))
	w.part.Blob = append(w.part.Blob, data...)
	return off
}

// Op appends an operation.
func (w *PartWriter) Op(code byte, args ...uint64) {
	w.part.Ops = append(w.part.Ops, code)
	for _, a := range args {
		w.part.Ops = binary.AppendUvarint(w.part.Ops, a)
	}
}

// Add records that the part creates object n of size usize next.
func (w *PartWriter) Add(n object.Name, usize uint64) {
	w.Objects = append(w.Objects, n)
	w.USize += usize
}

// Part returns the part built so far.
func (w *PartWriter) Part() *Part { return &w.part }

// EncodePart writes a part file: the compression flag and the payload,
// xz-compressed (preset-like settings, CRC64 check, as libostree writes)
// when compress is set.
func EncodePart(dst io.Writer, payload []byte, compress bool) error {
	if !compress {
		if _, err := dst.Write([]byte{CompressionNone}); err != nil {
			return err
		}
		_, err := dst.Write(payload)
		return err
	}
	if _, err := dst.Write([]byte{CompressionXZ}); err != nil {
		return err
	}
	dict := 8 << 20
	if len(payload) < dict {
		dict = max(len(payload), 4096)
	}
	zw, err := xz.WriterConfig{CheckSum: xz.CRC64, DictCap: dict}.NewWriter(dst)
	if err != nil {
		return err
	}
	if _, err := zw.Write(payload); err != nil {
		return err
	}
	return zw.Close()
}
