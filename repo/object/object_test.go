package object

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// Vectors written by libostree 2022.7 (see ostree-format-notes.md §2.6).
func TestChecksumVectors(t *testing.T) {
	empty, _ := (&DirTree{}).Marshal()
	if got := SumMeta(empty).String(); got != "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d" {
		t.Errorf("empty dirtree %s", got)
	}
	dm, _ := (&DirMeta{Mode: 0o40755}).Marshal()
	if got := SumMeta(dm).String(); got != "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488" {
		t.Errorf("dirmeta %s", got)
	}
	files := []struct {
		h       FileHeader
		content string
		want    string
	}{
		{FileHeader{Mode: 0o100644}, "hello\n", "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"},
		{FileHeader{Mode: 0o120777, SymlinkTarget: "hello.txt"}, "", "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"},
		{FileHeader{Mode: 0o100644, Xattrs: []Xattr{{Name: []byte("user.foo\x00"), Value: []byte("bar")}}}, "x", "be4a424482b0174e23724382dfa0addaf644a998ef9ef7cde350240ae7cb6a5b"},
	}
	for _, f := range files {
		got, err := ContentChecksum(&f.h, strings.NewReader(f.content))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != f.want {
			t.Errorf("%+v: %s, want %s", f.h, got, f.want)
		}
	}
}

func TestFilezVector(t *testing.T) {
	var buf bytes.Buffer
	h := &FileHeader{Mode: 0o100644}
	fz, err := NewFilezWriter(&buf, h, 6, 6)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fz, "hello\n")
	if err := fz.Close(); err != nil {
		t.Fatal(err)
	}
	wantHdr, _ := hex.DecodeString("0000001a00000000" + "0000000000000006" + "00000000000000000000" + "81a4" + "00000000" + "00" + "19")
	if !bytes.HasPrefix(buf.Bytes(), wantHdr) {
		t.Fatalf("filez header %x, want %x", buf.Bytes()[:len(wantHdr)], wantHdr)
	}
	r, err := NewFilezReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if sum.String() != "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b" {
		t.Fatalf("filez checksum %s", sum)
	}
	// libostree's own bytes for the same object.
	ostreeBytes, _ := hex.DecodeString("0000001a00000000" + "0000000000000006" + "00000000000000000000" + "81a4" + "00000000" + "00" + "19" + "cb48cdc9c9e70200")
	r, err = NewFilezReader(bytes.NewReader(ostreeBytes))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(r); err != nil || string(data) != "hello\n" {
		t.Fatalf("read %q, %v", data, err)
	}
}

func TestFilezSizeMismatch(t *testing.T) {
	for _, declared := range []uint64{3, 10} {
		var buf bytes.Buffer
		hdr, _ := (&FileHeader{Mode: 0o100644}).FilezHeader(declared)
		buf.Write(hdr)
		fz, _ := NewFilezWriter(io.Discard, &FileHeader{Mode: 0o100644}, 6, 6)
		_ = fz
		// Append a raw deflate stream of "hello\n" regardless of the declared size.
		body, _ := hex.DecodeString("cb48cdc9c9e70200")
		buf.Write(body)
		r, err := NewFilezReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		if !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("declared %d: err %v, want size mismatch", declared, err)
		}
	}
}

func TestDirTreeValidation(t *testing.T) {
	var c Checksum
	bad := []DirTree{
		{Files: []DirTreeFile{{Name: "", Checksum: c}}},
		{Files: []DirTreeFile{{Name: ".."}}},
		{Dirs: []DirTreeDir{{Name: "."}}},
		{Files: []DirTreeFile{{Name: "a/b"}}},
		{Files: []DirTreeFile{{Name: "b"}, {Name: "a"}}},
		{Files: []DirTreeFile{{Name: "a"}}, Dirs: []DirTreeDir{{Name: "a"}}},
	}
	for _, d := range bad {
		if _, err := d.Marshal(); err == nil {
			t.Errorf("%+v: marshalled, want error", d)
		}
	}
	good := DirTree{Files: []DirTreeFile{{Name: "a"}, {Name: "b"}}, Dirs: []DirTreeDir{{Name: "c"}}}
	b, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalDirTree(b)
	if err != nil || len(back.Files) != 2 || back.Dirs[0].Name != "c" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestCommitRoundTrip(t *testing.T) {
	c := &Commit{Subject: "subj", Timestamp: 1577836800}
	c.Metadata.Set("ostree.ref-binding", StringList([]string{"test"}))
	c.RootTree[0], c.RootMeta[1] = 1, 2
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 126 {
		t.Fatalf("commit is %d bytes, want 126 like libostree's", len(b))
	}
	back, err := UnmarshalCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Timestamp != c.Timestamp || back.Subject != "subj" || back.HasParent() {
		t.Fatalf("round trip %+v", back)
	}
	if _, err := UnmarshalCommit(b[:100]); err == nil {
		t.Fatal("truncated commit decoded")
	}
}
