package repo

import (
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/object"
)

// filezSizes maps each content object of an archive repository to the
// size of its .filez file.
func filezSizes(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	sizes := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".filez") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sizes[filepath.Base(filepath.Dir(p))+filepath.Base(p)] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

// TestArchiveCompressionVsOstree commits the same tree (real binaries and
// text from this system, generated text, random bytes, an empty file)
// into an archive repository with os-update and with ostree: our .filez
// objects must not be larger than libostree's, in total and one by one.
// With cgo (the system zlib, libostree's parameters) they are
// byte-identical.
func TestArchiveCompressionVsOstree(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	tree := filepath.Join(t.TempDir(), "tree")
	write := func(rel string, data []byte) {
		p := filepath.Join(tree, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Real content: the ostree binary and libraries, man pages, text.
	for _, p := range []string{ostree, "/usr/lib/x86_64-linux-gnu/libostree-1.so.1", "/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0", "/etc/services", "/usr/share/common-licenses/GPL-3"} {
		if data, err := os.ReadFile(p); err == nil {
			write("usr/real"+p, data)
		}
	}
	rng := rand.New(rand.NewSource(1))
	var text strings.Builder
	for i := 0; text.Len() < 3<<20; i++ {
		fmt.Fprintf(&text, "line %d: key%d = value %x (%s)\n", i, rng.Intn(500), rng.Int63(), strings.Repeat("ab", rng.Intn(20)))
	}
	write("usr/share/text.txt", []byte(text.String()))
	rnd := make([]byte, 1<<20)
	rng.Read(rnd)
	write("usr/share/random.bin", rnd)
	write("usr/share/empty", nil)
	write("usr/share/small", []byte("x"))

	ours := newRepo(t, ModeArchive)
	commitTree(t, ours, tree, "test")
	theirs := filepath.Join(t.TempDir(), "ostree")
	testutil.Run(t, ostree, "--repo="+theirs, "init", "--mode=archive")
	testutil.Run(t, ostree, "--repo="+theirs, "commit", "-b", "test", "--tree=dir="+tree)

	a, b := filezSizes(t, ours.Path()), filezSizes(t, theirs)
	if len(a) != len(b) || len(a) < 8 {
		t.Fatalf("%d objects in ours, %d in ostree's", len(a), len(b))
	}
	var sumA, sumB int64
	for name, sb := range b {
		sa, ok := a[name]
		if !ok {
			t.Fatalf("object %s missing from ours", name)
		}
		sumA, sumB = sumA+sa, sumB+sb
		if object.ZlibDeflate && sa > sb {
			t.Errorf("%s: ours %d bytes, ostree's %d", name, sa, sb)
		}
	}
	t.Logf(".filez total: ours %d bytes, ostree %d bytes (%.4f); system zlib: %v", sumA, sumB, float64(sumA)/float64(sumB), object.ZlibDeflate)
	if sumA > sumB {
		t.Errorf(".filez objects take %d bytes in ours, %d in ostree's", sumA, sumB)
	}
}
