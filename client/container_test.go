package client

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
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

// ostree-remote-image:REMOTE: imports only a commit signed with the
// remote's keys; ostree-unverified-image: skips the check.
func TestContainerImportVerifiesRemoteSignatures(t *testing.T) {
	dir := t.TempDir()
	build, dst := filepath.Join(dir, "build"), filepath.Join(dir, "dst")
	for _, p := range []string{build, dst} {
		r, err := repo.Init(p, repo.ModeArchive)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	key := func(seed byte) (secretFile, pub string) {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
		secretFile = filepath.Join(dir, fmt.Sprintf("ed%d.secret", seed))
		os.WriteFile(secretFile, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600)
		return secretFile, base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	}
	goodKey, goodPub := key(7)
	otherKey, _ := key(8)
	image := func(version, signKey string) string {
		c := commitOS(t, build, version)
		if signKey != "" {
			runCLI(t, "repo", "sign", "--repo", build, c.String(), "--sign-type", "ed25519", "--sign-key", signKey)
		}
		p := "oci:" + filepath.Join(dir, "img-"+version)
		runCLI(t, "compose", "container-encapsulate", "--repo", build, c.String(), p)
		return p
	}
	signed, unsigned, wrong := image("1", goodKey), image("2", ""), image("3", otherKey)
	runCLI(t, "repo", "remote", "add", "--repo", dst, "--no-gpg-verify", "--set", "sign-verify=true",
		"--set", "verification-ed25519-key="+goodPub, "origin", "http://127.0.0.1:1/")

	for _, bad := range []struct{ img, want string }{{unsigned, "no signatures"}, {wrong, "signature"}} {
		code, _, stderr := runCLIErr("repo", "container", "import", "--repo", dst, "--ref", "os", "ostree-remote-image:origin:"+bad.img)
		if code == 0 || !strings.Contains(stderr, bad.want) {
			t.Errorf("import of %s: exit %d, %q; want an error with %q", bad.img, code, stderr, bad.want)
		}
		r, _ := repo.Open(dst)
		if _, err := r.ReadRef("", "os"); err == nil {
			t.Errorf("ref moved by a refused import of %s", bad.img)
		}
		r.Close()
	}
	runCLI(t, "repo", "container", "import", "--repo", dst, "--ref", "os", "ostree-remote-image:origin:"+signed)
	runCLI(t, "repo", "container", "import", "--repo", dst, "--ref", "os", "ostree-unverified-image:"+unsigned)
	code, _, stderr := runCLIErr("repo", "container", "import", "--repo", dst, "--ref", "os", "ostree-remote-image:nosuch:"+signed)
	if code == 0 || !strings.Contains(stderr, "nosuch") {
		t.Errorf("unknown remote: exit %d, %q", code, stderr)
	}
}
