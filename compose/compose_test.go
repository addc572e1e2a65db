package compose

import (
	"bytes"
	"compress/gzip"
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
	"sync"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/rpmfixture"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

// fixture holds the RPM repositories every test shares; they are built
// once per test binary.
type fixture struct {
	dir     string
	env     *rpmfixture.Env
	good    string // signed packages, createrepo_c'd
	bad     string // problem packages (signed but one), createrepo_c'd
	corrupt string // copy of good with one package damaged after indexing
	newer   string // good plus lib-1:2.5
	srv     *httptest.Server
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  string
	fixDir  string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "compose-fixture-")
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

func appSpec() rpmfixture.Spec {
	return rpmfixture.Spec{
		Name: "app", Version: "1.0", Release: "3",
		Requires: []string{"lib >= 1:1.5", "/usr/bin/helper", "(webserver or fallback-web)"},
		PreReq:   []string{"/bin/sh"},
		Files: map[string]string{
			"/etc/app/app.conf":                   "listen=80\n",
			"/usr/share/app/owned":                "data\n",
			"/usr/lib/systemd/system/app.service": "[Unit]\nDescription=app\n[Service]\nExecStart=/usr/bin/helper\n",
			"/usr/lib/os-release":                 "NAME=FixtureOS\nVERSION=\"1.0 (Fixture)\"\nID=fixture\nPRETTY_NAME=\"FixtureOS 1.0\"\n",
		},
		Config: []string{"/etc/app/app.conf"},
		Dirs:   []string{"/var/lib/app", "/usr/share/app"},
		Attr:   map[string]string{"/var/lib/app": "0750,appuser,appgroup", "/usr/share/app/owned": "0640,appuser,appgroup"},
		Ghost:  []string{"/var/log/app.log"},
		Pre: `# Create the user unless it exists (no getent or useradd in the fixture tree).
if ! cat /etc/passwd | while read l; do case "$l" in appuser:*) exit 1;; esac; done; then :; else
  echo 'appgroup:x:792:' >> /etc/group
  echo 'appuser:x:791:792:app:/var/lib/app:/sbin/nologin' >> /etc/passwd
fi`,
		Post:      "echo \"post ran with $1\" > /usr/share/app/post-ran",
		PostTrans: "cat /usr/share/app/post-ran > /usr/share/app/posttrans-ran",
		Triggers: []string{
			"%triggerin -- helper >= 1.0\necho \"helper trigger $1 $2\" > /usr/share/app/trigger-fired",
			"%triggerin -- not-installed\necho wrong > /usr/share/app/trigger-wrong",
			"%triggerun -- helper\necho wrong > /usr/share/app/trigger-wrong",
		},
	}
}

func getFixture(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "bwrap")
	testutil.RequireTool(t, "ostree")
	fixOnce.Do(func() {
		f := &fixture{dir: fixDir}
		defer func() {
			if fixErr == "" {
				fix = f
			}
		}()
		tb := &onceTB{T: t}
		f.env = rpmfixture.NewEnv(tb, filepath.Join(fixDir, "build"), true)
		f.good = filepath.Join(fixDir, "good")
		specs := []rpmfixture.Spec{
			rpmfixture.ShellSpec("1.0"),
			appSpec(),
			{Name: "lib", Version: "2.0", Epoch: 1, Files: map[string]string{"/usr/lib/libfix.txt": "lib 1:2.0\n"}},
			// Higher version, lower epoch: must lose against lib >= 1:1.5.
			{Name: "lib", Version: "3.0", Release: "1", Files: map[string]string{"/usr/lib/libfix.txt": "lib 3.0\n"}},
			{Name: "helper", Version: "1.0", Exec: map[string]string{"/usr/bin/helper": "#!/bin/sh\necho helper\n"},
				Hardlinks: map[string]string{"/usr/bin/helper-alias": "/usr/bin/helper"}, Compress: "xz"},
			{Name: "fallback-web", Version: "0.1", Files: map[string]string{"/usr/share/fallback-web/index.html": "hi\n"}, Compress: "zstd"},
			{Name: "oldtool", Version: "1.0", Files: map[string]string{"/usr/share/oldtool": "old\n"}},
			{Name: "newtool", Version: "2.0", Obsoletes: []string{"oldtool < 2"}, Provides: []string{"oldtool = 2"},
				Files: map[string]string{"/usr/share/newtool": "new\n"}},
			{Name: "kernel", Version: "6.1.0", Files: map[string]string{"/boot/vmlinuz-6.1.0-fixture": "KERNEL IMAGE\n",
				"/usr/lib/modules/6.1.0-fixture/modules.dep": "\n"}},
		}
		var built []string
		for _, s := range specs {
			p := f.env.Build(tb, s, filepath.Join(f.good, "Packages"))
			f.env.Sign(tb, p)
			built = append(built, p)
		}
		rpmfixture.CreateRepo(tb, f.good, "xz")

		f.bad = filepath.Join(fixDir, "bad")
		for _, s := range []rpmfixture.Spec{
			rpmfixture.ShellSpec("1.0"),
			{Name: "failing", Version: "1.0", Files: map[string]string{"/usr/share/failing": "x"},
				Post: "echo 'cannot configure failing: disk on fire' >&2\nexit 7"},
			{Name: "needy", Version: "1.0", Requires: []string{"nonexistent >= 2"}},
			{Name: "unsigned", Version: "1.0", Files: map[string]string{"/usr/share/unsigned": "x"}},
			{Name: "escaper", Version: "1.0", Files: map[string]string{"/usr/share/escaper": "x"}},
		} {
			p := f.env.Build(tb, s, filepath.Join(f.bad, "Packages"))
			if s.Name != "unsigned" {
				f.env.Sign(tb, p)
			}
		}
		rpmfixture.CreateRepo(tb, f.bad, "gz")

		f.corrupt = filepath.Join(fixDir, "corrupt")
		testutil.Run(tb, "cp", "-a", f.good, f.corrupt)
		victim := filepath.Join(f.corrupt, "Packages", filepath.Base(built[4]))
		b, _ := os.ReadFile(victim)
		b[len(b)-10] ^= 0xff
		os.WriteFile(victim, b, 0o644)

		f.newer = filepath.Join(fixDir, "newer")
		testutil.Run(tb, "cp", "-a", f.good, f.newer)
		p := f.env.Build(tb, rpmfixture.Spec{Name: "lib", Version: "2.5", Epoch: 1, Files: map[string]string{"/usr/lib/libfix.txt": "lib 1:2.5\n"}},
			filepath.Join(f.newer, "Packages"))
		f.env.Sign(tb, p)
		rpmfixture.CreateRepo(tb, f.newer, "bz2")

		f.srv = httptest.NewServer(http.FileServer(http.Dir(fixDir)))
	})
	if fixErr != "" {
		t.Fatalf("fixture: %s", fixErr)
	}
	return fix
}

