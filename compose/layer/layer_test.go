package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/rpmpack"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/internal/rpmfixture"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// The fixture: a base composed from a "base" repository into a bare host
// repository, and a "layer" repository (signed, gpgcheck) served over
// HTTP, plus local .rpm files.
type fixture struct {
	dir      string
	env      *rpmfixture.Env
	srv      *httptest.Server
	hostRepo string // bare repository holding the base
	base     object.Checksum
	reposDir string // yum.repos.d for layering
	local    map[string]string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
	fixDir  string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "layer-fixture-")
	if err != nil {
		panic(err)
	}
	fixDir = d
	code := m.Run()
	if fix != nil && fix.srv != nil {
		fix.srv.Close()
	}
	os.RemoveAll(d)
	os.Exit(code)
}

const baseToolData = "base tool data\n"

func baseSpecs() []rpmfixture.Spec {
	return []rpmfixture.Spec{
		rpmfixture.ShellSpec("1.0"),
		{Name: "basetool", Version: "1.0", Requires: []string{"/bin/sh"},
			Files: map[string]string{"/usr/share/basetool/data": baseToolData, "/etc/basetool.conf": "tool=1\n"},
			Exec:  map[string]string{"/usr/bin/basetool": "#!/bin/sh\necho base\n"}, Config: []string{"/etc/basetool.conf"}},
		{Name: "victim", Version: "1.0", Files: map[string]string{"/usr/share/victim/data": "victim\n", "/etc/victim.conf": "v=1\n"},
			Config: []string{"/etc/victim.conf"}},
		{Name: "libold", Version: "1.0", Provides: []string{"libold-api = 1"}, Files: map[string]string{"/usr/lib/libold.txt": "libold 1.0\n"}},
		{Name: "needsvictim", Version: "1.0", Requires: []string{"victim"}, Files: map[string]string{"/usr/share/needsvictim": "x\n"}},
	}
}

func layerSpecs() []rpmfixture.Spec {
	return []rpmfixture.Spec{
		{Name: "hello", Version: "1.0", Requires: []string{"hello-lib >= 1", "/bin/sh"},
			Exec:  map[string]string{"/usr/bin/hello": "#!/bin/sh\necho hello\n"},
			Files: map[string]string{"/etc/hello.conf": "greeting=hi\n"}, Config: []string{"/etc/hello.conf"},
			Dirs: []string{"/var/lib/hello"},
			// The script sees the base's /etc, and appends to a base file
			// in place (which must not reach the repository's object).
			Post: "cat /etc/passwd > /usr/share/hello-lib/seen-passwd\necho \"post $1\" > /usr/share/hello-lib/post-ran\necho layered >> /usr/share/basetool/data"},
		{Name: "hello-lib", Version: "1.2", Dirs: []string{"/usr/share/hello-lib"}, Files: map[string]string{"/usr/share/hello-lib/lib.txt": "lib\n"}},
		{Name: "needs-missing", Version: "1.0", Requires: []string{"nonexistent-capability >= 2"}},
		{Name: "failpost", Version: "1.0", Files: map[string]string{"/usr/share/failpost": "x\n"},
			Post: "echo 'failpost cannot configure itself' >&2\nexit 3"},
		{Name: "rmrf", Version: "1.0", Files: map[string]string{"/usr/share/rmrf": "x\n"}, Post: "rm -rf --no-preserve-root /"},
		{Name: "devsda", Version: "1.0", Files: map[string]string{"/usr/share/devsda": "x\n"}, Post: "echo boom > /dev/sda"},
		{Name: "wiper", Version: "1.0", Files: map[string]string{"/usr/share/wiper": "x\n"}, Post: "rm -rf /usr/share/basetool\nexit 0"},
		{Name: "enemy", Version: "1.0", Conflicts: []string{"basetool"}, Files: map[string]string{"/usr/share/enemy": "x\n"}},
		{Name: "sleeper", Version: "1.0", Files: map[string]string{"/usr/share/sleeper": "x\n"}, Post: "touch /usr/share/sleeper-started\nwhile :; do :; done"},
		{Name: "unsigned", Version: "1.0", Files: map[string]string{"/usr/share/unsigned": "x\n"}},
		{Name: "wrongsig", Version: "1.0", Files: map[string]string{"/usr/share/wrongsig": "x\n"}},
	}
}

