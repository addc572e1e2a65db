package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/serve/servetest"
)

// Issue 15: `repo pull` draws a bar on a terminal (bold stage names
// unless NO_COLOR is set) and prints plain lines into a pipe: no
// carriage returns, no ANSI codes, not one line per object.
func TestRepoPullProgressTerminalAndPipe(t *testing.T) {
	served := servetest.Init(t)
	tree := filepath.Join(t.TempDir(), "tree")
	testutil.MakeSampleTree(t, tree)
	servetest.Commit(t, served, tree, "os/main", "sample", nil, nil)
	srv := servetest.Serve(t, served.Path())

	pull := func(env []string, term bool) string {
		t.Helper()
		dir := t.TempDir()
		local := filepath.Join(dir, "repo")
		osu(t, "repo", "init", "--repo", local, "--mode", "archive")
		osu(t, "repo", "remote", "add", "--repo", local, "--no-gpg-verify", "origin", srv.URL)
		cmd := exec.Command(osUpdate, "repo", "pull", "--repo", local, "origin", "os/main")
		cmd.Env = append(os.Environ(), env...)
		if !term {
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pull: %v\n%s", err, out)
			}
			return string(out)
		}
		ptmx, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		out, _ := io.ReadAll(ptmx) // EIO once the command exited
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pull: %v\n%q", err, out)
		}
		return string(out)
	}

	piped := pull(nil, false)
	t.Logf("pipe:\n%s", piped)
	if strings.ContainsAny(piped, "\r\x1b") {
		t.Fatalf("terminal codes in a pipe: %q", piped)
	}
	if !strings.Contains(piped, "summary...") || !strings.Contains(piped, "done: ") || strings.Contains(piped, "done...") || strings.Count(piped, "\n") > 12 {
		t.Fatalf("pipe output: want stage lines and the final state, a few lines:\n%s", piped)
	}

	bar := pull([]string{"TERM=xterm", "NO_COLOR="}, true)
	t.Logf("terminal: %q", bar)
	if !strings.Contains(bar, "\r\x1b[1msummary") || !strings.Contains(bar, "\x1b[K") || !strings.Contains(bar, "objects") {
		t.Fatalf("no bar with bold stage names on a terminal: %q", bar)
	}
	plain := pull([]string{"TERM=xterm", "NO_COLOR=1"}, true)
	if strings.Contains(plain, "\x1b[1m") || !strings.Contains(plain, "\rsummary") {
		t.Fatalf("NO_COLOR: want a bar without styling: %q", plain)
	}
}
