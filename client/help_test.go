package client

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// commandPaths lists every command of the tree, hidden ones included, as
// argument lists ("repo", "pull").
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, s := range c.Commands() {
		p := append(append([]string(nil), prefix...), s.Name())
		out = append(out, p)
		out = append(out, commandPaths(s, p)...)
	}
	return out
}

// golden compares got with testdata/NAME.golden (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// TestHelpGolden renders the --help of every command.
func TestHelpGolden(t *testing.T) {
	t.Setenv("OS_UPDATE_BUS_ADDRESS", "")
	t.Setenv("OSTREE_REPO", "")
	root := newRoot(&env{})
	paths := append([][]string{nil}, commandPaths(root, nil)...)
	if len(paths) < 50 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, p := range paths {
		name := "help/os-update"
		if len(p) > 0 {
			name += "_" + strings.Join(p, "_")
		}
		var out, errOut bytes.Buffer
		if code := Main(append(p, "--help"), &out, &errOut); code != ExitOK || errOut.Len() > 0 {
			t.Errorf("%v --help: exit %d, stderr %q", p, code, errOut.String())
		}
		// The help lists every option of the command.
		cmd, _, _ := root.Find(p)
		for _, f := range visibleFlagNames(cmd) {
			if !strings.Contains(out.String(), "--"+f) {
				t.Errorf("%v --help does not mention --%s", p, f)
			}
		}
		golden(t, name, out.String())
		// "os-update help CMD" says the same.
		if len(p) > 0 {
			var h bytes.Buffer
			if code := Main(append([]string{"help"}, p...), &h, &errOut); code != ExitOK || h.String() != out.String() {
				t.Errorf("help %v: exit %d, differs from --help", p, code)
			}
		}
	}
}

func visibleFlagNames(cmd *cobra.Command) []string {
	var names []string
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	return names
}

// TestUsageErrors: a bad option or command is one line naming it, with a
// hint where to look, and exit status 2.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--bogus"}, "error: unknown flag: --bogus (see 'os-update status --help')\n"},
		{[]string{"repo", "log", "-Z"}, "error: unknown shorthand flag: 'Z' in -Z (see 'os-update repo log --help')\n"},
		{[]string{"--bogus"}, "error: unknown flag: --bogus (see 'os-update --help')\n"},
		{[]string{"statsu"}, "error: unknown command \"statsu\" for 'os-update'; did you mean status? (see 'os-update --help')\n"},
		{[]string{"repo", "delta", "bogus"}, "error: unknown command \"bogus\" for 'os-update repo delta' (see 'os-update repo delta --help')\n"},
		{[]string{"upgrade", "extra"}, "error: upgrade takes no arguments (see 'os-update upgrade --help')\n"},
		{[]string{"history", "-n", "x"}, "error: invalid argument \"x\" for \"-n, --limit\" flag: must be a non-negative integer (see 'os-update history --help')\n"},
		{[]string{"help", "bogus"}, "error: no command \"bogus\" (see 'os-update --help')\n"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(c.args, &out, &errOut); code != ExitUsage || errOut.String() != c.want || out.Len() > 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out.String(), errOut.String(), c.want)
		}
	}
	// A group without a command prints its help on stderr, exit 2.
	var out, errOut bytes.Buffer
	if code := Main([]string{"repo"}, &out, &errOut); code != ExitUsage || !strings.Contains(errOut.String(), "Usage: os-update repo COMMAND") {
		t.Errorf("repo: exit %d, stderr %q", code, errOut.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		var out, errOut bytes.Buffer
		if code := Main(args, &out, &errOut); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		lines := strings.Split(out.String(), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "os-update ") || !strings.HasPrefix(lines[1], "commit: ") || !strings.HasPrefix(lines[2], "go: go1.") {
			t.Errorf("%v: %q", args, out.String())
		}
	}
}

// TestVersionLdflags builds the binary with the link-time override.
func TestVersionLdflags(t *testing.T) {
	testutil.RequireTool(t, "go")
	bin := filepath.Join(t.TempDir(), "os-update")
	pkg := "github.com/osupdate/os-update/internal/version"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X "+pkg+".Version=9.8.7 -X "+pkg+".Commit=abc123", "github.com/osupdate/os-update/cmd/os-update")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "os-update 9.8.7\ncommit: abc123\ngo: go1.") {
		t.Errorf("--version: %v %q", err, out)
	}
}