func upgradeSpecs() []rpmfixture.Spec {
	return []rpmfixture.Spec{
		{Name: "kernel", Version: "6.1.0", Files: map[string]string{"/boot/vmlinuz-6.1.0-fixture": "KERNEL IMAGE\n",
			"/usr/lib/modules/6.1.0-fixture/modules.dep": "\n", "/usr/lib/os-release": "NAME=FixtureOS\nID=fixture\nVERSION_ID=1\n"}},
		{Name: "basetool", Version: "2.0", Requires: []string{"/bin/sh"},
			Files: map[string]string{"/usr/share/basetool/data": "base tool 2\n", "/etc/basetool.conf": "tool=2\n"},
			Exec:  map[string]string{"/usr/bin/basetool": "#!/bin/sh\necho base 2\n"}, Config: []string{"/etc/basetool.conf"}},
		{Name: "blocker", Version: "1.0", Conflicts: []string{"hello"}, Files: map[string]string{"/usr/share/blocker": "x\n"}},
	}
}

func getFixture(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "bwrap")
	testutil.RequireTool(t, "rpm")
	testutil.RequireTool(t, "ostree")
	fixOnce.Do(func() { fix, fixErr = buildFixture(t) })
	if fixErr != nil {
		t.Fatalf("fixture: %v", fixErr)
	}
	return fix
}

type onceTB struct {
	*testing.T
	err *error
}

func (o *onceTB) Fatalf(format string, args ...any) {
	*o.err = fmt.Errorf(format, args...)
	o.T.Fatalf(format, args...)
}

func (o *onceTB) Fatal(args ...any) {
	*o.err = errors.New(fmt.Sprint(args...))
	o.T.Fatal(args...)
}

