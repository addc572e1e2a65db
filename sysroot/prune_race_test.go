package sysroot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
)

// Deploy's cleanup prunes the sysroot repository with refs as the only
// roots: commits made meanwhile to new branches (by another opener of the
// repository, as another process would) must survive it (issue 10 item 1).
func TestCommitsSurviveDeployCleanupPrune(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	dir := filepath.Join(t.TempDir(), "sysroot")
	s := newSysroot(t, dir)
	clearImmutable(t, dir)
	commitTree(t, s.repo, "os", treeSpec{version: "1"})
	deploy(t, s, "os")

	other, err := repo.Open(s.repo.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	src := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 10; i++ {
			os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), []byte(fmt.Sprint(i)), 0o644)
			if _, err := other.CommitDir(context.Background(), src, repo.CommitOptions{Branch: fmt.Sprintf("br%d", i)}); err != nil {
				errs <- fmt.Errorf("commit br%d: %w", i, err)
				return
			}
		}
	}()
	for i := 2; i <= 6; i++ {
		commitTree(t, s.repo, "os", treeSpec{version: fmt.Sprint(i)})
		deploy(t, s, "os")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A last cleanup after every commit is in.
	if _, err := s.Cleanup(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		c, err := other.ResolveRev(fmt.Sprintf("br%d", i))
		if err != nil {
			t.Fatalf("br%d: %v", i, err)
		}
		if _, err := other.LoadCommit(c); err != nil {
			t.Errorf("br%d points to a commit that is gone: %v", i, err)
		}
	}
	rep, err := other.Fsck(context.Background(), repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %s", p)
	}
	if o, e, err := testutil.RunErr(ostree, "fsck", "--repo="+other.Path()); err != nil {
		t.Errorf("ostree fsck: %v\n%s%s", err, o, e)
	}
	checkConsistent(t, s)
}
