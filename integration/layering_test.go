package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/rpmfixture"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// layerHost is a host whose OS commits are composed from RPMs (so they
// carry an rpm database and a shell), with a package repository for
// layering configured in the sysroot's /etc/yum.repos.d.
type layerHost struct {
	*host
	env     *rpmfixture.Env
	osRepo  string // rpm-md repository the OS is composed from
	cfg     string
	version int
	local   string // a local package file
}

func newLayerHost(t *testing.T) *layerHost {
	testutil.RequireTool(t, "bwrap")
	testutil.RequireTool(t, "rpm")
	h := &layerHost{host: newHost(t)}
	h.env = rpmfixture.NewEnv(t, filepath.Join(h.dir, "rpmbuild"), true)
	h.osRepo = filepath.Join(h.dir, "rpms", "os")
	layerRepo := filepath.Join(h.dir, "rpms", "layer")
	osSpecs := []rpmfixture.Spec{
		rpmfixture.ShellSpec("1.0"),
		{Name: "kernel", Version: "6.1.0", Files: map[string]string{"/usr/lib/modules/6.1.0/vmlinuz": "KERNEL\n",
			"/usr/lib/os-release": "ID=testos\nNAME=\"Test OS\"\n", "/etc/hostname": "testhost\n"}},
		{Name: "tool", Version: "1.0", Files: map[string]string{"/usr/bin/tool": "tool 1\n"}},
		{Name: "tool", Version: "2.0", Files: map[string]string{"/usr/bin/tool": "tool 2\n"}},
		{Name: "extra", Version: "1.0", Files: map[string]string{"/usr/share/extra": "extra\n"}},
		{Name: "blocker", Version: "1.0", Conflicts: []string{"hello"}, Files: map[string]string{"/usr/share/blocker": "x\n"}},
	}
	for _, s := range osSpecs {
		h.env.Sign(t, h.env.Build(t, s, filepath.Join(h.osRepo, "Packages")))
	}
	rpmfixture.CreateRepo(t, h.osRepo, "gz")
	for _, s := range []rpmfixture.Spec{
		{Name: "hello", Version: "1.0", Requires: []string{"hello-lib", "/bin/sh"}, Files: map[string]string{"/usr/bin/hello": "hello\n"},
			Post: "echo \"post $1\" > /usr/share/hello-post"},
		{Name: "hello-lib", Version: "1.0", Files: map[string]string{"/usr/lib/hello-lib": "lib\n"}},
		{Name: "failpost", Version: "1.0", Files: map[string]string{"/usr/share/failpost": "x\n"},
			Post: "echo 'failpost: cannot configure' >&2\nexit 4"},
		{Name: "sleeper", Version: "1.0", Files: map[string]string{"/usr/share/sleeper": "x\n"}, Post: "touch /usr/share/sleeper-started\nwhile :; do :; done"},
	} {
		h.env.Sign(t, h.env.Build(t, s, filepath.Join(layerRepo, "Packages")))
	}
	rpmfixture.CreateRepo(t, layerRepo, "gz")
	h.local = h.env.Build(t, rpmfixture.Spec{Name: "extra", Version: "9.0", Files: map[string]string{"/usr/share/extra": "extra 9\n"}},
		filepath.Join(h.dir, "rpms", "local"))
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(h.dir, "rpms"))))
	t.Cleanup(srv.Close)

	h.cfg = filepath.Join(h.dir, "compose")
	os.MkdirAll(h.cfg, 0o755)
	os.WriteFile(filepath.Join(h.cfg, "os.repo"), []byte(fmt.Sprintf(
		"[os]\nname=OS\nbaseurl=%s/os\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n", srv.URL, h.env.PubKey)), 0o644)
	yum := filepath.Join(h.sysroot, "etc", "yum.repos.d")
	os.MkdirAll(yum, 0o755)
	os.WriteFile(filepath.Join(yum, "layer.repo"), []byte(fmt.Sprintf(
		"[layer]\nname=Layer\nbaseurl=%s/layer\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n", srv.URL, h.env.PubKey)), 0o644)
	return h
}

// publishComposed composes the packages into the server repository on
// the test ref, signs it and updates the summary.
func (h *layerHost) publishComposed(pkgs ...string) object.Checksum {
	return h.publishComposedOn(testRef, pkgs...)
}

