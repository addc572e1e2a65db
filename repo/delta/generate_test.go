package delta

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// commitVersions commits writeOSTree versions 1..n into a new repository
// of the given mode and returns the commits and the trees.
func commitVersions(t *testing.T, mode repo.Mode, n int) (*repo.Repo, []object.Checksum, []string) {
	t.Helper()
	tmp := t.TempDir()
	r, err := repo.Init(filepath.Join(tmp, "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetFsync(false)
	var commits []object.Checksum
	var dirs []string
	for v := 1; v <= n; v++ {
		dir := filepath.Join(tmp, "v"+string(rune('0'+v)))
		writeOSTree(t, dir, v)
		c, err := r.CommitDir(context.Background(), dir, repo.CommitOptions{Branch: "os", Subject: "v"})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
		dirs = append(dirs, dir)
	}
	return r, commits, dirs
}

// TestGenerateRoundTrip generates deltas and applies them with our own
// code and with `ostree static-delta apply-offline`.
func TestGenerateRoundTrip(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	ctx := context.Background()
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBare} {
		t.Run(mode.String(), func(t *testing.T) {
			src, c, dirs := commitVersions(t, mode, 2)
			a, b := c[0], c[1]
			if err := func() error {
				tx, err := src.Begin()
				if err != nil {
					return err
				}
				var m object.Metadata
				m.Set("test.signature", object.StringList([]string{"travels with the delta"}))
				if err := tx.WriteCommitMeta(b, m); err != nil {
					return err
				}
				return tx.Commit()
			}(); err != nil {
				t.Fatal(err)
			}
			scratch, err := Generate(ctx, src, object.Checksum{}, a, GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st, err := Generate(ctx, src, a, b, GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("scratch %+v", scratch)
			t.Logf("update %+v", st)
			if st.Bsdiff == 0 || st.Rollsum == 0 {
				t.Errorf("expected both bsdiff and rollsum encodings: %+v", st)
			}
			ops := opStats(t, filepath.Join(src.Path(), st.Name.Dir()))
			if ops[OpBspatch] != st.Bsdiff {
				t.Errorf("stats say %d bsdiff objects, parts hold %d B ops", st.Bsdiff, ops[OpBspatch])
			}
			names, err := List(src)
			if err != nil || len(names) != 2 {
				t.Fatalf("List: %v, %v", names, err)
			}

			// Our apply.
			dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			dst.SetFsync(false)
			for _, n := range []Name{scratch.Name, st.Name} {
				if _, _, err := ApplyOffline(ctx, dst, filepath.Join(src.Path(), n.Dir())); err != nil {
					t.Fatalf("apply %s: %v", n, err)
				}
			}
			checkCommitTree(t, dst, b, dirs[1])
			if m, err := dst.ReadCommitMeta(b); err != nil || m.String("test.signature") == "" && len(m) != 1 {
				t.Errorf("detached metadata did not travel: %v %v", m, err)
			}

			// ostree's apply, into a bare repository (rollsum and bsdiff
			// operations need one).
			od := filepath.Join(t.TempDir(), "ostree")
			testutil.Run(t, ostree, "--repo="+od, "init", "--mode=bare")
			for _, n := range []Name{scratch.Name, st.Name} {
				testutil.Run(t, ostree, "--repo="+src.Path(), "static-delta", "show", n.String())
				testutil.Run(t, ostree, "--repo="+od, "static-delta", "apply-offline", filepath.Join(src.Path(), n.Dir()))
			}
			testutil.Run(t, ostree, "--repo="+od, "fsck")
			co := filepath.Join(t.TempDir(), "co")
			testutil.Run(t, ostree, "--repo="+od, "checkout", b.String(), co)
			opts := testutil.TreeOptions{Owners: true}
			testutil.CompareTrees(t, testutil.SnapshotTree(t, dirs[1], opts), testutil.SnapshotTree(t, co, opts))
			out := testutil.Run(t, ostree, "--repo="+od, "show", "--print-detached-metadata-key=test.signature", b.String())
			if out != "['travels with the delta']\n" {
				t.Errorf("ostree sees detached metadata %q", out)
			}
		})
	}
}
