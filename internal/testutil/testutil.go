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