func (h *layerHost) publishComposedOn(ref string, pkgs ...string) object.Checksum {
	t := h.t
	t.Helper()
	h.version++
	lock := filepath.Join(h.cfg, "lock.json")
	var pk []string
	locks := map[string]any{}
	for _, p := range pkgs {
		name, evra, _ := strings.Cut(p, "=")
		pk = append(pk, "  - "+name)
		if evra != "" {
			locks[name] = map[string]string{"evra": evra}
		}
	}
	b, _ := json.Marshal(map[string]any{"packages": locks})
	os.WriteFile(lock, b, 0o644)
	tf := filepath.Join(h.cfg, "tree.yaml")
	os.WriteFile(tf, []byte(fmt.Sprintf("ref: %s\nrepos: [os]\nautomatic-version-prefix: \"10\"\npackages:\n%s\n", ref, strings.Join(pk, "\n"))), 0o644)
	// After every commit newHost published.
	epoch := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h.version) * time.Hour).Unix()
	var log bytes.Buffer
	res, err := compose.Tree(context.Background(), compose.Options{Treefile: tf, Repo: h.server, Lockfile: lock,
		CacheDir: filepath.Join(h.dir, "compose-cache"), SourceDateEpoch: &epoch, Log: &log,
		Sign: func(r *repo.Repo, c object.Checksum) error { return sign.SignCommit(r, c, h.signer) }})
	if err != nil {
		t.Fatalf("compose %v: %v\n%s", pkgs, err, log.String())
	}
	if _, err := summary.Update(h.server, summary.Options{Signers: []sign.Signer{h.signer}}); err != nil {
		t.Fatal(err)
	}
	c, _ := object.ParseChecksum(res.Commit)
	return c
}

