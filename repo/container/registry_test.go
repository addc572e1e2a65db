package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"golang.org/x/crypto/bcrypt"
)

// startRegistry runs Debian's docker-registry on 127.0.0.1 with storage
// in a temporary directory; it returns the host:port and the path of the
// access log.
func startRegistry(t *testing.T) (string, string) { return startRegistryWith(t, "") }

// startRegistryWith adds extra YAML (e.g. an auth section) to the config.
func startRegistryWith(t *testing.T, extra string) (string, string) {
	t.Helper()
	bin := testutil.RequireTool(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yml")
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, extra)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return addr, logPath
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry did not answer on %s\n%s", addr, b)
		}
	}
}

var blobGet = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) HTTP`)

// blobGets lists the layer digests fetched with GET in the log after
// offset (the config blob left out).
func blobGets(t *testing.T, logPath string, offset int, config string) []string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range blobGet.FindAllStringSubmatch(string(b[offset:]), -1) {
		if m[1] != config {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

func logSize(t *testing.T, p string) int {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Size())
}

func TestRegistryPushSkopeoImportUpdate(t *testing.T) {
	testutil.RequireRoot(t)
	skopeo := testutil.RequireTool(t, "skopeo")
	addr, regLog := startRegistry(t)
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
	off := logSize(t, regLog)
	r1, err := Import(ctx, dst, v1ref, ImportOptions{Ref: "os", Insecure: true})
	if err != nil || r1.Commit != c1 {
		t.Fatalf("import v1: %v %v", r1.Commit, err)
	}
	if got := blobGets(t, regLog, off, r1.ConfigDigest); len(got) != len(r1.Fetched) {
		t.Fatalf("v1: registry served %d blobs %v, import fetched %v", len(got), got, r1.Fetched)
	}
	v2ref := "docker://" + addr + "/os:v2"
	if _, err := Encapsulate(ctx, src, c2.String(), v2ref, EncapsulateOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}
	off = logSize(t, regLog)
	r2, err := Import(ctx, dst, v2ref, ImportOptions{Ref: "os", Insecure: true})
	if err != nil || r2.Commit != c2 {
		t.Fatalf("import v2: %v %v", r2.Commit, err)
	}
	served := blobGets(t, regLog, off, r2.ConfigDigest)
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
	addr, _ := startRegistry(t)
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

	dst := newRepo(t, repo.ModeBare)
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
	addr, _ := startRegistryWith(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", htpasswd))
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
