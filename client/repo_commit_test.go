package client

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// repo commit --bootable finds the kernel by deploy's rule and records
// it where ostree commit --bootable does.
func TestRepoCommitBootable(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	runCLI(t, "repo", "init", "--repo", repoDir, "--mode", "archive")
	tree := filepath.Join(dir, "tree")
	for _, p := range []string{"usr/lib/modules/6.1.0/vmlinuz", "usr/lib/modules/6.1.0/initramfs.img", "usr/lib/os-release"} {
		os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runCLI(t, "repo", "commit", "--repo", repoDir, "-b", "os", "--bootable", tree)
	if got := strings.TrimSpace(testutil.Run(t, ostree, "show", "--repo", repoDir, "--print-metadata-key=ostree.linux", "os")); got != "'6.1.0'" {
		t.Errorf("ostree.linux = %s", got)
	}
	if got := strings.TrimSpace(testutil.Run(t, ostree, "show", "--repo", repoDir, "--print-metadata-key=ostree.bootable", "os")); got != "true" {
		t.Errorf("ostree.bootable = %s", got)
	}
	// A second kernel makes the choice a guess: refused.
	os.MkdirAll(filepath.Join(tree, "usr/lib/modules/6.2.0"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/lib/modules/6.2.0/vmlinuz"), []byte("k2"), 0o644)
	var out, errOut bytes.Buffer
	if code := Main([]string{"repo", "commit", "--repo", repoDir, "-b", "os", "--bootable", tree}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "2 kernels") {
		t.Fatalf("two kernels: exit %d, %s", code, errOut.String())
	}
}
