package delta

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// ostreeCommit commits dir into an ostree repository with the real tool.
func ostreeCommit(t *testing.T, ostree, repoDir, dir, subject string) object.Checksum {
	t.Helper()
	out := testutil.Run(t, ostree, "--repo="+repoDir, "commit", "-b", "os", "-s", subject, "--tree=dir="+dir, "--timestamp=2026-01-01T00:00:00Z")
	c, err := object.ParseChecksum(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("ostree commit printed %q: %v", out, err)
	}
	return c
}

// opStats counts the operation kinds in every part of a stored delta.
func opStats(t *testing.T, deltaDir string) map[byte]int {
	t.Helper()
	raw, dir, err := ReadSuperblockFile(deltaDir)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := DecodeSuperblock(raw)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[byte]int{}
	for i, ph := range sb.Parts {
		pr := sb.Inline[i]
		if pr == nil {
			if pr, err = os.ReadFile(filepath.Join(dir, partName(i))); err != nil {
				t.Fatal(err)
			}
		}
		p, err := DecodePart(pr, maxPayload(ph.USize))
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		ops, err := Disassemble(p, ph.Objects)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		for _, op := range ops {
			counts[op.Code]++
		}
	}
	counts['F'] = len(sb.Fallbacks)
	return counts
}

func partName(i int) string {
	return filepath.Base(PartPath(object.Checksum{1}, object.Checksum{1}, i))
}

// TestApplyOstreeDeltas applies deltas made by `ostree static-delta
// generate` (from empty, and from the previous commit with bsdiff and
// rollsum operations in it) to our bare and archive repositories.
func TestApplyOstreeDeltas(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	ctx := context.Background()
	tmp := t.TempDir()
	v1, v2 := filepath.Join(tmp, "v1"), filepath.Join(tmp, "v2")
	writeOSTree(t, v1, 1)
	writeOSTree(t, v2, 2)
	src := filepath.Join(tmp, "src")
	testutil.Run(t, ostree, "--repo="+src, "init", "--mode=archive")
	a := ostreeCommit(t, ostree, src, v1, "v1")
	b := ostreeCommit(t, ostree, src, v2, "v2")
	testutil.Run(t, ostree, "--repo="+src, "static-delta", "generate", "--empty", "--to="+a.String())
	testutil.Run(t, ostree, "--repo="+src, "static-delta", "generate", "--from="+a.String(), "--to="+b.String())
	testutil.Run(t, ostree, "--repo="+src, "static-delta", "generate", "--inline", "--empty", "--to="+b.String())

	scratchA := filepath.Join(src, Name{To: a}.Dir())
	fromAB := filepath.Join(src, Name{From: a, To: b}.Dir())
	scratchB := filepath.Join(src, Name{To: b}.Dir())
	st := opStats(t, fromAB)
	t.Logf("ostree delta %s ops: %v", Name{From: a, To: b}, st)
	if st[OpBspatch] == 0 {
		t.Errorf("ostree's delta has no bsdiff operation; the fixture does not exercise it: %v", st)
	}
	if st[OpWrite] == 0 || st[OpSetReadSource] <= st[OpBspatch] {
		t.Errorf("ostree's delta has no rollsum copy operations: %v", st)
	}

	for _, mode := range []repo.Mode{repo.ModeBare, repo.ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			r, err := repo.Init(dir, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.SetFsync(false)
			if _, _, err := ApplyOffline(ctx, r, scratchA); err != nil {
				t.Fatalf("apply from-empty delta: %v", err)
			}
			if _, _, err := ApplyOffline(ctx, r, fromAB); err != nil {
				t.Fatalf("apply %s: %v", Name{From: a, To: b}, err)
			}
			checkCommitTree(t, r, b, v2)
			checkCommitTree(t, r, a, v1)

			// An inline from-empty delta into a fresh repository.
			r2, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			r2.SetFsync(false)
			if _, _, err := ApplyOffline(ctx, r2, filepath.Join(scratchB, "superblock")); err != nil {
				t.Fatalf("apply inline delta: %v", err)
			}
			checkCommitTree(t, r2, b, v2)
		})
	}
}

// checkCommitTree asserts that the repository is fsck-clean and that
// commit checks out to exactly the tree in want.
func checkCommitTree(t *testing.T, r *repo.Repo, commit object.Checksum, want string) {
	t.Helper()
	rep, err := r.Fsck(context.Background(), repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || len(rep.Partial) > 0 {
		t.Fatalf("fsck: problems %v, partial %v", rep.Problems, rep.Partial)
	}
	set := repo.Reachable{}
	if err := r.TraverseCommit(commit, 0, set); err != nil {
		t.Fatalf("traverse %s: %v", commit, err)
	}
	co := filepath.Join(t.TempDir(), "co")
	if err := r.Checkout(context.Background(), commit, co, repo.CheckoutOptions{Copy: true}); err != nil {
		t.Fatal(err)
	}
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, want, opts), testutil.SnapshotTree(t, co, opts))
}