// onceTB turns fixture failures into a recorded message, so that a later
// test sees the failure too instead of a half-built fixture.
type onceTB struct {
	*testing.T
}

func (o *onceTB) Fatalf(format string, args ...any) {
	fixErr = fmt.Sprintf(format, args...)
	o.T.Fatalf(format, args...)
}

func (o *onceTB) Fatal(args ...any) {
	fixErr = fmt.Sprint(args...)
	o.T.Fatal(args...)
}

// writeTreefile writes a treefile and a .repo file into dir.
func (f *fixture) writeTreefile(t *testing.T, dir, baseurl, extra string, packages ...string) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	repoFile := fmt.Sprintf("[fixture]\nname=Fixture\nbaseurl=%s\nenabled=1\ngpgcheck=1\ngpgkey=file://%s\n", baseurl, f.env.PubKey)
	if err := os.WriteFile(filepath.Join(dir, "fixture.repo"), []byte(repoFile), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ref: fixture/${releasever}/x86_64/base\nreleasever: \"1\"\nrepos: [fixture]\nautomatic-version-prefix: \"1.0\"\npackages:\n")
	for _, p := range packages {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	b.WriteString(extra)
	p := filepath.Join(dir, "tree.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var basePackages = []string{"shell", "app", "oldtool", "kernel"}

const baseExtra = `units: [app.service]
mutate-os-release: "1.0"
add-files:
  - [motd, /etc/motd]
`

func newRepo(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.Init(dir, repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

func ostree(t *testing.T, args ...string) string {
	t.Helper()
	return testutil.Run(t, "ostree", args...)
}

func TestComposeEndToEnd(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	tfDir := filepath.Join(dir, "config")
	os.MkdirAll(tfDir, 0o755)
	os.WriteFile(filepath.Join(tfDir, "motd"), []byte("welcome\n"), 0o644)
	tfPath := f.writeTreefile(t, tfDir, f.srv.URL+"/good", baseExtra, basePackages...)
	repoDir := filepath.Join(dir, "repo")
	r := newRepo(t, repoDir)
	var log bytes.Buffer
	report := filepath.Join(dir, "report.json")
	lock := filepath.Join(dir, "lock.json")
	opts := Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache"), Log: &log, JSONReport: report, WriteLockfile: lock}
	res, err := Tree(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	var got []string
	for _, p := range res.Packages {
		got = append(got, p.NEVRA)
		if p.Signer == "" {
			t.Errorf("%s: no verified signer recorded", p.NEVRA)
		}
	}
	sort.Strings(got)
	want := []string{"app-1.0-3.noarch", "fallback-web-0.1-1.noarch", "helper-1.0-1.noarch", "kernel-6.1.0-1.noarch",
		"lib-1:2.0-1.noarch", "newtool-2.0-1.noarch", "shell-1.0-1.x86_64"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("installed %v\nwant %v", got, want)
	}
	if !res.Changed || res.Version != "1.0" || res.Ref != "fixture/1/x86_64/base" || res.Kernel != "6.1.0-fixture" {
		t.Errorf("result %+v", res)
	}

	// The oracle reads it: fsck, metadata, tree content.
	ostree(t, "fsck", "--repo", repoDir)
	ref := res.Ref
	if c := strings.TrimSpace(ostree(t, "rev-parse", "--repo", repoDir, ref)); c != res.Commit {
		t.Errorf("ref at %s, result says %s", c, res.Commit)
	}
	if v := ostree(t, "show", "--repo", repoDir, "--print-metadata-key=version", ref); strings.TrimSpace(v) != "'1.0'" {
		t.Errorf("version %q", v)
	}
	pl := ostree(t, "show", "--repo", repoDir, "--print-metadata-key="+KeyPackageList, ref)
	if !strings.Contains(pl, "('lib', '1', '2.0', '1', 'noarch')") || !strings.Contains(pl, "('app', '', '1.0', '3', 'noarch')") {
		t.Errorf("package list %s", pl)
	}
	if b := ostree(t, "show", "--repo", repoDir, "--print-metadata-key=ostree.bootable", ref); strings.TrimSpace(b) != "true" {
		t.Errorf("bootable %q", b)
	}
	ls := ostree(t, "ls", "--repo", repoDir, "-R", ref)
	var norm []string
	for _, line := range strings.Split(ls, "\n") {
		norm = append(norm, strings.Join(strings.Fields(line), " "))
	}
	ls = strings.Join(norm, "\n")
	for _, want := range []string{
		"-00640 791 792 5 /usr/share/app/owned",
		"/usr/lib/modules/6.1.0-fixture/vmlinuz",
		"/usr/etc/app/app.conf",
		"/usr/etc/motd",
		"/usr/etc/systemd/system/multi-user.target.wants/app.service -> /usr/lib/systemd/system/app.service",
		"/home -> var/home",
		"/ostree -> sysroot/ostree",
		"/usr/share/newtool",
		ManifestPath,
	} {
		if !strings.Contains(ls, want) {
			t.Errorf("tree lacks %q:\n%s", want, ls)
		}
	}
	paths := map[string]bool{}
	for _, line := range strings.Split(ls, "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			paths[f[4]] = true
		}
	}
	for _, absent := range []string{"/usr/share/oldtool", "/var/lib/app", "/var/log/app.log", "/etc/passwd", "/boot/vmlinuz-6.1.0-fixture"} {
		if paths[absent] {
			t.Errorf("tree has %q", absent)
		}
	}
	if !paths["/usr/etc/passwd"] {
		t.Error("no /usr/etc/passwd")
	}

	co := filepath.Join(dir, "checkout")
	ostree(t, "checkout", "--repo", repoDir, ref, co)
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(co, p))
		if err != nil {
			t.Fatalf("checkout: %v", err)
		}
		return string(b)
	}
	if s := read("usr/share/app/posttrans-ran"); s != "post ran with 1\n" {
		t.Errorf("post/posttrans output %q", s)
	}
	if s := read("usr/share/app/trigger-fired"); s != "helper trigger 1 1\n" {
		t.Errorf("triggerin output %q", s)
	}
	if _, err := os.Stat(filepath.Join(co, "usr/share/app/trigger-wrong")); err == nil {
		t.Error("a trigger fired that should not")
	}
	if !strings.Contains(read("usr/etc/passwd"), "appuser:x:791:792") {
		t.Error("the pre scriptlet did not create the user")
	}
	if s := read("usr/lib/libfix.txt"); s != "lib 1:2.0\n" {
		t.Errorf("wrong lib: %q", s)
	}
	if osr := read("usr/lib/os-release"); !strings.Contains(osr, "OSTREE_VERSION='1.0'") {
		t.Errorf("os-release %q", osr)
	}
	tmpf := read("usr/lib/tmpfiles.d/os-update-compose.conf")
	if !strings.Contains(tmpf, "d /var/lib/app 0750 appuser appgroup - -") || !strings.Contains(tmpf, "L /var/lib/rpm - - - - ../../usr/share/rpm") {
		t.Errorf("tmpfiles:\n%s", tmpf)
	}
	// The rpm database: nothing but the database file, which Debian's
	// rpm reads from a read-only tree and lists the packages with
	// versions.
	for _, n := range []string{".rpm.lock", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"} {
		if _, err := os.Lstat(filepath.Join(co, "usr/share/rpm", n)); err == nil {
			t.Errorf("rpm left %s in the tree", n)
		}
	}
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o755)
	testutil.Run(t, "mount", "--bind", "-o", "ro", co, ro)
	defer testutil.Run(t, "umount", ro)
	rpmQA := strings.Split(strings.TrimSpace(testutil.Run(t, "rpm", "-qa", "--root="+ro, "--dbpath=/usr/share/rpm", "--qf", "%{NEVRA}\\n")), "\n")
	sort.Strings(rpmQA)
	if strings.Join(rpmQA, " ") != strings.Join(want, " ") {
		t.Errorf("rpm -qa: %v\nwant %v", rpmQA, want)
	}
	if l, err := os.Readlink(filepath.Join(co, "usr/lib/sysimage/rpm")); err != nil || l != "../../share/rpm" {
		t.Errorf("/usr/lib/sysimage/rpm: %q %v", l, err)
	}
	fi1, _ := os.Stat(filepath.Join(co, "usr/bin/helper"))
	fi2, _ := os.Stat(filepath.Join(co, "usr/bin/helper-alias"))
	if !os.SameFile(fi1, fi2) && ostreeChecksum(t, repoDir, ref, "/usr/bin/helper") != ostreeChecksum(t, repoDir, ref, "/usr/bin/helper-alias") {
		t.Error("hardlinked files differ")
	}
	var manifest struct {
		Packages []struct {
			NEVRA  string   `json:"nevra"`
			Config []string `json:"config"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(read(ManifestPath[1:])), &manifest); err != nil || len(manifest.Packages) != 7 {
		t.Errorf("manifest: %v %+v", err, manifest)
	}
	var rep Result
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Commit != res.Commit || len(rep.Packages) != 7 || rep.TimingsMS == nil {
		t.Errorf("json report: %v %s", err, b)
	}

	// No change: same inputs, no new commit.
	log.Reset()
	res2, err := Tree(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || res2.Commit != res.Commit || !strings.Contains(log.String(), "No changes") {
		t.Errorf("recompose: changed=%v commit %s log %q", res2.Changed, res2.Commit, log.String())
	}

	// A changed input gives a child commit with the next version.
	os.WriteFile(filepath.Join(tfDir, "motd"), []byte("welcome back\n"), 0o644)
	res3, err := Tree(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res3.Changed || res3.Parent != res.Commit || res3.Version != "1.0.1" {
		t.Errorf("third compose: %+v", res3)
	}
	if p := strings.TrimSpace(ostree(t, "rev-parse", "--repo", repoDir, ref+"^")); p != res.Commit {
		t.Errorf("parent per ostree: %s", p)
	}

	// A failing signer leaves the ref where it was; a post-commit hook
	// sees the parent and the new commit.
	os.WriteFile(filepath.Join(tfDir, "motd"), []byte("third\n"), 0o644)
	failing := opts
	failing.Sign = func(*repo.Repo, object.Checksum) error { return fmt.Errorf("key unavailable") }
	if _, err := Tree(context.Background(), failing); err == nil || !strings.Contains(err.Error(), "key unavailable") {
		t.Errorf("failing signer: %v", err)
	}
	if c := strings.TrimSpace(ostree(t, "rev-parse", "--repo", repoDir, ref)); c != res3.Commit {
		t.Errorf("ref moved despite the signing failure: %s", c)
	}
	var hookParent, hookCommit object.Checksum
	hooked := opts
	hooked.Sign = func(*repo.Repo, object.Checksum) error { return nil }
	hooked.PostCommit = func(_ context.Context, _ *repo.Repo, gotRef string, parent, commit object.Checksum) error {
		if gotRef != ref {
			t.Errorf("hook ref %s", gotRef)
		}
		hookParent, hookCommit = parent, commit
		return nil
	}
	res4, err := Tree(context.Background(), hooked)
	if err != nil {
		t.Fatal(err)
	}
	if hookParent.String() != res3.Commit || hookCommit.String() != res4.Commit || res4.Version != "1.0.2" {
		t.Errorf("hook saw %s -> %s; compose %+v", hookParent, hookCommit, res4)
	}

	// The lockfile pins lib at 1:2.0 even when the repo has 1:2.5.
	lf, _ := os.ReadFile(lock)
	if !strings.Contains(string(lf), `"evra": "1:2.0-1.noarch"`) {
		t.Errorf("lockfile: %s", lf)
	}
	tfNewer := f.writeTreefile(t, filepath.Join(dir, "newer"), "file://"+f.newer, "", basePackages...)
	for _, useLock := range []bool{true, false} {
		o := Options{Treefile: tfNewer, Repo: r, CacheDir: filepath.Join(dir, "cache"), DryRun: true}
		if useLock {
			o.Lockfile = lock
		}
		res, err := Tree(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		wantLib := map[bool]string{true: "lib-1:2.0-1.noarch", false: "lib-1:2.5-1.noarch"}[useLock]
		found := false
		for _, p := range res.Packages {
			found = found || p.NEVRA == wantLib
		}
		if !found {
			t.Errorf("lock=%v: %s not chosen: %+v", useLock, wantLib, res.Packages)
		}
	}
}

func ostreeChecksum(t *testing.T, repoDir, ref, path string) string {
	out := ostree(t, "ls", "--repo", repoDir, "-C", ref, path)
	f := strings.Fields(out)
	if len(f) < 5 {
		return ""
	}
	return f[4]
}

// Two composes of the same inputs, in different directories and from
// different transports, give the same commit.
func TestReproducible(t *testing.T) {
	f := getFixture(t)
	var commits []string
	for i, base := range []string{"file://" + f.good, f.srv.URL + "/good"} {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("run%d", i))
		tfDir := filepath.Join(dir, "cfg")
		os.MkdirAll(tfDir, 0o755)
		os.WriteFile(filepath.Join(tfDir, "motd"), []byte("same\n"), 0o644)
		tfPath := f.writeTreefile(t, tfDir, base, baseExtra, basePackages...)
		r := newRepo(t, filepath.Join(dir, "repo"))
		res, err := Tree(context.Background(), Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache")})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, res.Commit)
		ostree(t, "fsck", "--repo", filepath.Join(dir, "repo"))
	}
	if commits[0] != commits[1] {
		t.Fatalf("same inputs, different commits: %s vs %s", commits[0], commits[1])
	}
	// SOURCE_DATE_EPOCH sets the timestamp (and so changes the commit).
	dir := t.TempDir()
	tfPath := f.writeTreefile(t, filepath.Join(dir, "cfg"), "file://"+f.good, "", "shell")
	r := newRepo(t, filepath.Join(dir, "repo"))
	epoch := int64(1234567890)
	res, err := Tree(context.Background(), Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache"), SourceDateEpoch: &epoch})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := object.ParseChecksum(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := r.LoadCommit(sum)
	if err != nil || cm.Timestamp != uint64(epoch) || res.Timestamp != epoch {
		t.Errorf("timestamp %d (%v), want %d", cm.Timestamp, err, epoch)
	}
}

func TestDryRun(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	tfPath := f.writeTreefile(t, filepath.Join(dir, "cfg"), "file://"+f.good, "", basePackages...)
	r := newRepo(t, filepath.Join(dir, "repo"))
	var log bytes.Buffer
	res, err := Tree(context.Background(), Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache"), DryRun: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != "" || !strings.Contains(log.String(), "app-1.0-3.noarch") || !strings.Contains(log.String(), "7 packages") {
		t.Errorf("dry run: %+v\n%s", res, log.String())
	}
	if refs, _ := r.ListRefs(); len(refs) != 0 {
		t.Errorf("dry run made refs %v", refs)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", "packages")); !os.IsNotExist(err) {
		t.Error("dry run downloaded packages")
	}
}

// Every kind of bad input fails clearly, with no commit and no ref.
func TestBadInputs(t *testing.T) {
	f := getFixture(t)
	cases := []struct {
		name, base, extra string
		packages          []string
		want              []string
	}{
		{"unknown package", "file://" + f.good, "", []string{"shell", "no-such-package"}, []string{`no package provides "no-such-package"`}},
		{"unsatisfiable", "file://" + f.bad, "", []string{"shell", "needy"}, []string{"nothing provides nonexistent >= 2 needed by needy-1.0-1.noarch"}},
		{"checksum mismatch", "file://" + f.corrupt, "", basePackages, []string{"helper-1.0-1.noarch", "checksum mismatch"}},
		{"unsigned with gpgcheck", f.srv.URL + "/bad", "", []string{"shell", "unsigned"}, []string{"unsigned-1.0-1.noarch", "gpgcheck", "not signed"}},
		{"failing scriptlet", "file://" + f.bad, "", []string{"shell", "failing"}, []string{"%post scriptlet of failing-1.0-1.noarch failed", "exit status 7", "disk on fire"}},
		{"failing postprocess", "file://" + f.bad, "postprocess:\n  - |\n    echo postprocess says no >&2\n    false\n", []string{"shell"}, []string{"postprocess script 1 failed", "postprocess says no"}},
		{"invalid treefile", "file://" + f.good, "bogus-key: 1\n", []string{"shell"}, []string{"tree.yaml:", `unknown key "bogus-key"`}},
		{"missing repo", "file:///nonexistent", "", []string{"shell"}, []string{"repo fixture", "/nonexistent/repodata/repomd.xml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tfPath := f.writeTreefile(t, filepath.Join(dir, "cfg"), c.base, c.extra, c.packages...)
			repoDir := filepath.Join(dir, "repo")
			r := newRepo(t, repoDir)
			report := filepath.Join(dir, "report.json")
			_, err := Tree(context.Background(), Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache"), JSONReport: report})
			if err == nil {
				t.Fatal("compose succeeded")
			}
			if b, rerr := os.ReadFile(report); rerr == nil {
				var rep Result
				if json.Unmarshal(b, &rep) != nil || rep.Error != err.Error() || rep.Commit != "" {
					t.Errorf("report of a failed compose: %s", b)
				}
			} else if c.name != "invalid treefile" {
				t.Errorf("no report: %v", rerr)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if refs, _ := r.ListRefs(); len(refs) != 0 {
				t.Errorf("refs written: %v", refs)
			}
			commits, _ := filepath.Glob(filepath.Join(repoDir, "objects", "*", "*.commit"))
			if len(commits) != 0 {
				t.Errorf("commit objects written: %v", commits)
			}
			if work, _ := filepath.Glob(filepath.Join(dir, "cache", "work-*")); len(work) != 0 {
				t.Errorf("work directories left: %v", work)
			}
		})
	}
}

func TestCommitRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for p, body := range map[string]string{
		"etc/hostname": "box\n", "usr/bin/tool": "#!/bin/sh\n", "var/lib/db/state": "s", "boot/vmlinuz-5.0-x": "K",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755)
		os.WriteFile(filepath.Join(rootfs, p), []byte(body), 0o644)
	}
	repoDir := filepath.Join(dir, "repo")
	r := newRepo(t, repoDir)
	commit, pp, err := CommitRootfs(context.Background(), RootfsOptions{Rootfs: rootfs, Repo: r, Branch: "custom/os", Subject: "custom"})
	if err != nil {
		t.Fatal(err)
	}
	if pp.KernelVersion != "5.0-x" {
		t.Errorf("kernel %q", pp.KernelVersion)
	}
	ostree(t, "fsck", "--repo", repoDir)
	ls := ostree(t, "ls", "--repo", repoDir, "-R", commit.String())
	for _, want := range []string{"/usr/etc/hostname", "/usr/lib/modules/5.0-x/vmlinuz", "/usr/share/factory/var/lib/db/state"} {
		if !strings.Contains(ls, want) {
			t.Errorf("missing %s", want)
		}
	}
	// The source tree is untouched.
	for _, p := range []string{"etc/hostname", "var/lib/db/state", "boot/vmlinuz-5.0-x"} {
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("rootfs changed: %v", err)
		}
	}
}

func TestNextVersion(t *testing.T) {
	for _, c := range [][3]string{{"38", "", "38"}, {"38", "38", "38.1"}, {"38", "38.9", "38.10"}, {"38", "37.2", "38"}, {"", "1", ""}, {"38", "38.x", "38"}} {
		if got := nextVersion(c[0], c[1]); got != c[2] {
			t.Errorf("nextVersion(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// TestPublishSigned composes twice with signing through Publish, serves
// the repository over HTTP and lets ostree pull it with signature checks
// on commits and summary: the second pull uses the static delta.
func TestPublishSigned(t *testing.T) {
	f := getFixture(t)
	key := gpgtest.NewKey(t, "Compose Publisher", "never")
	signer, err := sign.LoadGPGSigner(key.SecretFile, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "motd"), []byte("one\n"), 0o644)
	tfPath := f.writeTreefile(t, cfg, "file://"+f.good, "add-files:\n  - [motd, /usr/share/motd]\n", "shell", "helper")
	repoDir := filepath.Join(dir, "repo")
	r := newRepo(t, repoDir)
	signFn, post := Publish{Signers: []sign.Signer{signer}}.Hooks()
	opts := Options{Treefile: tfPath, Repo: r, CacheDir: filepath.Join(dir, "cache"), Sign: signFn, PostCommit: post}
	first, err := Tree(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cfg, "motd"), []byte("two\n"), 0o644)
	second, err := Tree(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := ostree(t, "static-delta", "list", "--repo", repoDir); !strings.Contains(d, first.Commit+"-"+second.Commit) {
		t.Errorf("no delta %s-%s: %s", first.Commit, second.Commit, d)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	defer srv.Close()
	client := filepath.Join(dir, "client")
	ostree(t, "init", "--repo", client, "--mode=bare-user") // deltas apply only to non-archive repos
	ostree(t, "remote", "add", "--repo", client, "--gpg-import", key.PublicFile, "--set=gpg-verify-summary=true", "origin", srv.URL)
	ref := first.Ref
	ostree(t, "pull", "--repo", client, "origin", ref+"@"+first.Commit)
	out := ostree(t, "pull", "--repo", client, "--require-static-deltas", "origin", ref)
	t.Logf("pull: %s", out)
	if c := strings.TrimSpace(ostree(t, "rev-parse", "--repo", client, "origin:"+ref)); c != second.Commit {
		t.Errorf("pulled %s, want %s", c, second.Commit)
	}
	ostree(t, "fsck", "--repo", client)
}

// TestCommitRootfsInitramfs: a tree with a kernel, no initramfs and its own
// static /usr/bin/os-update gets a built initramfs whose /init is that
// binary; a tree that ships an initramfs keeps it byte for byte; without
// any static os-update the tree stays without one, with a note.
func TestCommitRootfsInitramfs(t *testing.T) {
	testutil.RequireRoot(t)
	busybox := testutil.RequireTool(t, "busybox") // a static ELF stands in for os-update
	cpio := testutil.RequireTool(t, "cpio")
	static, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := newRepo(t, filepath.Join(dir, "repo"))
	mk := func(name string, files map[string][]byte) string {
		root := filepath.Join(dir, name)
		for p, body := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
			os.WriteFile(filepath.Join(root, p), body, 0o755)
		}
		return root
	}
	read := func(c object.Checksum, p string) []byte {
		out := filepath.Join(t.TempDir(), "co")
		if err := r.Checkout(context.Background(), c, out, repo.CheckoutOptions{}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(out, p))
		return b
	}

	withInit := mk("a", map[string][]byte{"boot/vmlinuz-6.0-t": []byte("K"), "usr/bin/os-update": static})
	c, pp, err := CommitRootfs(context.Background(), RootfsOptions{Rootfs: withInit, Repo: r, Branch: "a/os", Timestamp: time.Unix(1000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	img := read(c, "usr/lib/modules/6.0-t/initramfs.img")
	if len(img) == 0 {
		t.Fatalf("no initramfs built; notes %q", pp.Notes)
	}
	// Same content at another time: the same initramfs (deltas and /boot
	// share it).
	c2, _, err := CommitRootfs(context.Background(), RootfsOptions{Rootfs: withInit, Repo: r, Branch: "a/os", Timestamp: time.Unix(2000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(c2, "usr/lib/modules/6.0-t/initramfs.img"), img) {
		t.Fatal("the initramfs depends on the commit time")
	}
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, zr
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, o)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "init")); !bytes.Equal(got, static) {
		t.Fatal("/init is not the tree's os-update")
	}

	own := mk("b", map[string][]byte{"boot/vmlinuz-6.0-t": []byte("K"), "boot/initramfs-6.0-t.img": []byte("dracut's"), "usr/bin/os-update": static})
	c, _, err = CommitRootfs(context.Background(), RootfsOptions{Rootfs: own, Repo: r, Branch: "b/os"})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(c, "usr/lib/modules/6.0-t/initramfs.img"); string(got) != "dracut's" {
		t.Fatalf("distribution initramfs replaced: %q", got)
	}

	none := mk("c", map[string][]byte{"boot/vmlinuz-6.0-t": []byte("K")})
	c, pp, err = CommitRootfs(context.Background(), RootfsOptions{Rootfs: none, Repo: r, Branch: "c/os"})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(c, "usr/lib/modules/6.0-t/initramfs.img"); got != nil || !strings.Contains(strings.Join(pp.Notes, "\n"), "no initramfs built") {
		t.Fatalf("initramfs %d bytes, notes %q", len(got), pp.Notes)
	}
}
