package pull

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve/servetest"
)

// TestLegacyDeltaFromOstreeTests applies the old-format (pre-endianness
// key) delta of libostree's pre-endian-deltas-repo-big test data: the
// base commit is pulled object by object, then main is
// pulled through it (its sizes are big-endian with no endianness key:
// libostree's heuristic, which ours follows, detects that); the result
// passes fsck and checks out like the commit pulled without the delta.
func TestLegacyDeltaFromOstreeTests(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	dir := testutil.ExtractOstreeTestData(t, "pre-endian-deltas-repo-big.tar.xz")
	served := filepath.Join(dir, "pre-endian-deltas-repo")
	// The tarball's summary does not list this copy's superblocks (its
	// digests differ); libostree regenerates it.
	testutil.Run(t, ostree, "--repo="+served, "summary", "-u")
	sr, err := repo.Open(served)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	to, err := sr.ResolveRev("main")
	if err != nil {
		t.Fatal(err)
	}
	from, err := sr.ResolveRev("main^")
	if err != nil {
		t.Fatal(err)
	}
	srv := servetest.Serve(t, served)
	src := &Source{Name: "legacy", URL: srv.URL}
	local := newLocal(t, repo.ModeBare)
	if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"main@" + from.String()}, DisableDeltas: true}); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(context.Background(), local, src, Options{Refs: []string{"main"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pull: %+v", res)
	if res.DeltasUsed != 1 || len(res.DeltaFailures) != 0 {
		t.Fatalf("legacy delta %s not used: %+v", delta.Name{From: from, To: to}, res)
	}
	if ok, _ := local.HasObject(to, object.TypeCommit); !ok {
		t.Fatal("target commit missing")
	}
	fsckClean(t, local)
	// The same commit pulled object by object checks out identically.
	ref := newLocal(t, repo.ModeBare)
	if _, err := Pull(context.Background(), ref, src, Options{Refs: []string{"main"}, DisableDeltas: true}); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if err := local.Checkout(context.Background(), to, a, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ref.Checkout(context.Background(), to, b, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, b, opts), testutil.SnapshotTree(t, a, opts))
}
