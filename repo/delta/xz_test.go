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

// TestApplyWithBusyboxXZ: on a small system `xz` on PATH may be busybox's
// applet, which rejects XZ Utils' options. Applying (and generating) a
// delta there must use the built-in codec, not fail over to fetching
// every object (found booting the qemu test guest).
func TestApplyWithBusyboxXZ(t *testing.T) {
	busybox := testutil.RequireTool(t, "busybox")
	src, c, dirs := commitVersions(t, repo.ModeArchive, 2)
	bin := t.TempDir()
	if err := os.Symlink(busybox, filepath.Join(bin, "xz")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	ctx := context.Background()
	st, err := Generate(ctx, src, c[0], c[1], GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scratch, err := Generate(ctx, src, object.Checksum{}, c[0], GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dst.SetFsync(false)
	for _, n := range []Name{scratch.Name, st.Name} {
		if _, _, err := ApplyOffline(ctx, dst, filepath.Join(src.Path(), n.Dir())); err != nil {
			t.Fatalf("apply %s with busybox's xz on PATH: %v", n, err)
		}
	}
	checkCommitTree(t, dst, c[1], dirs[1])
}
