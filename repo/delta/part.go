package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os/exec"
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

// DecodePart decodes a part file (compression flag and payload). limit
// bounds the decompressed payload; 0 means a 1 GiB cap. xz data is
// decoded by the built-in decoder.
func DecodePart(raw []byte, limit uint64) (*Part, error) {
	return decodePart(context.Background(), raw, limit, 0, "")
}

// decodePart is DecodePart, decoding xz with the xz command at xzPath
// (liblzma, about twice as fast as the built-in decoder) when it is set.
// sizeHint presizes the output buffer (the payload is about the part's
// uncompressed object size).
func decodePart(ctx context.Context, raw []byte, limit, sizeHint uint64, xzPath string) (*Part, error) {
	if limit == 0 {
		limit = 1 << 30
	}
	if len(raw) < 1 {
		return nil, malformedf("empty part file")
	}
	var payload []byte
	switch raw[0] {
	case CompressionNone:
		payload = raw[1:]
	case CompressionXZ:
		var err error
		if xzPath != "" {
			payload, err = unxzCommand(ctx, xzPath, raw[1:], limit, min(sizeHint, limit)+4096)
		} else {
			payload, err = unxz(raw[1:], limit, min(sizeHint, limit)+4096)
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, malformedf("unknown compression type %q", raw[0])
	}
	if uint64(len(payload)) > limit {
		return nil, malformedf("payload of %d bytes, more than %d", len(payload), limit)
	}
	return DecodePayload(payload)
}

func unxz(data []byte, limit, hint uint64) ([]byte, error) {
	zr, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, malformedf("xz: %v", err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint))
	n, err := io.Copy(buf, io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, malformedf("xz: %v", err)
	}
	if uint64(n) > limit {
		return nil, malformedf("decompresses to more than %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// unxzCommand decodes one .xz stream with the xz command, reading at most
// limit bytes of output (the process is killed beyond that) and letting
// it use at most 256 MiB of memory whatever dictionary size the stream
// declares.
func unxzCommand(ctx context.Context, xzPath string, data []byte, limit, hint uint64) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, xzPath, "--decompress", "--stdout", "--format=xz", "--single-stream", "--memlimit-decompress=256MiB", "--quiet", "--no-warn")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint))
	n, rerr := io.Copy(buf, io.LimitReader(out, int64(limit)+1))
	if uint64(n) > limit {
		cancel()
		cmd.Wait()
		return nil, malformedf("decompresses to more than %d bytes", limit)
	}
	if werr := cmd.Wait(); werr != nil || rerr != nil {
		return nil, malformedf("xz: %v %v: %s", werr, rerr, bytes.TrimSpace(stderr.Bytes()))
	}
	return buf.Bytes(), nil
}

// DecodePayload decodes an uncompressed (a(uuu)aa(ayay)ayay) payload.
func DecodePayload(payload []byte) (*Part, error) {
	v, err := gvariant.Unmarshal(PayloadType, payload)
	if err != nil {
		return nil, malformedf("payload: %v", err)
	}
	f := v.([]gvariant.Value)
	p := &Part{Blob: f[2].([]byte), Ops: f[3].([]byte)}
	for _, mv := range f[0].([]gvariant.Value) {
		m := mv.([]gvariant.Value)
		// Stored big-endian; the codec reads little-endian.
		p.Modes = append(p.Modes, Mode{bits.ReverseBytes32(m[0].(uint32)), bits.ReverseBytes32(m[1].(uint32)), bits.ReverseBytes32(m[2].(uint32))})
	}
	for _, xv := range f[1].([]gvariant.Value) {
		var list []object.Xattr
		for _, e := range xv.([]gvariant.Value) {
			kv := e.([]gvariant.Value)
			list = append(list, object.Xattr{Name: kv[0].([]byte), Value: kv[1].([]byte)})
		}
		p.Xattrs = append(p.Xattrs, list)
	}
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
// on the type of the object it creates, which only the caller knows.
type OpReader struct {
	ops []byte
	pos int
}

// NewOpReader reads ops.
func NewOpReader(ops []byte) *OpReader { return &OpReader{ops: ops} }

// Offset is the position of the next operation in the stream.
func (r *OpReader) Offset() int { return r.pos }

// Next returns the next operation, or io.EOF at the end. metaTarget says
// whether the object an 'S' would create is a metadata object.
func (r *OpReader) Next(metaTarget bool) (Op, error) {
	if r.pos >= len(r.ops) {
		return Op{}, io.EOF
	}
	op := Op{Code: r.ops[r.pos]}
	r.pos++
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
		v, k := binary.Uvarint(r.ops[r.pos:])
		if k <= 0 {
			return op, malformedf("opcode %q at offset %d: truncated or overlong varint", op.Code, r.pos)
		}
		op.Args[i] = v
		r.pos += k
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