func buildFixture(t *testing.T) (*fixture, error) {
	var ferr error
	tb := &onceTB{T: t, err: &ferr}
	f := &fixture{dir: fixDir, local: map[string]string{}}
	f.env = rpmfixture.NewEnv(tb, filepath.Join(fixDir, "build"), true)
	baseDir := filepath.Join(fixDir, "base")
	for _, s := range baseSpecs() {
		f.env.Sign(tb, f.env.Build(tb, s, filepath.Join(baseDir, "Packages")))
	}
	rpmfixture.CreateRepo(tb, baseDir, "xz")
	layerDir := filepath.Join(fixDir, "layer")
	// A second key, which the layer repository does not trust.
	stranger := rpmfixture.NewEnv(tb, filepath.Join(fixDir, "stranger"), true)
	for _, s := range layerSpecs() {
		p := f.env.Build(tb, s, filepath.Join(layerDir, "Packages"))
		switch s.Name {
		case "unsigned":
		case "wrongsig":
			stranger.Sign(tb, p)
		default:
			f.env.Sign(tb, p)
		}
	}
	rpmfixture.CreateRepo(tb, layerDir, "gz")
	// Bootable bases for the deploy and upgrade test: the base packages
	// plus a kernel, a newer basetool and a package blocking hello.
	osDir := filepath.Join(fixDir, "os")
	for _, s := range append(baseSpecs(), upgradeSpecs()...) {
		f.env.Sign(tb, f.env.Build(tb, s, filepath.Join(osDir, "Packages")))
	}
	rpmfixture.CreateRepo(tb, osDir, "gz")
	f.srv = httptest.NewServer(http.FileServer(http.Dir(fixDir)))

	// Local files: a newer libold (override replace), a package only
	// available locally, a corrupt one, and two hostile payloads.
	localDir := filepath.Join(fixDir, "local")
	f.local["libold2"] = f.env.Build(tb, rpmfixture.Spec{Name: "libold", Version: "2.0", Provides: []string{"libold-api = 2"},
		Files: map[string]string{"/usr/lib/libold.txt": "libold 2.0\n"}, Post: "echo \"replaced $1\" > /usr/share/libold-post"}, localDir)
	f.local["localonly"] = f.env.Build(tb, rpmfixture.Spec{Name: "localonly", Version: "3.0", Requires: []string{"hello-lib"},
		Files: map[string]string{"/usr/share/localonly": "local\n"}}, localDir)
	good, err := os.ReadFile(f.local["localonly"])
	if err != nil {
		return nil, err
	}
	corrupt := filepath.Join(localDir, "corrupt-1.0-1.noarch.rpm")
	if err := os.WriteFile(corrupt, good[:len(good)/2], 0o644); err != nil {
		return nil, err
	}
	f.local["corrupt"] = corrupt
	f.local["dotdot"] = packRPM(tb, localDir, "dotdot", func(r *rpmpack.RPM) {
		r.AddFile(rpmpack.RPMFile{Name: "/usr/../../../etc/dotdot-escaped", Body: []byte("x"), Mode: 0o100644, Owner: "root", Group: "root"})
	})
	f.local["abslink"] = packRPM(tb, localDir, "abslink", func(r *rpmpack.RPM) {
		r.AddFile(rpmpack.RPMFile{Name: "/usr/lib/abslink", Body: []byte("/etc"), Mode: 0o120777, Owner: "root", Group: "root"})
		r.AddFile(rpmpack.RPMFile{Name: "/usr/lib/abslink/abslink-escaped", Body: []byte("x"), Mode: 0o100644, Owner: "root", Group: "root"})
	})

	// The base: composed into a bare repository, as on a host.
	cfg := filepath.Join(fixDir, "compose")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "base.repo"), []byte(fmt.Sprintf(
		"[base]\nname=Base\nbaseurl=%s/base\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n", f.srv.URL, f.env.PubKey)), 0o644)
	var pk []string
	for _, s := range baseSpecs() {
		pk = append(pk, "  - "+s.Name)
	}
	tf := filepath.Join(cfg, "tree.yaml")
	os.WriteFile(tf, []byte("ref: fixture/base\nrepos: [base]\nautomatic-version-prefix: \"1\"\npackages:\n"+strings.Join(pk, "\n")+"\n"), 0o644)
	f.hostRepo = filepath.Join(fixDir, "host-repo")
	r, err := repo.Init(f.hostRepo, repo.ModeBare)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var log bytes.Buffer
	res, err := compose.Tree(context.Background(), compose.Options{Treefile: tf, Repo: r, CacheDir: filepath.Join(fixDir, "compose-cache"), Log: &log})
	if err != nil {
		return nil, fmt.Errorf("compose base: %v\n%s", err, log.String())
	}
	if f.base, err = object.ParseChecksum(res.Commit); err != nil {
		return nil, err
	}

	// The host's package sources for layering.
	f.reposDir = filepath.Join(fixDir, "yum.repos.d")
	os.MkdirAll(f.reposDir, 0o755)
	os.WriteFile(filepath.Join(f.reposDir, "layer.repo"), []byte(fmt.Sprintf(
		"[layer]\nname=Layer\nbaseurl=%s/layer\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n\n[disabled]\nname=Off\nbaseurl=http://127.0.0.1:1/none\nenabled=0\n",
		f.srv.URL, f.env.PubKey)), 0o644)
	return f, ferr
}

// packRPM writes a package with rpmpack (for payloads rpmbuild refuses).
func packRPM(t testing.TB, dir, name string, add func(*rpmpack.RPM)) string {
	t.Helper()
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: name, Version: "1.0", Release: "1", Arch: "noarch"})
	if err != nil {
		t.Fatal(err)
	}
	add(r)
	p := filepath.Join(dir, name+"-1.0-1.noarch.rpm")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is one test's host: the fixture's repository (shared, read by
// every test) with a private work and cache directory.
type env struct {
	f     *fixture
	r     *repo.Repo
	work  string
	cache string
}

func newEnv(t *testing.T) *env {
	f := getFixture(t)
	r, err := repo.Open(f.hostRepo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	d := t.TempDir()
	// The work directory is on the repository's filesystem (hardlinks).
	work := filepath.Join(f.hostRepo, "tmp", filepath.Base(d))
	t.Cleanup(func() { os.RemoveAll(work) })
	return &env{f: f, r: r, work: work, cache: filepath.Join(d, "cache")}
}

func (e *env) opts(ref string, req Requests) Options {
	return Options{Repo: e.r, Base: e.f.base, Ref: ref, Requests: req, ReposDir: e.f.reposDir,
		CacheDir: e.cache, WorkDir: e.work}
}

// checkout writes a commit of the host repository to a fresh directory.
func (e *env) checkout(t *testing.T, c object.Checksum) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "co")
	testutil.Run(t, "ostree", "checkout", "--repo", e.f.hostRepo, c.String(), dir)
	return dir
}

