package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// pathTraverseTree is the dirtree of libostree's ostree-path-traverse
// test repository that names a file "../afile".
const pathTraverseTree = "ae9a5d2701a02740aa2ee317ba53b13e3efb0f29609cd4896e1bafeee4caddb5"

// TestOstreePathTraverseRepo opens libostree's hostile repository (a
// commit whose dirtree names "../afile") and checks that fsck reports
// the dirtree and checkout refuses it, naming the dirtree and the name,
// with nothing written outside the checkout's destination.
func TestOstreePathTraverseRepo(t *testing.T) {
	dir := testutil.ExtractOstreeTestData(t, "ostree-path-traverse.tar.gz")
	r, err := Open(filepath.Join(dir, "ostree-path-traverse/repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.ResolveRev("pathtraverse-test")
	if err != nil {
		t.Fatal(err)
	}

	rep, err := r.Fsck(context.Background(), FsckOptions{})
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	found := false
	for _, p := range rep.Problems {
		t.Logf("fsck: %s", p)
		if strings.Contains(p.String(), pathTraverseTree) && strings.Contains(p.String(), "../afile") {
			found = true
		}
	}
	if !found {
		t.Errorf("fsck does not report dirtree %s naming ../afile: %v", pathTraverseTree, rep.Problems)
	}

	parent := t.TempDir()
	dest := filepath.Join(parent, "sub", "co")
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	err = r.Checkout(context.Background(), c, dest, CheckoutOptions{UserMode: true})
	t.Logf("checkout: %v", err)
	if err == nil || !strings.Contains(err.Error(), "../afile") {
		t.Fatalf("checkout of a tree naming ../afile: %v", err)
	}
	if !strings.Contains(err.Error(), pathTraverseTree) {
		t.Errorf("checkout error %q does not name dirtree %s", err, pathTraverseTree)
	}
	assertOnlyUnder(t, parent, dest)
}

// assertOnlyUnder fails if anything but dest (and its parents) exists
// under root.
func assertOnlyUnder(t *testing.T, root, dest string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return nil
		}
		if p == dest || strings.HasPrefix(p, dest+"/") || strings.HasPrefix(dest, p+"/") {
			return nil
		}
		t.Errorf("%s written outside the destination %s", p, dest)
		return nil
	})
}
