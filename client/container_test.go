package client

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo"
)

func TestContainerEncapsulateImportCLI(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, p := range []string{src, dst} {
		r, err := repo.Init(p, repo.ModeArchive)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	c := commitOS(t, src, "1")
	archive := "oci-archive:" + filepath.Join(dir, "os.ociarchive")
	out := runCLI(t, "compose", "container-encapsulate", "--repo", src, "--max-layers", "4", "--label", "org.example=yes", "cli/os", archive)
	if !strings.Contains(out, c.String()) || !strings.Contains(out, "in 4 layers") {
		t.Errorf("encapsulate output: %q", out)
	}
	got := strings.TrimSpace(runCLI(t, "repo", "container", "import", "--repo", dst, "--ref", "from/image", "--quiet", archive))
	if got != c.String() {
		t.Fatalf("import gave %q, want the source commit %s", got, c)
	}
	// --insecure is for loopback registries only; the refusal comes
	// before any connection.
	code, _, stderr := runCLIErr("compose", "container-encapsulate", "--repo", src, "--insecure", "cli/os", "docker://registry.example.com/os:1")
	if code == 0 || !strings.Contains(stderr, "loopback") {
		t.Errorf("--insecure to a remote registry: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLIErr("repo", "container", "import", "--repo", dst, archive)
	if code == 0 || !strings.Contains(stderr, "--ref") {
		t.Errorf("import without --ref: exit %d, %q", code, stderr)
	}
}
