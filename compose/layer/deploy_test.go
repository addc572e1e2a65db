package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

// End to end without the daemon: layer onto a bootable base in a
// sysroot's repository, deploy the derived commit like any commit, then
// upgrade the base and apply the requests recorded in the origin file
// again; a request the next base blocks fails before anything is
// deployed.
func TestDeployAndReapplyOnUpgrade(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	sr := filepath.Join(dir, "sysroot")
	if err := sysroot.InitFS(sr); err != nil {
		t.Fatal(err)
	}
	s, err := sysroot.Open(sr, sysroot.Options{NoSync: true, MutableDeployments: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InitOS("testos"); err != nil {
		t.Fatal(err)
	}
	r := s.Repo()
	cfg := filepath.Join(dir, "compose")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "os.repo"), []byte(fmt.Sprintf(
		"[os]\nname=OS\nbaseurl=%s/os\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n", f.srv.URL, f.env.PubKey)), 0o644)
	composeBase := func(pkgs ...string) object.Checksum {
		t.Helper()
		tf := filepath.Join(cfg, "tree.yaml")
		os.WriteFile(tf, []byte("ref: fixture/os\nrepos: [os]\npackages:\n  - "+strings.Join(pkgs, "\n  - ")+"\n"), 0o644)
		lock := ""
		if pkgs[1] == "basetool-1.0" {
			pkgs[1] = "basetool"
			os.WriteFile(tf, []byte("ref: fixture/os\nrepos: [os]\npackages:\n  - "+strings.Join(pkgs, "\n  - ")+"\n"), 0o644)
			lock = filepath.Join(cfg, "lock.json")
			os.WriteFile(lock, []byte(`{"packages": {"basetool": {"evra": "1.0-1.noarch"}}}`), 0o644)
		}
		var log bytes.Buffer
		res, err := compose.Tree(ctx, compose.Options{Treefile: tf, Repo: r, CacheDir: filepath.Join(dir, "compose-cache"), Log: &log, Lockfile: lock})
		if err != nil {
			t.Fatalf("compose %v: %v\n%s", pkgs, err, log.String())
		}
		c, _ := object.ParseChecksum(res.Commit)
		return c
	}
	work := filepath.Join(sr, "ostree", "repo", "tmp", "layer-test")
	build := func(base object.Checksum, req Requests, reapply bool) (*Result, error) {
		return Build(ctx, Options{Repo: r, Base: base, Ref: "os-update/layered", Requests: req, ReposDir: f.reposDir,
			CacheDir: filepath.Join(dir, "cache"), WorkDir: work, Reapply: reapply})
	}
	deploy := func(res *Result, req Requests) string {
		t.Helper()
		origin := keyfile.New()
		SetOrigin(origin, "fixture/os", req)
		d, err := s.Deploy(ctx, sysroot.DeployOptions{OS: "testos", Rev: res.Commit.String(), Origin: origin})
		if err != nil {
			t.Fatalf("deploy %s: %v", res.Commit, err)
		}
		return filepath.Join(sr, d.Deployment.RelDir())
	}

	v1 := composeBase("shell", "basetool-1.0", "kernel")
	req := Requests{Install: []string{"hello"}, Remove: []string{"victim"}}
	// victim is not in this base: a first request for it fails...
	if _, err := build(v1, req, false); err == nil || !strings.Contains(err.Error(), "override remove victim") {
		t.Fatalf("removing a package the base lacks: %v", err)
	}
	req.Remove = nil
	res1, err := build(v1, req, false)
	if err != nil {
		t.Fatal(err)
	}
	dep1 := deploy(res1, req)
	want1 := "basetool-1.0-1.noarch hello-1.0-1.noarch hello-lib-1.2-1.noarch kernel-6.1.0-1.noarch shell-1.0-1.x86_64"
	if got := strings.Join(rpmQA(t, dep1), " "); got != want1 {
		t.Errorf("rpm -qa --root=DEPLOYMENT: %s\nwant %s", got, want1)
	}
	if st := testutil.Run(t, "ostree", "admin", "status", "--sysroot", sr); !strings.Contains(st, res1.Commit.String()) {
		t.Errorf("ostree admin status does not show the derived commit:\n%s", st)
	}
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	base, got := OriginRequests(s.Deployments[0].Origin)
	if base != "fixture/os" || strings.Join(got.Install, ",") != "hello" {
		t.Fatalf("origin gives %q %+v:\n%s", base, got, s.Deployments[0].Origin.Bytes())
	}
	if o := string(s.Deployments[0].Origin.Bytes()); !strings.Contains(o, "baserefspec=fixture/os") || !strings.Contains(o, "[packages]\nrequested=hello;") {
		t.Errorf("origin file:\n%s", o)
	}

	// Upgrade: the next base has basetool 2.0; the requests from the
	// origin are applied again (a removal the new base has no package
	// for is dropped with a note).
	v2 := composeBase("shell", "basetool", "kernel")
	got.Remove = []string{"victim"}
	res2, err := build(v2, got, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Notes) != 1 || !strings.Contains(res2.Notes[0], "override remove victim") {
		t.Errorf("notes %q", res2.Notes)
	}
	dep2 := deploy(res2, got)
	want2 := strings.Replace(want1, "basetool-1.0-1.noarch", "basetool-2.0-1.noarch", 1)
	if got := strings.Join(rpmQA(t, dep2), " "); got != want2 {
		t.Errorf("after upgrade rpm -qa: %s\nwant %s", got, want2)
	}
	if b, err := os.ReadFile(filepath.Join(dep2, "usr/bin/hello")); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("hello in the upgraded deployment: %q %v", b, err)
	}

	// A base that blocks hello: the re-application fails naming the
	// request's package and the base package, before any deploy.
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	before := len(s.Deployments)
	v3 := composeBase("shell", "basetool", "kernel", "blocker")
	_, err = build(v3, got, true)
	if err == nil || !strings.Contains(err.Error(), "hello-1.0-1.noarch") || !strings.Contains(err.Error(), "base package blocker-1.0-1.noarch") {
		t.Errorf("blocked re-application: %v", err)
	}
	if err := s.Load(); err != nil || len(s.Deployments) != before {
		t.Errorf("deployments changed: %d -> %d (%v)", before, len(s.Deployments), err)
	}
	names, _ := os.ReadDir(work)
	if len(names) != 0 {
		t.Errorf("left in the work directory: %v", names)
	}

	// A base that has everything requested: nothing is layered, the
	// base itself is the result.
	res4, err := build(v3, Requests{Install: []string{"blocker"}}, true)
	if err != nil || res4.Commit != v3 {
		t.Errorf("all requests met by the base: commit %s (base %s), %v", res4.Commit, v3, err)
	}
}
