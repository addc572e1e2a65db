package scriptlet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/rpmfixture"
	"github.com/osupdate/os-update/internal/testutil"
)

func setup(t *testing.T) (string, *Runner) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "bwrap")
	tree := filepath.Join(t.TempDir(), "tree")
	rpmfixture.ShellTree(t, tree)
	return tree, &Runner{}
}

func TestRunsInTree(t *testing.T) {
	tree, r := setup(t)
	hostMarker := filepath.Join(t.TempDir(), "host-only")
	os.WriteFile(hostMarker, []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(tree, "var/lib"), 0o755)
	os.WriteFile(filepath.Join(tree, "var/lib/keep"), []byte("k"), 0o644)
	body := `
set -e
echo "arg=$1" > /usr/arg
test ! -e ` + hostMarker + `
test ! -e /var/lib/keep
echo scratch > /var/scratch
cat /proc/net/dev > /usr/netdev
echo done
`
	var log strings.Builder
	r.Log = &log
	if err := r.Run(context.Background(), tree, Script{Name: "%post of t", Prog: []string{"/bin/sh"}, Body: body, Args: []string{"1"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "usr/arg")); string(b) != "arg=1\n" {
		t.Errorf("script output %q", b)
	}
	if _, err := os.Stat(filepath.Join(tree, "var/scratch")); !os.IsNotExist(err) {
		t.Error("/var is not a tmpfs: write reached the tree")
	}
	if _, err := os.Stat(filepath.Join(tree, "var/lib/keep")); err != nil {
		t.Error("tree /var damaged")
	}
	nd, _ := os.ReadFile(filepath.Join(tree, "usr/netdev"))
	for _, line := range strings.Split(string(nd), "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name != "lo" {
			t.Errorf("network interface %q visible in the sandbox", name)
		}
	}
	if !strings.Contains(log.String(), "done") {
		t.Errorf("log %q", log.String())
	}
}

func TestFailureCarriesOutput(t *testing.T) {
	tree, r := setup(t)
	err := r.Run(context.Background(), tree, Script{Name: "%pre of bad-1-1.noarch", Prog: []string{"/bin/sh"}, Body: "echo something broke >&2; exit 3"})
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "something broke") || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "bad-1-1.noarch") {
		t.Fatalf("got %v", err)
	}
	err = r.Run(context.Background(), tree, Script{Name: "%post of x", Prog: []string{"/usr/bin/python3"}, Body: "print(1)"})
	if err == nil || !strings.Contains(err.Error(), "not found in the tree") {
		t.Fatalf("missing interpreter: %v", err)
	}
}

// `rm -rf /` inside the sandbox destroys the tree and nothing else.
func TestRmRfRootHarmless(t *testing.T) {
	tree, r := setup(t)
	dir := filepath.Dir(tree)
	sentinel := filepath.Join(dir, "sentinel")
	os.WriteFile(sentinel, []byte("safe"), 0o644)
	hostFiles := []string{"/etc/passwd", "/bin/dash", "/usr/bin/bwrap"}
	err := r.Run(context.Background(), tree, Script{Name: "%post of evil", Prog: []string{"/bin/sh"},
		Body: "rm -rf --no-preserve-root / 2>/dev/null; exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(sentinel); err != nil || string(b) != "safe" {
		t.Fatalf("sentinel beside the tree damaged: %v", err)
	}
	for _, f := range hostFiles {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("host file %s damaged: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tree, "usr/bin/cat")); !os.IsNotExist(err) {
		t.Errorf("the script did not run (tree intact): %v", err)
	}
}
