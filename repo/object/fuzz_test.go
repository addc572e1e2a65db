package object

import (
	"bytes"
	"io"
	"testing"
)

func FuzzUnmarshalMeta(f *testing.F) {
	empty, _ := (&DirTree{}).Marshal()
	f.Add(uint8(TypeDirTree), empty)
	dm, _ := (&DirMeta{Mode: 0o40755}).Marshal()
	f.Add(uint8(TypeDirMeta), dm)
	c := &Commit{Subject: "s"}
	cb, _ := c.Marshal()
	f.Add(uint8(TypeCommit), cb)
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		_ = ValidateMeta(Type(typ%7), data)
	})
}

func FuzzFilezReader(f *testing.F) {
	var buf bytes.Buffer
	fz, _ := NewFilezWriter(&buf, &FileHeader{Mode: 0o100644}, 5, 6)
	fz.Write([]byte("hello"))
	fz.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewFilezReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, r)
		if uint64(n) > r.Size {
			t.Fatalf("read %d bytes, declared %d", n, r.Size)
		}
	})
}

func FuzzParseStreamHeader(f *testing.F) {
	sh, _ := (&FileHeader{Mode: 0o120777, SymlinkTarget: "x"}).StreamHeader()
	f.Add(sh)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, raw, err := ParseStreamHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := h.StreamHeader()
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("header does not round-trip: %v", err)
		}
	})
}