func (h *layerHost) status() api.Status {
	h.t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(h.mustClient("status", "--json")), &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// defaultDeployment is the deployment that boots next, and its directory.
func (h *layerHost) defaultDeployment() (api.Deployment, string) {
	st := h.status()
	d := st.Deployments[0]
	return d, filepath.Join(h.sysroot, "ostree/deploy", d.OSName, "deploy", fmt.Sprintf("%s.%d", d.Checksum, d.Serial))
}

func rpmQA(t *testing.T, root string) string {
	t.Helper()
	l := strings.Fields(testutil.Run(t, "rpm", "-qa", "--root="+root, "--dbpath=/usr/share/rpm", "--qf", "%{NEVRA}\\n"))
	sort.Strings(l)
	return strings.Join(l, " ")
}

func TestLayeringThroughTheDaemon(t *testing.T) {
	h := newLayerHost(t)
	base1 := h.publishComposed("shell", "kernel", "tool=1.0-1.noarch", "extra")
	h.mustClient("upgrade")
	d, dir := h.defaultDeployment()
	if d.Checksum != base1.String() {
		t.Fatalf("upgrade deployed %s, want %s", d.Checksum, base1)
	}
	baseQA := "extra-1.0-1.noarch kernel-6.1.0-1.noarch shell-1.0-1.x86_64 tool-1.0-1.noarch"
	if got := rpmQA(t, dir); got != baseQA {
		t.Fatalf("base rpm -qa: %s", got)
	}

	// Dry run: nothing deployed.
	out := h.mustClient("install", "--dry-run", "hello")
	if !strings.Contains(out, "Would install hello-1.0-1.noarch") || !strings.Contains(out, "Would install hello-lib-1.0-1.noarch") {
		t.Errorf("dry run said:\n%s", out)
	}
	if d2, _ := h.defaultDeployment(); d2.Checksum != base1.String() {
		t.Errorf("a dry run deployed %s", d2.Checksum)
	}

	// Install a package with a dependency and a %post.
	h.mustClient("install", "hello")
	d, dir = h.defaultDeployment()
	if d.BaseChecksum != base1.String() || strings.Join(d.Packages, ",") != "hello" ||
		strings.Join(d.Layered, ",") != "hello-lib-1.0-1.noarch,hello-1.0-1.noarch" || d.Origin != "origin:"+testRef {
		t.Errorf("status after install: %+v", d)
	}
	if got, want := rpmQA(t, dir), "extra-1.0-1.noarch hello-1.0-1.noarch hello-lib-1.0-1.noarch kernel-6.1.0-1.noarch shell-1.0-1.x86_64 tool-1.0-1.noarch"; got != want {
		t.Errorf("rpm -qa after install: %s\nwant %s", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr/share/hello-post")); err != nil || string(b) != "post 1\n" {
		t.Errorf("%%post output %q %v", b, err)
	}
	origin, _ := os.ReadFile(dir + ".origin")
	if !strings.Contains(string(origin), "baserefspec=origin:"+testRef) || !strings.Contains(string(origin), "requested=hello;") {
		t.Errorf("origin file:\n%s", origin)
	}
	text := h.mustClient("status")
	if !strings.Contains(text, "BaseCommit: "+base1.String()) || !strings.Contains(text, "LayeredPackages: hello") {
		t.Errorf("status text:\n%s", text)
	}

	// Override remove and replace in one transaction; then upgrade the
	// base: everything is applied again.
	h.mustClient("override", "remove", "extra")
	d, dir = h.defaultDeployment()
	if strings.Join(d.Removed, ",") != "extra-1.0-1.noarch" || strings.Contains(rpmQA(t, dir), "extra") {
		t.Errorf("override remove: %+v, rpm -qa %s", d, rpmQA(t, dir))
	}
	h.mustClient("override", "reset", "extra")
	h.mustClient("override", "replace", h.local)
	d, dir = h.defaultDeployment()
	if len(d.Replaced) != 1 || d.Replaced[0] != "extra-1.0-1.noarch extra-9.0-1.noarch" || !strings.Contains(rpmQA(t, dir), "extra-9.0-1.noarch") {
		t.Errorf("override replace: %+v, rpm -qa %s", d, rpmQA(t, dir))
	}
	base2 := h.publishComposed("shell", "kernel", "tool", "extra")
	// The preview compares base with base: layered packages stay and are
	// not reported as removed.
	if out := h.mustClient("upgrade", "--preview"); !strings.Contains(out, "upgraded   tool-1.0-1.noarch -> tool-2.0-1.noarch") || strings.Contains(out, "hello") {
		t.Errorf("upgrade --preview:\n%s", out)
	}
	h.mustClient("upgrade")
	d, dir = h.defaultDeployment()
	if d.BaseChecksum != base2.String() {
		t.Fatalf("upgrade: base %s, want %s (%+v)", d.BaseChecksum, base2, d)
	}
	if got, want := rpmQA(t, dir), "extra-9.0-1.noarch hello-1.0-1.noarch hello-lib-1.0-1.noarch kernel-6.1.0-1.noarch shell-1.0-1.x86_64 tool-2.0-1.noarch"; got != want {
		t.Errorf("rpm -qa after upgrade: %s\nwant %s", got, want)
	}
	if out := h.mustClient("upgrade"); !strings.Contains(out, "already") {
		t.Errorf("second upgrade:\n%s", out)
	}

	// A base that conflicts with a request blocks the upgrade: clear
	// message, nothing deployed.
	before := h.status()
	h.publishComposed("shell", "kernel", "tool", "extra", "blocker")
	out, errOut, err := h.client("upgrade")
	if err == nil || !strings.Contains(out+errOut, "hello-1.0-1.noarch") || !strings.Contains(out+errOut, "base package blocker-1.0-1.noarch") {
		t.Errorf("blocked upgrade: %v\n%s%s", err, out, errOut)
	}
	if after := h.status(); len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Errorf("a blocked upgrade changed the deployments")
	}

	// Uninstall and reset: back to the pure base.
	h.mustClient("uninstall", "hello")
	h.mustClient("override", "reset", "--all")
	d, dir = h.defaultDeployment()
	if d.Checksum != base2.String() || d.BaseChecksum != "" || len(d.Packages) != 0 {
		t.Errorf("after uninstall and reset: %+v", d)
	}
	origin, _ = os.ReadFile(dir + ".origin")
	if !strings.Contains(string(origin), "refspec=origin:"+testRef) || strings.Contains(string(origin), "baserefspec") {
		t.Errorf("origin after reset:\n%s", origin)
	}

	// The package cache, then cleanup --rpm-cache.
	cache := filepath.Join(h.sysroot, "var/cache/os-update")
	if m, _ := filepath.Glob(filepath.Join(cache, "rpms", "*.rpm")); len(m) == 0 {
		t.Error("no package was cached")
	}
	h.mustClient("cleanup", "--rpm-cache")
	if m, _ := filepath.Glob(filepath.Join(cache, "rpms", "*.rpm")); len(m) != 0 {
		t.Errorf("left in the cache: %v", m)
	}

	// deploy and rebase apply the requests too.
	h.mustClient("install", "hello")
	h.mustClient("deploy", base1.String())
	d, dir = h.defaultDeployment()
	if d.BaseChecksum != base1.String() || !strings.Contains(rpmQA(t, dir), "hello-1.0-1.noarch") || !strings.Contains(rpmQA(t, dir), "tool-1.0-1.noarch") {
		t.Errorf("deploy of the older base: %+v, rpm -qa %s", d, rpmQA(t, dir))
	}
	next := "testos/x86_64/next"
	nextBase := h.publishComposedOn(next, "shell", "kernel", "tool", "extra")
	h.mustClient("rebase", "origin:"+next)
	d, dir = h.defaultDeployment()
	origin, _ = os.ReadFile(dir + ".origin")
	if d.BaseChecksum != nextBase.String() || d.Origin != "origin:"+next || !strings.Contains(string(origin), "baserefspec=origin:"+next) ||
		!strings.Contains(rpmQA(t, dir), "hello-1.0-1.noarch") {
		t.Errorf("rebase: %+v, rpm -qa %s\n%s", d, rpmQA(t, dir), origin)
	}
}

// Cancelling a layering transaction mid-scriptlet leaves nothing.
func TestLayeringCancel(t *testing.T) {
	h := newLayerHost(t)
	h.publishComposed("shell", "kernel", "tool=1.0-1.noarch", "extra")
	h.mustClient("upgrade")
	before := h.status()
	done := make(chan error, 1)
	go func() {
		_, _, err := h.client("install", "sleeper")
		done <- err
	}()
	tmp := filepath.Join(h.sysroot, "ostree/repo/tmp")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m, _ := filepath.Glob(filepath.Join(tmp, "layer-*", "overlay-*", "upper", "usr", "share", "sleeper-started")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scriptlet never started\n%s", h.daemonLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mustClient("cancel")
	select {
	case err := <-done:
		if err == nil {
			t.Error("the cancelled install succeeded")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("install did not end after cancel")
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "layer-*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	if after := h.status(); len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Error("a cancelled install changed the deployments")
	}

	// A failing %post: the transaction fails naming the package and
	// showing the script's output; nothing is deployed or left behind.
	etcBefore, _ := os.ReadFile("/etc/passwd")
	out, errOut, err := h.client("install", "failpost")
	if err == nil || !strings.Contains(out+errOut, "%post scriptlet of failpost-1.0-1.noarch failed: exit status 4") ||
		!strings.Contains(out+errOut, "failpost: cannot configure") {
		t.Errorf("failing %%post: %v\n%s%s", err, out, errOut)
	}
	if after := h.status(); len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Error("a failed install changed the deployments")
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "layer-*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	if etcAfter, _ := os.ReadFile("/etc/passwd"); string(etcAfter) != string(etcBefore) {
		t.Error("the host's /etc/passwd changed")
	}
}

// TestLayeringCrash: the daemon is SIGKILLed while a layered package's
// scriptlet runs. Nothing is deployed, the repository stays consistent
// (our fsck and ostree's), the next daemon start removes the abandoned
// work directory, and the next install succeeds.
func TestLayeringCrash(t *testing.T) {
	h := newLayerHost(t)
	h.publishComposed("shell", "kernel", "tool=1.0-1.noarch", "extra")
	h.mustClient("upgrade")
	before := h.status()
	go h.client("install", "sleeper")
	tmp := filepath.Join(h.sysroot, "ostree/repo/tmp")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m, _ := filepath.Glob(filepath.Join(tmp, "layer-*", "overlay-*", "upper", "usr", "share", "sleeper-started")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scriptlet never started\n%s", h.daemonLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.killDaemon()
	// The sandbox dies with the daemon (bwrap --die-with-parent).
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "sleeper-started").Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scriptlet outlived the killed daemon: pids %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.startDaemon()
	if m, _ := filepath.Glob(filepath.Join(tmp, "layer-*")); len(m) != 0 {
		t.Errorf("the restarted daemon left the abandoned work directory: %v", m)
	}
	if after := h.status(); len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Errorf("a killed install changed the deployments: %+v", after.Deployments)
	}
	repoDir := filepath.Join(h.sysroot, "ostree/repo")
	osu(t, "repo", "fsck", "--repo", repoDir)
	if out, err := exec.Command("ostree", "fsck", "--repo="+repoDir).CombinedOutput(); err != nil {
		t.Fatalf("ostree fsck after the kill: %v\n%s", err, out)
	}
	h.mustClient("install", "hello")
	def, root := h.defaultDeployment()
	if def.Checksum == before.Deployments[0].Checksum {
		t.Fatal("install after the crash deployed nothing")
	}
	if qa := rpmQA(t, root); !strings.Contains(qa, "hello-1.0-1") {
		t.Errorf("rpm -qa after the install:\n%s", qa)
	}
}
