package delta

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
)

func TestMayShare(t *testing.T) {
	rnd := func(seed int64, n int) []byte {
		b := make([]byte, n)
		rand.New(rand.NewSource(seed)).Read(b)
		return b
	}
	for _, c := range []struct {
		name     string
		old, new []byte
		want     bool
	}{
		{"unrelated random files", rnd(1, 1<<20), rnd(2, 1<<20), false},
		{"random file, large old", rnd(3, 8<<20), rnd(4, 256<<10), false},
		{"region rewritten", dataFile(5, 600<<10, 1), dataFile(5, 600<<10, 2), true},
		{"recompiled binary", pseudoBinary(6, 3000, 1), pseudoBinary(6, 3000, 2), true},
		{"small file: always diffed", rnd(7, 4<<10), rnd(8, 4<<10), true},
	} {
		if got := mayShare(c.old, c.new); got != c.want {
			t.Errorf("%s: mayShare = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestIncompressibleSentWhole: files replaced by unrelated random bytes
// are not diffed against their old versions (the similarity sample gives
// up) and travel in a part whose xz chunks are stored uncompressed, while a
// recompiled binary in the same update is still diffed; ostree applies
// the delta and the result checks out identical.
func TestIncompressibleSentWhole(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	ctx := context.Background()
	tmp := t.TempDir()
	r, err := repo.Init(filepath.Join(tmp, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetFsync(false)
	const nRandom, size = 6, 384 << 10
	write := func(dir string, v int) {
		for i := 0; i < nRandom; i++ {
			b := make([]byte, size)
			rand.New(rand.NewSource(int64(100*v + i))).Read(b)
			p := filepath.Join(dir, "usr/share/blobs", fmt.Sprintf("b%d.bin", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, "usr/bin/app")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, pseudoBinary(1, 3000, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d1, d2 := filepath.Join(tmp, "v1"), filepath.Join(tmp, "v2")
	write(d1, 1)
	write(d2, 2)
	c1, err := r.CommitDir(ctx, d1, repo.CommitOptions{Branch: "os"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := r.CommitDir(ctx, d2, repo.CommitOptions{Branch: "os"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Generate(ctx, r, c1, c2, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.NoDiff != nRandom {
		t.Errorf("%d files given up on without diffing, want %d", st.NoDiff, nRandom)
	}
	if st.Stored != nRandom {
		t.Errorf("%d objects in uncompressed parts, want %d", st.Stored, nRandom)
	}
	if st.Bsdiff+st.Rollsum != 1 {
		t.Errorf("the recompiled binary was not diffed: %+v", st)
	}
	ops := opStats(t, filepath.Join(r.Path(), st.Name.Dir()))
	if ops[OpOpen] != 1 {
		t.Errorf("diff operations for more than the binary: %v", ops)
	}
	// One part is stored uncompressed and holds the random files.
	raw, dir, err := ReadSuperblockFile(filepath.Join(r.Path(), st.Name.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := DecodeSuperblock(raw)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for i, ph := range sb.Parts {
		b, err := os.ReadFile(filepath.Join(dir, partName(i)))
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == CompressionXZ && uint64(len(b)) > ph.USize {
			stored++
			if len(ph.Objects) != nRandom {
				t.Errorf("uncompressed part %d holds %d objects, want the %d random files", i, len(ph.Objects), nRandom)
			}
		}
	}
	if stored != 1 {
		t.Errorf("%d uncompressed parts, want 1", stored)
	}
	if total := st.TotalSize(); total > nRandom*size+nRandom*size/20 {
		t.Errorf("delta is %d bytes for %d bytes of random data", total, nRandom*size)
	}

	// ostree applies it on top of v1 and gets v2.
	od := filepath.Join(tmp, "ostree")
	testutil.Run(t, ostree, "--repo="+od, "init", "--mode=bare")
	testutil.Run(t, ostree, "--repo="+od, "pull-local", r.Path(), c1.String())
	testutil.Run(t, ostree, "--repo="+od, "static-delta", "apply-offline", filepath.Join(r.Path(), st.Name.Dir()))
	testutil.Run(t, ostree, "--repo="+od, "fsck")
	co := filepath.Join(tmp, "co")
	testutil.Run(t, ostree, "--repo="+od, "checkout", c2.String(), co)
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, d2, opts), testutil.SnapshotTree(t, co, opts))

	// And our apply.
	mine, err := repo.Init(filepath.Join(tmp, "mine"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	mine.SetFsync(false)
	testutil.Run(t, ostree, "--repo="+mine.Path(), "pull-local", r.Path(), c1.String())
	if _, _, err := ApplyOffline(ctx, mine, filepath.Join(r.Path(), st.Name.Dir())); err != nil {
		t.Fatal(err)
	}
	checkCommitTree(t, mine, c2, d2)
}