func rpmQA(t *testing.T, tree string) []string {
	t.Helper()
	out := testutil.Run(t, "rpm", "-qa", "--root="+tree, "--dbpath=/usr/share/rpm", "--qf", "%{NEVRA}\\n")
	l := strings.Fields(out)
	sort.Strings(l)
	return l
}

// assertClean checks that a build left nothing: no work directory
// content, no overlay mount, the base unchanged (fsck re-hashes every
// object of the bare repository).
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	names, _ := os.ReadDir(e.work)
	for _, n := range names {
		t.Errorf("left behind in the work directory: %s", n.Name())
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), e.work) {
		t.Errorf("a mount under %s is left:\n%s", e.work, mi)
	}
	testutil.Run(t, "ostree", "fsck", "--repo", e.f.hostRepo)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var baseNEVRAs = []string{"basetool-1.0-1.noarch", "libold-1.0-1.noarch", "needsvictim-1.0-1.noarch", "shell-1.0-1.x86_64", "victim-1.0-1.noarch"}

func TestBaseHasRPMDB(t *testing.T) {
	e := newEnv(t)
	co := e.checkout(t, e.f.base)
	if got := rpmQA(t, co); strings.Join(got, " ") != strings.Join(baseNEVRAs, " ") {
		t.Fatalf("base rpm -qa %v, want %v", got, baseNEVRAs)
	}
}

func TestInstallWithDependencyAndPost(t *testing.T) {
	e := newEnv(t)
	var log bytes.Buffer
	var stages []string
	o := e.opts("test/install", Requests{Install: []string{"hello", "/bin/sh"}})
	o.Log = &log
	o.Progress = func(s string) { stages = append(stages, s) }
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if strings.Join(res.Layered, " ") != "hello-lib-1.2-1.noarch hello-1.0-1.noarch" {
		t.Errorf("layered %v", res.Layered)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "/bin/sh is already provided by base package shell-1.0-1.x86_64") {
		t.Errorf("notes %q", res.Notes)
	}
	if strings.Join(stages, ",") != "solve,fetch,checkout,unpack,commit" {
		t.Errorf("stages %v", stages)
	}
	if res.Timings.Total <= 0 || res.Timings.Checkout <= 0 || res.Timings.Commit <= 0 || res.Timings.Scripts <= 0 {
		t.Errorf("timings %+v", res.Timings)
	}
	if c, err := e.r.ReadRef("", "test/install"); err != nil || c != res.Commit {
		t.Errorf("ref at %s (%v), want %s", c, err, res.Commit)
	}
	cm, err := e.r.LoadCommit(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Parent != e.f.base || cm.Metadata.String(KeyBase) != e.f.base.String() ||
		cm.Metadata.String(KeyRequests) != `{"install":["hello","/bin/sh"]}` {
		t.Errorf("commit parent %s, metadata %v", cm.Parent, cm.Metadata)
	}
	e.assertClean(t)

	co := e.checkout(t, res.Commit)
	want := append(append([]string(nil), baseNEVRAs...), "hello-1.0-1.noarch", "hello-lib-1.2-1.noarch")
	sort.Strings(want)
	if got := rpmQA(t, co); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rpm -qa %v\nwant %v", got, want)
	}
	if s := readFile(t, filepath.Join(co, "usr/share/hello-lib/post-ran")); s != "post 1\n" {
		t.Errorf("post-ran %q", s)
	}
	// The script saw the base's /etc (the fixture's passwd), not the host's.
	if s := readFile(t, filepath.Join(co, "usr/share/hello-lib/seen-passwd")); s != "root:x:0:0:root:/root:/bin/sh\n" {
		t.Errorf("the script saw /etc/passwd = %q", s)
	}
	if s := readFile(t, filepath.Join(co, "usr/share/basetool/data")); s != baseToolData+"layered\n" {
		t.Errorf("derived basetool data %q", s)
	}
	// The base's object is intact (and fsck above agrees).
	if s := readFile(t, filepath.Join(e.checkout(t, e.f.base), "usr/share/basetool/data")); s != baseToolData {
		t.Errorf("base basetool data changed: %q", s)
	}
	if s := readFile(t, filepath.Join(co, "usr/etc/hello.conf")); s != "greeting=hi\n" {
		t.Errorf("hello.conf %q", s)
	}
	if s := readFile(t, filepath.Join(co, "usr/lib/tmpfiles.d/os-update-layer.conf")); !strings.Contains(s, "d /var/lib/hello 0755 root root - -") {
		t.Errorf("tmpfiles %q", s)
	}
	if names, _ := os.ReadDir(filepath.Join(co, "var")); len(names) != 0 {
		t.Errorf("/var of the derived tree is not empty: %v", names)
	}
	for _, n := range []string{"rpmdb.sqlite-wal", "rpmdb.sqlite-shm", ".rpm.lock"} {
		if _, err := os.Lstat(filepath.Join(co, "usr/share/rpm", n)); err == nil {
			t.Errorf("left %s", n)
		}
	}

	// The downloaded RPMs are cached (named by checksum).
	cached, _ := filepath.Glob(filepath.Join(e.cache, "rpms", "*.rpm"))
	if len(cached) != 2 {
		t.Errorf("cache holds %v", cached)
	}
}

