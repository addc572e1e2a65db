package ostreefmt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
)

// TestWriteCommitMatchesOstreeShow checks the text against libostree's own
// `ostree show` on commits it made: with and without a parent, version
// and body.
func TestWriteCommitMatchesOstreeShow(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	repoDir, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "a"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		out, err := exec.Command(ostree, append([]string{"--repo=" + repoDir}, args...)...).Output()
		if err != nil {
			t.Fatalf("ostree %v: %v", args, err)
		}
		return string(out)
	}
	run("init", "--mode=archive")
	run("commit", "-b", "x", "-s", "first", "--tree=dir="+tree)
	run("commit", "-b", "x", "-s", "second", "--body", "line one\nline two",
		"--add-metadata-string", "version=2.0", "--tree=dir="+tree)
	r, err := repo.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, rev := range []string{"x", "x^"} {
		sum, err := r.ResolveRev(rev)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := r.LoadCommit(sum)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		WriteCommit(&got, sum, cm)
		if want := run("show", rev); got.String() != want {
			t.Errorf("%s:\ngot:\n%s\nostree show:\n%s", rev, got.String(), want)
		}
	}
}