func TestCompletion(t *testing.T) {
	testutil.RequireTool(t, "bash")
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errOut bytes.Buffer
		if code := Main([]string{"completion", sh}, &out, &errOut); code != ExitOK || out.Len() < 1000 {
			t.Fatalf("completion %s: exit %d, %d bytes: %s", sh, code, out.Len(), errOut.String())
		}
		if !strings.Contains(out.String(), "os-update") {
			t.Errorf("completion %s does not name os-update", sh)
		}
		if sh == "bash" {
			path := filepath.Join(t.TempDir(), "os-update.bash")
			os.WriteFile(path, out.Bytes(), 0o644)
			if b, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, b)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"completion", "tcsh"}, &out, &errOut); code != ExitUsage {
		t.Errorf("completion tcsh: exit %d", code)
	}
	// The scripts ask the binary: commands, options and fixed values complete.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "repo", "pu"}, "pull\tpull refs from a remote over HTTP"},
		{[]string{"__complete", "upgrade", "--st"}, "--stage\t"},
		{[]string{"__complete", "completion", ""}, "zsh"},
	} {
		out.Reset()
		if code := Main(c.args, &out, &errOut); code != ExitOK || !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: exit %d, %q lacks %q", c.args, code, out.String(), c.want)
		}
	}
}

// TestManPages writes a page per command and checks man can render one.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := Main([]string{"man", dir}, &out, &errOut); code != ExitOK {
		t.Fatalf("man: exit %d: %s", code, errOut.String())
	}
	root := newRoot(&env{})
	n := 1
	for _, p := range commandPaths(root, nil) {
		cmd, _, _ := root.Find(p)
		if !cmd.IsAvailableCommand() || isHiddenPath(cmd) {
			continue
		}
		n++
		page, err := os.ReadFile(filepath.Join(dir, "os-update-"+strings.Join(p, "-")+".1"))
		if err != nil {
			t.Errorf("%v: %v", p, err)
			continue
		}
		if !strings.Contains(string(page), ".SH NAME\n") || !strings.Contains(string(page), cmd.Short[:10]) {
			t.Errorf("%v: page lacks its name or summary:\n%s", p, page)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != n {
		t.Errorf("%d man pages for %d commands", len(entries), n)
	}
	golden(t, "man/os-update-history.1", mustRead(t, filepath.Join(dir, "os-update-history.1")))
	if _, err := exec.LookPath("man"); err == nil {
		b, err := exec.Command("man", "-l", filepath.Join(dir, "os-update-repo-pull.1")).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "--depth") {
			t.Errorf("man -l: %v\n%s", err, b)
		}
	}
}

func isHiddenPath(c *cobra.Command) bool {
	for ; c != nil; c = c.Parent() {
		if c.Hidden {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOstreeRepoEnv: --repo defaults to $OSTREE_REPO, as with ostree.
func TestOstreeRepoEnv(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	t.Setenv("OSTREE_REPO", "")
	var out, errOut bytes.Buffer
	if code := Main([]string{"repo", "refs"}, &out, &errOut); code != ExitUsage || !strings.Contains(errOut.String(), "--repo is required (or set OSTREE_REPO)") {
		t.Fatalf("without OSTREE_REPO: exit %d, %s", code, errOut.String())
	}
	t.Setenv("OSTREE_REPO", dir)
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644)
	for _, args := range [][]string{{"repo", "init", "--mode", "archive"}, {"repo", "commit", "-b", "os", tree}, {"repo", "refs"}} {
		out.Reset()
		if code := Main(args, &out, &errOut); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
	}
	if out.String() != "os\n" {
		t.Errorf("refs in $OSTREE_REPO: %q", out.String())
	}
	// --repo still wins.
	errOut.Reset()
	if code := Main([]string{"repo", "refs", "--repo", filepath.Join(t.TempDir(), "none")}, &out, &errOut); code == ExitOK {
		t.Error("--repo of a missing repository accepted")
	}
}