func TestOverrideRemove(t *testing.T) {
	e := newEnv(t)
	res, err := Build(context.Background(), e.opts("test/remove", Requests{Remove: []string{"victim", "needsvictim"}}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Removed, " ") != "needsvictim-1.0-1.noarch victim-1.0-1.noarch" {
		t.Errorf("removed %v", res.Removed)
	}
	co := e.checkout(t, res.Commit)
	want := []string{"basetool-1.0-1.noarch", "libold-1.0-1.noarch", "shell-1.0-1.x86_64"}
	if got := rpmQA(t, co); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rpm -qa %v, want %v", got, want)
	}
	// (/usr/share/victim stays: no package owns it, and rpm leaves such
	// directories too.)
	for _, p := range []string{"usr/share/victim/data", "usr/etc/victim.conf", "usr/share/needsvictim"} {
		if _, err := os.Lstat(filepath.Join(co, p)); err == nil {
			t.Errorf("%s is still in the tree", p)
		}
	}
	if _, err := os.Lstat(filepath.Join(co, "usr/bin/basetool")); err != nil {
		t.Errorf("basetool went too: %v", err)
	}
	e.assertClean(t)

	// Removing a package another base package needs names that package.
	_, err = Build(context.Background(), e.opts("test/remove2", Requests{Remove: []string{"victim"}}))
	if err == nil || !strings.Contains(err.Error(), "needed by base package needsvictim-1.0-1.noarch") {
		t.Errorf("removing a needed package: %v", err)
	}
	_, err = Build(context.Background(), e.opts("test/remove3", Requests{Remove: []string{"nosuchpkg"}}))
	if err == nil || !strings.Contains(err.Error(), "override remove nosuchpkg: no package of that name") {
		t.Errorf("removing an unknown package: %v", err)
	}
	e.assertClean(t)
}

func TestOverrideReplaceLocal(t *testing.T) {
	e := newEnv(t)
	res, err := Build(context.Background(), e.opts("test/replace", Requests{Replace: []string{e.f.local["libold2"]}, Install: []string{e.f.local["localonly"]}}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Replaced, ",") != "libold-1.0-1.noarch libold-2.0-1.noarch" {
		t.Errorf("replaced %v", res.Replaced)
	}
	co := e.checkout(t, res.Commit)
	want := []string{"basetool-1.0-1.noarch", "hello-lib-1.2-1.noarch", "libold-2.0-1.noarch", "localonly-3.0-1.noarch",
		"needsvictim-1.0-1.noarch", "shell-1.0-1.x86_64", "victim-1.0-1.noarch"}
	if got := rpmQA(t, co); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rpm -qa %v\nwant %v", got, want)
	}
	if s := readFile(t, filepath.Join(co, "usr/lib/libold.txt")); s != "libold 2.0\n" {
		t.Errorf("libold.txt %q", s)
	}
	if s := readFile(t, filepath.Join(co, "usr/share/libold-post")); s != "replaced 2\n" {
		t.Errorf("replacement %%post got %q", s)
	}
	e.assertClean(t)
}

