package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// TestCommitRacingPruneKeepsCommits is the reproduction of issue 10 item 1:
// commits to new branches while another opener of the repository prunes
// with refs as the only roots. Every commit and its ref must survive:
// a commit and its ref write are one step with respect to prune.
func TestCommitRacingPruneKeepsCommits(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	path := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(path, ModeBare); err != nil {
		t.Fatal(err)
	}
	// Two openers, as two processes would have: the repository lock is
	// per open file, so they exclude each other like processes do.
	committer, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer committer.Close()
	pruner, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pruner.Close()

	const commits, prunes = 10, 40
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var pruneErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// At least 40 prunes, and prune until the last commit is in.
		for i := 0; ; i++ {
			select {
			case <-done:
				if i >= prunes {
					return
				}
			default:
			}
			if _, err := pruner.Prune(ctx, PruneOptions{RefsOnly: true, Depth: 0}); err != nil {
				pruneErr = fmt.Errorf("prune %d: %w", i, err)
				return
			}
		}
	}()
	src := t.TempDir()
	for i := 1; i <= commits; i++ {
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("g%d", i)), []byte("more"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := committer.CommitDir(ctx, src, CommitOptions{Branch: fmt.Sprintf("br%d", i), Subject: "race"}); err != nil {
			close(done)
			wg.Wait()
			t.Fatalf("commit br%d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	if pruneErr != nil {
		t.Fatal(pruneErr)
	}

	for i := 1; i <= commits; i++ {
		ref := fmt.Sprintf("br%d", i)
		c, err := committer.ResolveRev(ref)
		if err != nil {
			t.Errorf("ref %s: %v", ref, err)
			continue
		}
		if _, err := committer.LoadCommit(c); err != nil {
			t.Errorf("ref %s points to a commit that is gone: %v", ref, err)
		}
	}
	rep, err := committer.Fsck(ctx, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %s", p)
	}
	if out, stderr, err := testutil.RunErr(ostree, "fsck", "--repo="+path); err != nil {
		t.Errorf("ostree fsck: %v\n%s%s", err, out, stderr)
	}
	// A later prune must still work (it failed with "object not found").
	if _, err := pruner.Prune(ctx, PruneOptions{RefsOnly: true, Depth: 0}); err != nil {
		t.Errorf("prune after the race: %v", err)
	}
}
