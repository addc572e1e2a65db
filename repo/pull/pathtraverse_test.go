package pull

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/serve/servetest"
)

// TestOstreePathTraverseRepo pulls libostree's hostile repository (a
// commit whose dirtree names "../afile"; pull-test.sh checks libostree
// refuses it): the pull fails naming the dirtree and the name, the
// dirtree is neither stored nor left staged, and nothing is written
// outside the local repository.
func TestOstreePathTraverseRepo(t *testing.T) {
	const tree = "ae9a5d2701a02740aa2ee317ba53b13e3efb0f29609cd4896e1bafeee4caddb5"
	dir := testutil.ExtractOstreeTestData(t, "ostree-path-traverse.tar.gz")
	srv := servetest.Serve(t, filepath.Join(dir, "ostree-path-traverse/repo"))
	parent := t.TempDir()
	local, err := repo.Init(filepath.Join(parent, "local"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	local.SetFsync(false)
	_, err = Pull(context.Background(), local, &Source{Name: "pathtraverse", URL: srv.URL}, Options{Refs: []string{"pathtraverse-test"}})
	t.Logf("pull: %v", err)
	if err == nil || !strings.Contains(err.Error(), tree) || !strings.Contains(err.Error(), "../afile") {
		t.Fatalf("pull of a tree naming ../afile: %v", err)
	}
	filepath.Walk(parent, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(parent, p)
		if rel != "." && rel != "local" && !strings.HasPrefix(rel, "local/") {
			t.Errorf("%s written outside the repository", p)
		}
		if strings.Contains(filepath.Base(p), tree[2:]) || fi.Name() == "afile" {
			t.Errorf("%s: the hostile dirtree or its file was written", p)
		}
		return nil
	})
	if _, err := local.ReadRef("pathtraverse", "pathtraverse-test"); err == nil {
		t.Error("ref written by a refused pull")
	}
}
