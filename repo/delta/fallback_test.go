package delta

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// TestFallbacks applies a delta with fallback objects: without a fetcher
// it fails and stores nothing; with one (copying from the source
// repository through the transaction) it completes.
func TestFallbacks(t *testing.T) {
	ctx := context.Background()
	src, c, dirs := commitVersions(t, repo.ModeArchive, 1)
	st, err := Generate(ctx, src, object.Checksum{}, c[0], GenerateOptions{MinFallbackSize: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	if st.Fallbacks < 2 || st.FallbackSize == 0 {
		t.Fatalf("expected fallbacks: %+v", st)
	}
	dst, err := repo.Init(filepath.Join(t.TempDir(), "dst"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dst.SetFsync(false)
	dir := filepath.Join(src.Path(), st.Name.Dir())
	if _, _, err := ApplyOffline(ctx, dst, dir); err == nil || !strings.Contains(err.Error(), "fallback") {
		t.Fatalf("offline apply with missing fallbacks: %v", err)
	}
	if n := countObjects(t, dst); n != 0 {
		t.Fatalf("%d objects stored by a failed apply", n)
	}

	raw, _, err := ReadSuperblockFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var fetched []object.Name
	stats, err := Apply(ctx, tx, raw, ApplyOptions{
		FetchPart: DirSource(dir),
		FetchFallback: func(ctx context.Context, n object.Name) error {
			fetched = append(fetched, n)
			content, err := src.OpenContent(n.Checksum)
			if err != nil {
				return err
			}
			defer content.Close()
			_, err = tx.WriteContent(content.Header, content.Size, content, &n.Checksum)
			return err
		},
	})
	if err != nil {
		tx.Abort()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if stats.Fallbacks != st.Fallbacks || len(fetched) != st.Fallbacks {
		t.Errorf("fetched %d fallbacks (stats %d), delta has %d", len(fetched), stats.Fallbacks, st.Fallbacks)
	}
	checkCommitTree(t, dst, c[0], dirs[0])
}
