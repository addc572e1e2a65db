package delta

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

func seedSuperblock(f *testing.F) {
	commit := (&object.Commit{Subject: "s", Timestamp: 1}).Marshal
	c, err := commit()
	if err != nil {
		f.Fatal(err)
	}
	to := object.SumMeta(c)
	sb := &Superblock{Name: Name{From: object.Checksum{1}, To: to}, Commit: c,
		Parts:     []PartHeader{{Size: 10, USize: 10, Objects: []object.Name{{Type: object.TypeFile}}}},
		Fallbacks: []Fallback{{Object: object.Name{Type: object.TypeFile, Checksum: object.Checksum{2}}, Size: 3, USize: 4}},
		Inline:    map[int][]byte{0: {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	sb.Metadata.Set("user.key", object.StringList([]string{"x"}))
	raw, err := sb.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Add([]byte("OSTSGNDT"))
}

// FuzzSuperblock: decoding never panics, and whatever decodes re-encodes
// to a superblock that decodes to the same thing.
func FuzzSuperblock(f *testing.F) {
	seedSuperblock(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := DecodeSuperblock(b)
		if err != nil {
			return
		}
		again, err := sb.Marshal()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sb2, err := DecodeSuperblock(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if sb2.Name != sb.Name || len(sb2.Parts) != len(sb.Parts) || len(sb2.Fallbacks) != len(sb.Fallbacks) || !bytes.Equal(sb2.Commit, sb.Commit) {
			t.Fatal("round trip changed the superblock")
		}
	})
}

func seedPart(f *testing.F) {
	pw := NewPartWriter()
	h := &object.FileHeader{Mode: object.ModeRegular | 0o644}
	data := []byte("hello")
	pw.Op(OpOpenSpliceAndClose, pw.Mode(h), pw.Xattrs(nil), uint64(len(data)), pw.Blob(data))
	pw.Op(OpOpen, 0, 0, 5)
	pw.Op(OpWrite, 5, 0)
	pw.Op(OpClose)
	pw.Op(OpSetReadSource, 0)
	pw.Op(OpBspatch, 0, 5)
	pw.Op(OpUnsetReadSource)
	payload, err := pw.Part().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	EncodePart(&buf, payload, true)
	f.Add(buf.Bytes())
	f.Add(append([]byte{0}, payload...))
	f.Add([]byte{'x', 0xfd, '7', 'z', 'X', 'Z', 0})
}

// FuzzPart: decoding a part file and its operations never panics or
// over-allocates.
func FuzzPart(f *testing.F) {
	seedPart(f)
	objs := []object.Name{{Type: object.TypeFile}, {Type: object.TypeDirMeta}, {Type: object.TypeFile}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodePart(raw, 1<<20)
		if err != nil {
			return
		}
		Disassemble(p, objs)
		if _, err := p.Marshal(); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// FuzzExecute runs arbitrary operations against a real repository: any
// error is fine, panics and objects stored under the wrong name are not.
func FuzzExecute(f *testing.F) {
	pw := NewPartWriter()
	h := &object.FileHeader{Mode: object.ModeRegular | 0o644}
	data := []byte("hello")
	pw.Op(OpOpen, pw.Mode(h), pw.Xattrs(nil), 5)
	pw.Op(OpWrite, 5, pw.Blob(data))
	pw.Op(OpClose)
	pw.Op(OpSetReadSource, 0)
	pw.Op(OpOpen, 0, 0, 5)
	pw.Op(OpBspatch, 0, 5)
	pw.Op(OpClose)
	f.Add(pw.Part().Blob, pw.Part().Ops)
	r, err := repo.Init(filepath.Join(f.TempDir(), "repo"), repo.ModeArchive)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	r.SetFsync(false)
	sum, err := object.ContentChecksum(h, bytes.NewReader(data))
	if err != nil {
		f.Fatal(err)
	}
	objs := []object.Name{{Checksum: sum, Type: object.TypeFile}, {Checksum: sum, Type: object.TypeFile}}
	f.Fuzz(func(t *testing.T, blob, ops []byte) {
		tx, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Abort()
		part := &Part{Modes: []Mode{{0, 0, object.ModeRegular | 0o644}, {0, 0, object.ModeSymlink | 0o777}}, Xattrs: [][]object.Xattr{nil}, Blob: blob, Ops: ops}
		execute(context.Background(), tx, part, objs)
	})
}

// FuzzPayload: the streaming payload decoder Apply uses accepts exactly
// what gvariant.Unmarshal accepts and decodes it to the same part.
func FuzzPayload(f *testing.F) {
	pw := NewPartWriter()
	h := &object.FileHeader{Mode: object.ModeRegular | 0o644, Xattrs: []object.Xattr{{Name: []byte("user.a"), Value: []byte("b")}}}
	pw.Op(OpOpenSpliceAndClose, pw.Mode(h), pw.Xattrs(h.Xattrs), 5, pw.Blob([]byte("hello")))
	payload, err := pw.Part().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payload)
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := DecodePayload(b)
		p, err := parsePayload(bytes.NewReader(b), uint64(len(b)), 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("streaming decoder: %v; gvariant: %v", err, werr)
		}
		if err != nil {
			return
		}
		blob, _ := io.ReadAll(p.blob)
		ops, _ := io.ReadAll(p.ops)
		if !bytes.Equal(blob, want.Blob) || !bytes.Equal(ops, want.Ops) || len(p.modes) != len(want.Modes) || len(p.xattrs) != len(want.Xattrs) {
			t.Fatalf("streaming decoder disagrees: blob %d/%d ops %d/%d bytes, %d/%d modes, %d/%d xattr lists",
				len(blob), len(want.Blob), len(ops), len(want.Ops), len(p.modes), len(want.Modes), len(p.xattrs), len(want.Xattrs))
		}
		for i := range p.modes {
			if p.modes[i] != want.Modes[i] {
				t.Fatalf("mode %d: %v, want %v", i, p.modes[i], want.Modes[i])
			}
		}
	})
}
