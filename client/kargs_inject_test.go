package client

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// bootFiles reads every file under /boot/loader.*, keyed by path.
func bootFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(dir, "boot/loader.*/entries/*"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

func runCLIErr(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func twoDeployments(t *testing.T) string {
	t.Helper()
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := filepath.Join(t.TempDir(), "sysroot")
	runCLI(t, "admin", "init-fs", dir)
	runCLI(t, "admin", "os-init", "cli", "--sysroot", dir)
	commitOS(t, dir+"/ostree/repo", "1")
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "cli", "--karg", "root=/dev/sda2", "cli/os")
	commitOS(t, dir+"/ostree/repo", "2")
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "cli", "cli/os")
	return dir
}

// Issue 10 item 2: a kernel argument with a newline (or another control
// character) is refused by admin kargs and admin deploy before anything
// is written.
func TestKargsWithNewlineRefused(t *testing.T) {
	dir := twoDeployments(t)
	before := bootFiles(t, dir)
	deploysBefore, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/cli/deploy/*"))
	for _, args := range [][]string{
		{"admin", "kargs", "--sysroot", dir, "--append", "y=2\nlinux /evil"},
		{"admin", "kargs", "--sysroot", dir, "--replace", "y=2\rinitrd /evil"},
		{"admin", "kargs", "--sysroot", dir, "--append", "a\tb"},
		{"admin", "kargs", "--sysroot", dir, "--append", `x="unbalanced`},
		{"admin", "kargs", "--sysroot", dir, "--append", "two words"},
		{"admin", "deploy", "--sysroot", dir, "--os", "cli", "--karg", "y=2\nlinux /evil", "cli/os"},
		{"admin", "deploy", "--sysroot", dir, "--os", "cli", "--karg-append", "y=2\ninitrd /evil", "cli/os"},
		{"admin", "deploy", "--sysroot", dir, "--os", "cli", "--stage", "--karg", "y=2\nlinux /evil", "cli/os"},
	} {
		code, _, stderr := runCLIErr(args...)
		if code == 0 || !strings.Contains(stderr, "kernel argument") {
			t.Errorf("%q: exit %d, stderr %q: want a refusal naming the kernel argument", args, code, stderr)
		}
	}
	if after := bootFiles(t, dir); len(after) != len(before) {
		t.Errorf("boot entries changed: %d files, were %d", len(after), len(before))
	} else {
		for p, b := range before {
			if after[p] != b {
				t.Errorf("%s changed:\n%s", p, after[p])
			}
		}
	}
	deploysAfter, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/cli/deploy/*"))
	if len(deploysAfter) != len(deploysBefore) {
		t.Errorf("deployments %v, were %v", deploysAfter, deploysBefore)
	}
	if _, err := os.Stat(filepath.Join(dir, "run/ostree/staged-deployment")); err == nil {
		t.Error("a refused --stage left a staged deployment")
	}
	// Quoted values with spaces are what the kernel accepts.
	runCLI(t, "admin", "kargs", "--sysroot", dir, "--append", `dyndbg="file x.c +p"`)
	if got := strings.TrimSpace(runCLI(t, "admin", "kargs", "--sysroot", dir)); got != `root=/dev/sda2 dyndbg="file x.c +p"` {
		t.Fatalf("kargs %q", got)
	}
}

// corruptDefaultEntry rewrites the default entry as an older version wrote
// it after `admin kargs --append $'y=2\nlinux /evil'`: the injected line
// carries the ostree= argument, which os-update writes last.
func corruptDefaultEntry(t *testing.T, dir string, keepOstreeArg bool) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "boot/loader/entries/ostree-*.conf"))
	sort.Strings(paths)
	p := paths[len(paths)-1] // highest version: the default
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^options (.*) (ostree=\S+)$`)
	repl := "options $1 y=2\nlinux /evil $2"
	if !keepOstreeArg {
		repl = "options $1 y=2\nlinux /evil"
	}
	nb := re.ReplaceAllString(string(b), repl)
	if nb == string(b) {
		t.Fatalf("no options line in %s:\n%s", p, b)
	}
	if err := os.WriteFile(p, []byte(nb), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A sysroot whose entry an older version already corrupted still opens:
// status names the damaged entry, and kargs --delete and rollback work
// and write clean entries again.
func TestCorruptedEntryStillOpens(t *testing.T) {
	dir := twoDeployments(t)
	entry := corruptDefaultEntry(t, dir, true)
	name := filepath.Base(entry)
	out := runCLI(t, "admin", "status", "--sysroot", dir)
	if !strings.Contains(out, "Warning: boot entry "+name+" is damaged") {
		t.Fatalf("status does not report the damaged entry:\n%s", out)
	}
	if st := status(t, dir); len(st.Deployments) != 2 || strings.Join(st.Deployments[0].Kargs, " ") != "root=/dev/sda2 y=2" {
		t.Fatalf("status %+v", st)
	}
	runCLI(t, "admin", "kargs", "--sysroot", dir, "--delete", "y")
	checkClean(t, dir)
	ostree := testutil.RequireTool(t, "ostree")
	if o, e, err := testutil.RunErr(ostree, "admin", "status", "--sysroot="+dir); err != nil {
		t.Errorf("ostree admin status after repair: %v\n%s%s", err, o, e)
	}

	// Rollback on a damaged sysroot works too.
	corruptDefaultEntry(t, dir, true)
	runCLI(t, "admin", "rollback", "--sysroot", dir)
	checkClean(t, dir)
}

// checkClean fails unless the current entries are as os-update writes
// them: no injected line, ostree= on the options line, no warning.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "boot/loader/entries/*.conf"))
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "/evil") || !regexp.MustCompile(`(?m)^options .*ostree=`).Match(b) {
			t.Errorf("current entry %s is still damaged:\n%s", p, b)
		}
	}
	if out := runCLI(t, "admin", "status", "--sysroot", dir); strings.Contains(out, "Warning") {
		t.Errorf("status still warns:\n%s", out)
	}
}

// An entry that names no deployment at all does not keep the sysroot
// from opening; changing the deployments is refused with the entry named,
// and nothing is deleted.
func TestUnusableEntryReportedNotDeleted(t *testing.T) {
	dir := twoDeployments(t)
	entry := corruptDefaultEntry(t, dir, false)
	name := filepath.Base(entry)
	out := runCLI(t, "admin", "status", "--sysroot", dir)
	if !strings.Contains(out, "Warning: boot entry "+name+" cannot be used") {
		t.Fatalf("status does not report the unusable entry:\n%s", out)
	}
	deploys, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/cli/deploy/*.?"))
	for _, args := range [][]string{
		{"admin", "rollback", "--sysroot", dir},
		{"admin", "kargs", "--sysroot", dir, "--deployment", "0", "--append", "z=1"},
		{"admin", "cleanup", "--sysroot", dir},
	} {
		code, _, stderr := runCLIErr(args...)
		if code == 0 || !strings.Contains(stderr, name) {
			t.Errorf("%q: exit %d, stderr %q: want a refusal naming %s", args, code, stderr, name)
		}
	}
	after, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/cli/deploy/*.?"))
	if len(after) != len(deploys) {
		t.Errorf("deployments %v, were %v", after, deploys)
	}
}
