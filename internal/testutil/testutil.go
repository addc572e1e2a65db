// Package testutil holds helpers shared by tests that drive real tools.
package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing tool is a
// failure, never a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of an external program. Outside CI a
// missing program skips the test; in CI it fails it.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("required tool %q is not installed (CI=true: missing tools fail)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// RequireRoot skips (or, in CI, fails) a test that needs uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("this test needs root (CI runs as root)")
	}
	t.Skip("needs root")
}

// Run runs a command and fails the test if it fails; it returns stdout.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, errOut, err := RunErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// RunErr runs a command and returns its stdout, stderr and error.
func RunErr(name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// RequireFile returns path, a data file a Debian package (pkg) installs,
// such as libostree's test data from ostree-tests. Outside CI a missing
// file skips the test; in CI it fails it.
func RequireFile(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if InCI() {
		t.Fatalf("%s (Debian package %s) is missing (CI=true: missing tools fail)", path, pkg)
	}
	t.Skipf("%s not installed (Debian package %s)", path, pkg)
	return ""
}

// OstreeTestData is where Debian's ostree-tests package installs
// libostree's test data (hostile repositories, old-format deltas).
const OstreeTestData = "/usr/libexec/installed-tests/libostree"

// ExtractOstreeTestData unpacks one of libostree's test tarballs (e.g.
// "ostree-path-traverse.tar.gz") into a new temporary directory, which
// it returns.
func ExtractOstreeTestData(t testing.TB, name string) string {
	t.Helper()
	tarball := RequireFile(t, OstreeTestData+"/"+name, "ostree-tests")
	tar := RequireTool(t, "tar")
	dir := t.TempDir()
	Run(t, tar, "-xf", tarball, "-C", dir)
	return dir
}
