package summary

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
)

// TestMatchesOstree regenerates the summary of a repository that ostree
// made (with a static delta) and checks the bytes are identical.
func TestMatchesOstree(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	rp := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "a"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "sub", "b"), []byte("world\n"), 0o644)
	testutil.Run(t, "ostree", "--repo="+rp, "init", "--mode=archive")
	c1 := strings.TrimSpace(testutil.Run(t, "ostree", "--repo="+rp, "commit", "-b", "main", "--tree=dir="+tree, "-s", "one", "--add-metadata-string=version=1.0"))
	os.WriteFile(filepath.Join(tree, "a"), []byte("hello again\n"), 0o644)
	testutil.Run(t, "ostree", "--repo="+rp, "commit", "-b", "main", "--tree=dir="+tree, "-s", "two")
	testutil.Run(t, "ostree", "--repo="+rp, "commit", "-b", "other/x", "--tree=dir="+tree, "-s", "three", "--add-metadata-string=version=9")
	// One delta: with more, libostree orders the delta dictionary by its
	// hash table, which carries no meaning (checked semantically below).
	testutil.Run(t, "ostree", "--repo="+rp, "static-delta", "generate", "main")
	testutil.Run(t, "ostree", "--repo="+rp, "summary", "-u")
	want, err := os.ReadFile(filepath.Join(rp, "summary"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	lm, _ := ref.Metadata.Get(KeyLastModified)
	lastMod := Ref{Metadata: object.Metadata{{Key: KeyCommitTimestamp, Value: lm}}}.Timestamp()

	r, err := repo.Open(rp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := Generate(r, Options{Now: time.Unix(int64(lastMod), 0)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("summary differs from ostree's\n got %x\nwant %x", got, want)
	}
	deltas, _ := s.Deltas()
	if len(deltas) != 1 {
		t.Fatalf("deltas: %v", deltas)
	}
	// Our delta indexes must equal ostree's too.
	var idx [][]byte
	for _, d := range deltas {
		b, err := os.ReadFile(filepath.Join(rp, DeltaIndexPath(d.To)))
		if err != nil {
			t.Fatal(err)
		}
		idx = append(idx, b)
	}
	if _, err := Update(r, Options{Now: time.Unix(int64(lastMod), 0)}); err != nil {
		t.Fatal(err)
	}
	for i, d := range deltas {
		b, _ := os.ReadFile(filepath.Join(rp, DeltaIndexPath(d.To)))
		if !bytes.Equal(b, idx[i]) {
			t.Fatalf("delta index %s differs", d.Name())
		}
	}
	after, _ := os.ReadFile(filepath.Join(rp, "summary"))
	if !bytes.Equal(after, want) {
		t.Fatal("Update wrote different bytes")
	}
	main, ok := s.Lookup("main")
	if !ok || main.Version() != "" {
		t.Fatalf("main: %+v", main)
	}
	if e, ok := s.Lookup("other/x"); !ok || e.Version() != "9" {
		t.Fatalf("other/x: %+v", e)
	}
	if _, ok := s.Lookup("nope"); ok {
		t.Fatal("found a missing ref")
	}
	_ = c1

	// Two deltas: same refs bytes, same delta set.
	testutil.Run(t, "ostree", "--repo="+rp, "static-delta", "generate", "--empty", "main")
	testutil.Run(t, "ostree", "--repo="+rp, "summary", "-u")
	want2, _ := os.ReadFile(filepath.Join(rp, "summary"))
	o2, err := Parse(want2)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Generate(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	od, _ := o2.Deltas()
	sd, _ := s2.Deltas()
	if len(od) != 2 || len(sd) != 2 {
		t.Fatalf("deltas: ostree %v, ours %v", od, sd)
	}
	seen := map[Delta]bool{}
	for _, d := range od {
		seen[d] = true
	}
	for _, d := range sd {
		if !seen[d] {
			t.Fatalf("delta %s (superblock %s) not listed by ostree", d.Name(), d.Superblock)
		}
	}
	// ostree reads our summary back.
	out := testutil.Run(t, "ostree", "--repo="+rp, "summary", "-v")
	if !strings.Contains(out, "other/x") || !strings.Contains(out, "Version (ostree.commit.version): 9") {
		t.Fatalf("ostree summary -v:\n%s", out)
	}
}

func TestSignedUpdateAndStrictParse(t *testing.T) {
	dir := t.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetFsync(false)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644)
	for i := 0; i < 3; i++ {
		if _, err := r.CommitDir(t.Context(), tree, repo.CommitOptions{Branch: "b" + strconv.Itoa(2-i), Subject: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	signer, err := sign.NewEd25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.Path(), "summary.sig"), []byte("stale"), 0o644)
	s, err := Update(r, Options{Signers: []sign.Signer{signer}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Refs) != 3 || s.Refs[0].Name != "b0" || s.Refs[2].Name != "b2" {
		t.Fatalf("refs not sorted: %+v", s.Refs)
	}
	data, _ := os.ReadFile(filepath.Join(r.Path(), "summary"))
	sigData, _ := os.ReadFile(filepath.Join(r.Path(), "summary.sig"))
	m, err := object.UnmarshalMetadata(sigData)
	if err != nil {
		t.Fatal(err)
	}
	v := &sign.Ed25519Verifier{Trusted: []ed25519.PublicKey{signer.Public()}}
	if _, err := sign.Verify(data, m, v); err != nil {
		t.Fatal(err)
	}
	// A summary with refs out of order is refused.
	s.Refs[0], s.Refs[1] = s.Refs[1], s.Refs[0]
	refs := s.Refs
	bad := &Summary{Metadata: s.Metadata}
	bad.Refs = refs
	b, _ := bad.Marshal() // Marshal sorts: fine
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data[:len(data)-3]); err == nil {
		t.Fatal("truncated summary parsed")
	}
}

func TestDeltaNames(t *testing.T) {
	a, _ := object.ParseChecksum(strings.Repeat("ab", 32))
	enc := EncodeDeltaPart(a)
	if len(enc) != 43 || strings.ContainsAny(enc, "/=") {
		t.Fatal(enc)
	}
	if back, err := DecodeDeltaPart(enc); err != nil || back != a {
		t.Fatal(err)
	}
	// The example of the format notes (§5.3), checked against ostree.
	const dir = "deltas/UH/SnMcgQVrBoCfrGixR9FEuzwRGZaCe2pOFdoc+neag-_pia8e7qZc1oWda_7v0Nep6ds3kbbZbjA1odzX0QvKY"
	from, err := DecodeDeltaPart("UHSnMcgQVrBoCfrGixR9FEuzwRGZaCe2pOFdoc+neag")
	if err != nil || !strings.HasPrefix(from.String(), "5074a731") {
		t.Fatalf("from %s %v", from, err)
	}
	to, err := DecodeDeltaPart("_pia8e7qZc1oWda_7v0Nep6ds3kbbZbjA1odzX0QvKY")
	if err != nil || !strings.HasPrefix(to.String(), "fe989af1") {
		t.Fatalf("to %s %v", to, err)
	}
	if got := DeltaDir(from, to); got != dir {
		t.Fatalf("DeltaDir = %s", got)
	}
	if got := DeltaDir(object.ZeroChecksum, to); got != "deltas/_p/ia8e7qZc1oWda_7v0Nep6ds3kbbZbjA1odzX0QvKY" {
		t.Fatalf("scratch DeltaDir = %s", got)
	}
	if _, err := DecodeDeltaPart("UHSnMcgQVrBoCfrGixR9FEuzwRGZaCe2pOFdoc+nea/"); err == nil {
		t.Fatal("accepted '/'")
	}
}

func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeArchive)
	if err == nil {
		r.SetFsync(false)
		s, err := Generate(r, Options{})
		if err == nil {
			b, _ := s.Marshal()
			f.Add(b)
		}
		r.Close()
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := s.Marshal(); err != nil {
			t.Fatalf("parsed summary does not re-marshal: %v", err)
		}
		ParseDeltaIndex(data)
	})
}