func TestConflictWithBase(t *testing.T) {
	e := newEnv(t)
	_, err := Build(context.Background(), e.opts("test/conflict", Requests{Install: []string{"enemy"}}))
	if err == nil || !strings.Contains(err.Error(), "enemy-1.0-1.noarch conflicts with base package basetool-1.0-1.noarch (basetool)") {
		t.Errorf("conflict: %v", err)
	}
	e.assertClean(t)
}

func TestDryRun(t *testing.T) {
	e := newEnv(t)
	o := e.opts("test/dry", Requests{Install: []string{"hello"}})
	o.DryRun = true
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Commit.IsZero() || strings.Join(res.Layered, " ") != "hello-lib-1.2-1.noarch hello-1.0-1.noarch" {
		t.Errorf("dry run %+v", res)
	}
	if _, err := e.r.ReadRef("", "test/dry"); err == nil {
		t.Error("a dry run moved a ref")
	}
	e.assertClean(t)
}

// Hostile input: each fails naming the package, leaves nothing behind and
// the base untouched.
func TestHostile(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		req  Requests
		want []string
	}{
		{"unknown", Requests{Install: []string{"no-such-package"}}, []string{`no package provides "no-such-package"`}},
		{"unsatisfiable", Requests{Install: []string{"needs-missing"}}, []string{"nothing provides nonexistent-capability >= 2 needed by needs-missing-1.0-1.noarch"}},
		{"unsigned", Requests{Install: []string{"unsigned"}}, []string{"package unsigned-1.0-1.noarch from layer (gpgcheck)", "not signed"}},
		{"wrongly signed", Requests{Install: []string{"wrongsig"}}, []string{"package wrongsig-1.0-1.noarch from layer (gpgcheck)", "signature"}},
		{"corrupt", Requests{Install: []string{e.f.local["corrupt"]}}, []string{"install: " + e.f.local["corrupt"]}},
		{"failing post", Requests{Install: []string{"failpost"}}, []string{"%post scriptlet of failpost-1.0-1.noarch failed: exit status 3", "failpost cannot configure itself"}},
		{"rm -rf /", Requests{Install: []string{"rmrf"}}, []string{"%post scriptlet of rmrf-1.0-1.noarch"}},
		{"script deleting base files", Requests{Install: []string{"wiper"}}, []string{"%post scriptlet of wiper-1.0-1.noarch deleted /usr/share/basetool, which belongs to the base"}},
		{"/dev/sda", Requests{Install: []string{"devsda"}}, []string{"%post scriptlet of devsda-1.0-1.noarch failed", "/dev/sda"}},
		{"dotdot", Requests{Install: []string{e.f.local["dotdot"]}}, []string{"dotdot-1.0-1.noarch", "escapes the tree"}},
		{"absolute symlink", Requests{Install: []string{e.f.local["abslink"]}}, []string{"abslink-1.0-1.noarch: payload entry /usr/lib/abslink/abslink-escaped goes through /usr/lib/abslink"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := "test/hostile/" + strings.ReplaceAll(strings.ReplaceAll(c.name, " ", "-"), "/", "")
			_, err := Build(context.Background(), e.opts(ref, c.req))
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := e.r.ReadRef("", ref); err == nil {
				t.Error("the ref was written")
			}
			e.assertClean(t)
			for _, p := range []string{"/etc/dotdot-escaped", "/etc/abslink-escaped"} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was written on the host", p)
				}
			}
		})
	}
}

func TestCancelDuringScript(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := e.opts("test/cancel", Requests{Install: []string{"sleeper"}})
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, o)
		done <- err
	}()
	// Cancel once the scriptlet is running: its marker shows in the
	// overlay's upper directory.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m, _ := filepath.Glob(filepath.Join(e.work, "layer-*", "overlay-*", "upper", "usr", "share", "sleeper-started"))
		if len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scriptlet never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled build returned %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the build did not stop")
	}
	if _, err := e.r.ReadRef("", "test/cancel"); err == nil {
		t.Error("the ref was written")
	}
	e.assertClean(t)
}
