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

// An image imported into a sysroot's repository deploys like any commit
// (offline; the daemon's rebase to images is not wired yet), and the next
// version's import moves the ref and deploys with the first kept as the
// rollback.
func TestContainerImportDeploys(t *testing.T) {
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := t.TempDir()
	build := filepath.Join(dir, "build")
	r, err := repo.Init(build, repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	sysroot := filepath.Join(dir, "sysroot")
	runCLI(t, "admin", "init-fs", sysroot)
	runCLI(t, "admin", "os-init", "cli", "--sysroot", sysroot)
	var commits []string
	for _, v := range []string{"1", "2"} {
		c := commitOS(t, build, v)
		commits = append(commits, c.String())
		img := "oci:" + filepath.Join(dir, "img-"+v)
		runCLI(t, "compose", "container-encapsulate", "--repo", build, "cli/os", img)
		runCLI(t, "repo", "container", "import", "--repo", sysroot+"/ostree/repo", "--ref", "cli/os", img)
		runCLI(t, "admin", "deploy", "--sysroot", sysroot, "--os", "cli", "--karg", "root=/dev/sda2", "cli/os")
	}
	st := status(t, sysroot)
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != commits[1] || st.Deployments[1].Checksum != commits[0] || !st.Deployments[1].Rollback {
		t.Fatalf("status after deploying two imported images: %+v, want %v", st, commits)
	}
}
