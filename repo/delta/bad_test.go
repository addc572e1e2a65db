package delta

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// writeDelta stores a hand-made delta in dir and returns its name.
func writeDelta(t *testing.T, dir string, sb *Superblock, parts [][]byte) {
	t.Helper()
	for i, raw := range parts {
		if sb.Parts[i].Size == 0 {
			sb.Parts[i].Size = uint64(len(raw))
			sb.Parts[i].Checksum = sha256sum(raw)
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "superblock"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func countObjects(t *testing.T, r *repo.Repo) int {
	t.Helper()
	n := 0
	if err := r.ListObjects(func(object.Name) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func encodePart(t *testing.T, pw *PartWriter) []byte {
	t.Helper()
	payload, err := pw.Part().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := EncodePart(&buf, payload, true); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBadDeltas feeds damaged and hostile deltas to ApplyOffline: each
// must fail with an error naming the delta and the part, and store
// nothing.
func TestBadDeltas(t *testing.T) {
	ctx := context.Background()
	src, c, _ := commitVersions(t, repo.ModeArchive, 2)
	a, b := c[0], c[1]
	good, err := Generate(ctx, src, a, b, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	goodDir := filepath.Join(src.Path(), good.Name.Dir())
	commitB, err := src.ReadMeta(object.TypeCommit, b)
	if err != nil {
		t.Fatal(err)
	}
	// A real content object of B that A lacks, to aim operations at.
	set := repo.Reachable{}
	if err := src.TraverseCommit(b, 0, set); err != nil {
		t.Fatal(err)
	}
	have := repo.Reachable{}
	src.TraverseCommit(a, 0, have)
	var target object.Name
	var targetHdr *object.FileHeader
	for n := range set {
		if n.Type == object.TypeFile && !have.Has(n) {
			content, err := src.OpenContent(n.Checksum)
			if err != nil {
				t.Fatal(err)
			}
			content.Close()
			if !content.Header.IsSymlink() && content.Size > 20 {
				target, targetHdr = n, content.Header
				break
			}
		}
	}
	if targetHdr == nil {
		t.Fatal("no target object")
	}

	// dst has commit A, applied from a scratch delta.
	scratch, err := Generate(ctx, src, object.Checksum{}, a, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := repo.Init(filepath.Join(t.TempDir(), "dst"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dst.SetFsync(false)
	if _, _, err := ApplyOffline(ctx, dst, filepath.Join(src.Path(), scratch.Name.Dir())); err != nil {
		t.Fatal(err)
	}
	before := countObjects(t, dst)

	name := Name{From: a, To: b}
	handMade := func(pw *PartWriter) func(dir string) {
		return func(dir string) {
			sb := &Superblock{Name: name, Commit: commitB, Parts: []PartHeader{{Objects: pw.Objects, USize: pw.USize}}}
			writeDelta(t, dir, sb, [][]byte{encodePart(t, pw)})
		}
	}
	copyGood := func(dir string) {
		for _, f := range []string{"superblock", "0"} {
			b, err := os.ReadFile(filepath.Join(goodDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	pastSize := NewPartWriter()
	pastSize.Op(OpOpen, pastSize.Mode(targetHdr), pastSize.Xattrs(targetHdr.Xattrs), 5)
	pastSize.Op(OpWrite, 10, pastSize.Blob(make([]byte, 10)))
	pastSize.Op(OpClose)
	pastSize.Add(target, 5)

	missingSource := NewPartWriter()
	missingSource.Op(OpSetReadSource, missingSource.Blob(bytes.Repeat([]byte{0xab}, 32)))
	missingSource.Op(OpOpen, missingSource.Mode(targetHdr), missingSource.Xattrs(targetHdr.Xattrs), 4)
	missingSource.Op(OpBspatch, 0, 8)
	missingSource.Add(target, 4)

	wrongContent := NewPartWriter()
	data := []byte("not the content the list promises")
	wrongContent.Op(OpOpenSpliceAndClose, wrongContent.Mode(targetHdr), wrongContent.Xattrs(targetHdr.Xattrs), uint64(len(data)), wrongContent.Blob(data))
	wrongContent.Add(target, uint64(len(data)))

	outOfBlob := NewPartWriter()
	outOfBlob.Op(OpOpenSpliceAndClose, 0, 0, 1<<40, 3)
	outOfBlob.Mode(targetHdr)
	outOfBlob.Xattrs(nil)
	outOfBlob.Add(target, 3)

	cases := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"wrong part checksum", func(dir string) {
			copyGood(dir)
			p := filepath.Join(dir, "0")
			raw, _ := os.ReadFile(p)
			raw[len(raw)/2] ^= 1
			os.WriteFile(p, raw, 0o644)
		}, "part 0: checksum mismatch"},
		{"truncated part", func(dir string) {
			copyGood(dir)
			p := filepath.Join(dir, "0")
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, raw[:len(raw)-1], 0o644)
		}, "part 0:"},
		{"malformed superblock", func(dir string) {
			copyGood(dir)
			p := filepath.Join(dir, "superblock")
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, raw[:len(raw)-3], 0o644)
		}, "superblock"},
		{"write past declared size", handMade(pastSize), "part 0: op 'w'"},
		{"missing source object", handMade(missingSource), "is not in the repository"},
		{"content not matching the list", handMade(wrongContent), "checksum mismatch"},
		{"blob range", handMade(outOfBlob), "outside the"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(dir)
			_, _, err := ApplyOffline(ctx, dst, dir)
			if err == nil {
				t.Fatal("applied")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not mention %q", msg, c.want)
			}
			if c.name != "malformed superblock" && !strings.Contains(msg, name.String()) {
				t.Errorf("error %q does not name the delta", msg)
			}
			if got := countObjects(t, dst); got != before {
				t.Errorf("%d objects stored by a failed apply", got-before)
			}
			if ok, _ := dst.HasObject(b, object.TypeCommit); ok {
				t.Error("target commit stored by a failed apply")
			}
		})
	}
	if !errors.Is(func() error { _, err := DecodeSuperblock([]byte("junk")); return err }(), ErrMalformed) {
		t.Error("junk superblock: not ErrMalformed")
	}
	// And the undamaged delta applies.
	if _, _, err := ApplyOffline(ctx, dst, goodDir); err != nil {
		t.Fatal(err)
	}
}

func sha256sum(b []byte) [32]byte { return Digest(b) }
