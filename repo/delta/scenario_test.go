package delta

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOSUpdateScenario chains three versions of an OS-like tree
// (recompiled binaries, a renamed versioned library, files added and
// removed, a mode change) and crosses the tools both ways: our client
// applies ostree's update deltas, and ostree applies ours. Our deltas
// must not be larger than ostree's.
func TestOSUpdateScenario(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	ctx := context.Background()
	src, c, dirs := commitVersions(t, repo.ModeArchive, 3)
	// The same commits in a repository of ostree's, for its deltas.
	theirs := filepath.Join(t.TempDir(), "theirs")
	testutil.Run(t, ostree, "--repo="+theirs, "init", "--mode=archive")
	testutil.Run(t, ostree, "--repo="+theirs, "pull-local", "--depth=-1", src.Path(), c[2].String())

	type pair struct{ from, to object.Checksum }
	pairs := []pair{{object.Checksum{}, c[0]}, {c[0], c[1]}, {c[1], c[2]}}
	for _, p := range pairs {
		st, err := Generate(ctx, src, p.from, p.to, GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--repo=" + theirs, "static-delta", "generate", "--to=" + p.to.String()}
		if p.from.IsZero() {
			args = append(args, "--empty")
		} else {
			args = append(args, "--from="+p.from.String())
		}
		testutil.Run(t, ostree, args...)
		n := Name{From: p.from, To: p.to}
		ours, their := dirSize(t, filepath.Join(src.Path(), n.Dir())), dirSize(t, filepath.Join(theirs, n.Dir()))
		t.Logf("%s: ours %d bytes (%d rollsum, %d bsdiff, %d whole), ostree %d bytes", n, ours, st.Rollsum, st.Bsdiff, st.Plain, their)
		if !p.from.IsZero() && ours > their {
			t.Errorf("delta %s: ours is %d bytes, ostree's %d", n, ours, their)
		}
	}

	// Our client, ostree's deltas (after our scratch delta).
	mine, err := repo.Init(filepath.Join(t.TempDir(), "mine"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	mine.SetFsync(false)
	for i, p := range pairs {
		dir := theirs
		if i == 0 {
			dir = src.Path()
		}
		if _, _, err := ApplyOffline(ctx, mine, filepath.Join(dir, Name{From: p.from, To: p.to}.Dir())); err != nil {
			t.Fatal(err)
		}
	}
	checkCommitTree(t, mine, c[2], dirs[2])

	// ostree's client, our deltas (after its scratch delta).
	od := filepath.Join(t.TempDir(), "ostree-client")
	testutil.Run(t, ostree, "--repo="+od, "init", "--mode=bare")
	for i, p := range pairs {
		dir := src.Path()
		if i == 0 {
			dir = theirs
		}
		testutil.Run(t, ostree, "--repo="+od, "static-delta", "apply-offline", filepath.Join(dir, Name{From: p.from, To: p.to}.Dir()))
	}
	testutil.Run(t, ostree, "--repo="+od, "fsck")
	for i, cm := range c {
		co := filepath.Join(t.TempDir(), "co")
		testutil.Run(t, ostree, "--repo="+od, "checkout", cm.String(), co)
		opts := testutil.TreeOptions{Owners: true}
		testutil.CompareTrees(t, testutil.SnapshotTree(t, dirs[i], opts), testutil.SnapshotTree(t, co, opts))
	}
}
