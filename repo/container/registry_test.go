package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
	"golang.org/x/crypto/bcrypt"
)

func TestRegistryPushSkopeoImportUpdate(t *testing.T) {
	testutil.RequireRoot(t)
	skopeo := testutil.RequireTool(t, "skopeo")
	reg := testutil.StartRegistry(t, "")
	addr := reg.Addr
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	osTree(t, root, "package b v1")
	src := newRepo(t, repo.ModeBare)
	c1 := commitTree(t, src, root, "1.0")
	if err := os.WriteFile(filepath.Join(root, "usr/lib/pkgb/b1"), []byte("package b v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := commitTree(t, src, root, "2.0")

	v1ref := "docker://" + addr + "/os:v1"
	e1, err := Encapsulate(ctx, src, c1.String(), v1ref, EncapsulateOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	// skopeo accepts the image: inspect shows our labels and digest.
	out := testutil.Run(t, skopeo, "inspect", "--tls-verify=false", v1ref)
	var info struct {
		Digest string
		Labels map[string]string
		Layers []string
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if info.Digest != e1.ManifestDigest || info.Labels[LabelCommit] != c1.String() || len(info.Layers) != e1.Layers {
		t.Fatalf("skopeo inspect: %+v, pushed %+v", info, e1)
	}
	// skopeo copies it, and the copy imports as the same commit.
	layoutDir := filepath.Join(t.TempDir(), "copy")
	testutil.Run(t, skopeo, "copy", "--src-tls-verify=false", v1ref, "oci:"+layoutDir+":copied")
	viaSkopeo := newRepo(t, repo.ModeBare)
	if r, err := Import(ctx, viaSkopeo, "oci:"+layoutDir+":copied", ImportOptions{Ref: "os"}); err != nil || r.Commit != c1 {
		t.Fatalf("import of skopeo's copy: %v %v, want %s", r.Commit, err, c1)
	}

	// Pull v1 from the registry, then v2: only changed layers move.
	dst := newRepo(t, repo.ModeArchive)
	off := reg.LogSize(t)
	r1, err := Import(ctx, dst, v1ref, ImportOptions{Ref: "os", Insecure: true})
	if err != nil || r1.Commit != c1 {
		t.Fatalf("import v1: %v %v", r1.Commit, err)
	}
	if got := reg.BlobGets(t, off, r1.ConfigDigest); len(got) != len(r1.Fetched) {
		t.Fatalf("v1: registry served %d blobs %v, import fetched %v", len(got), got, r1.Fetched)
	}
	v2ref := "docker://" + addr + "/os:v2"
	if _, err := Encapsulate(ctx, src, c2.String(), v2ref, EncapsulateOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}
	off = reg.LogSize(t)
	r2, err := Import(ctx, dst, v2ref, ImportOptions{Ref: "os", Insecure: true})
	if err != nil || r2.Commit != c2 {
		t.Fatalf("import v2: %v %v", r2.Commit, err)
	}
	served := reg.BlobGets(t, off, r2.ConfigDigest)
	fetched := append([]string(nil), r2.Fetched...)
	sort.Strings(fetched)
	if len(served) != 2 || strings.Join(served, " ") != strings.Join(fetched, " ") {
		t.Fatalf("v2 (one package changed): registry served blobs %v, import fetched %v; want the package's layer and the commit layer only", served, fetched)
	}
	if got, _ := dst.ReadRef("", "os"); got != c2 {
		t.Fatalf("ref os at %s, want %s", got, c2)
	}
	ostreeFsck(t, dst)
}

func TestBuildahDerivedImage(t *testing.T) {
	testutil.RequireRoot(t)
	buildah := testutil.RequireTool(t, "buildah")
	busybox := testutil.RequireTool(t, "busybox")
	addr := testutil.StartRegistry(t, "").Addr
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	osTree(t, root, "package b v1")
	// A shell for RUN: busybox, reachable as /bin/sh.
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sh", "rm", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(root, "usr/bin", n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	src := newRepo(t, repo.ModeBare)
	base := commitTree(t, src, root, "1.0")
	if _, err := Encapsulate(ctx, src, base.String(), "docker://"+addr+"/os:v1", EncapsulateOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	bctx := filepath.Join(work, "ctx")
	os.MkdirAll(bctx, 0o755)
	os.WriteFile(filepath.Join(bctx, "added.txt"), []byte("added by a Containerfile\n"), 0o644)
	os.WriteFile(filepath.Join(bctx, "Containerfile"), []byte(fmt.Sprintf(`FROM %s/os:v1
COPY added.txt /usr/share/added.txt
RUN rm /etc/removeme && echo ID=derived > /etc/os-release
`, addr)), 0o644)
	storage := []string{"--storage-driver", "vfs", "--root", filepath.Join(work, "storage"), "--runroot", filepath.Join(work, "run")}
	run := func(args ...string) {
		t.Helper()
		out, stderr, err := testutil.RunErr(buildah, append(append([]string{}, storage...), args...)...)
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
	}
	run("bud", "--isolation", "chroot", "--tls-verify=false", "-f", filepath.Join(bctx, "Containerfile"), "-t", "localhost/derived:1", bctx)
	t.Cleanup(func() { testutil.RunErr(buildah, append(append([]string{}, storage...), "rmi", "--all", "--force")...) })
	run("push", "--tls-verify=false", "localhost/derived:1", "docker://"+addr+"/derived:1")

	// Import into a sysroot's repository: the base image first, then the
	// derived one, each deployed as a host would.
	sysDir := filepath.Join(t.TempDir(), "sysroot")
	if err := sysroot.InitFS(sysDir); err != nil {
		t.Fatal(err)
	}
	sr, err := sysroot.Open(sysDir, sysroot.Options{NoSync: true, MutableDeployments: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sr.Close() })
	if err := sr.InitOS("testos"); err != nil {
		t.Fatal(err)
	}
	dst := sr.Repo()
	deploy := func(c object.Checksum) string {
		t.Helper()
		r, err := sr.Deploy(ctx, sysroot.DeployOptions{OS: "testos", Commit: c, Kargs: []string{"root=/dev/vda1"}})
		if err != nil {
			t.Fatalf("deploy %s: %v", c, err)
		}
		return filepath.Join(sysDir, r.Deployment.RelDir())
	}
	if _, err := Import(ctx, dst, "docker://"+addr+"/os:v1", ImportOptions{Ref: "base", Insecure: true}); err != nil {
		t.Fatal(err)
	}
	baseDir := deploy(base)
	res, err := Import(ctx, dst, "docker://"+addr+"/derived:1", ImportOptions{Ref: "derived", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseCommit != base || res.Derived == 0 {
		t.Fatalf("import: %+v", res)
	}
	added, removed, changed := treeDiff(t, dst, base, res.Commit)
	// RUN leaves its mount-point directories; they are directories an OS
	// tree needs anyway. Files must differ by exactly the Containerfile.
	var addedFiles []string
	v, _ := dst.ViewCommit(res.Commit)
	for _, p := range added {
		e, err := v.Lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		if e.IsDir {
			switch p {
			case "/dev", "/proc", "/run", "/sys", "/usr/share":
				continue
			}
		}
		addedFiles = append(addedFiles, p)
	}
	if strings.Join(addedFiles, " ") != "/usr/share/added.txt" ||
		strings.Join(removed, " ") != "/usr/etc/removeme" ||
		strings.Join(changed, " ") != "/usr/etc/os-release" {
		t.Fatalf("derived tree differs by added %v (all %v), removed %v, changed %v", addedFiles, added, removed, changed)
	}
	if b, err := v.ReadFile("/usr/etc/os-release", 100); err != nil || string(b) != "ID=derived\n" {
		t.Fatalf("/usr/etc/os-release: %q %v", b, err)
	}
	ostreeFsck(t, dst)

	// The deployment of the derived image has exactly its changes, /etc
	// (merged from the base deployment's) included.
	derivedDir := deploy(res.Commit)
	if b, err := os.ReadFile(filepath.Join(derivedDir, "usr/share/added.txt")); err != nil || string(b) != "added by a Containerfile\n" {
		t.Errorf("deployed /usr/share/added.txt: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(baseDir, "etc/removeme")); err != nil {
		t.Errorf("the base deployment lacks /etc/removeme: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(derivedDir, "etc/removeme")); !os.IsNotExist(err) {
		t.Errorf("the derived deployment still has /etc/removeme: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(derivedDir, "etc/os-release")); err != nil || string(b) != "ID=derived\n" {
		t.Errorf("deployed /etc/os-release: %q %v", b, err)
	}
	if err := sr.Load(); err != nil {
		t.Fatal(err)
	}
	if st := sr.Status(); len(st.Deployments) != 2 || st.Deployments[0].Commit != res.Commit || st.Deployments[1].Commit != base {
		t.Errorf("deployments after the derived image: %+v", st.Deployments)
	}
}

// Credentials come from the usual auth.json ($REGISTRY_AUTH_FILE, as
// podman and skopeo write it); without them the registry refuses.
func TestRegistryAuthFromAuthJSON(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("builder:"+string(hash)+"\n"), 0o644)
	addr := testutil.StartRegistry(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", htpasswd)).Addr
	t.Setenv("HOME", dir) // no ~/.docker/config.json of the machine
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	src, c := sourceRepo(t, "package b v1")
	ctx := context.Background()
	ref := "docker://" + addr + "/private/os:1"
	_, err = Encapsulate(ctx, src, "os/test", ref, EncapsulateOptions{Insecure: true})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("push without credentials: %v, want unauthorized", err)
	}
	authFile := filepath.Join(dir, "auth.json")
	cred := base64.StdEncoding.EncodeToString([]byte("builder:s3cret"))
	os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, cred)), 0o600)
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	if _, err := Encapsulate(ctx, src, "os/test", ref, EncapsulateOptions{Insecure: true}); err != nil {
		t.Fatalf("push with auth.json: %v", err)
	}
	dst := newRepo(t, repo.ModeBare)
	if res, err := Import(ctx, dst, ref, ImportOptions{Ref: "os", Insecure: true}); err != nil || res.Commit != c {
		t.Fatalf("pull with auth.json: %v %v", res.Commit, err)
	}
}
