package client

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/delta"
)

func deltaCLI(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Main(args, &out, &errOut); code != want {
		t.Fatalf("os-update %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String() + errOut.String()
}

// TestDeltaCommands drives generate, list, show and apply-offline, and
// has ostree apply the result.
func TestDeltaCommands(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	deltaCLI(t, 0, "repo", "init", "--repo", src, "--mode", "archive")
	for v := 1; v <= 2; v++ {
		dir := filepath.Join(tmp, "tree")
		os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
		data := bytes.Repeat([]byte("binary-ish content 0123456789 "), 20000)
		copy(data[1000:], strings.Repeat("v", v*10))
		if err := os.WriteFile(filepath.Join(dir, "usr/bin/app"), data, 0o755); err != nil {
			t.Fatal(err)
		}
		deltaCLI(t, 0, "repo", "commit", "--repo", src, "-b", "os", "-s", "v", dir)
	}
	out := deltaCLI(t, 0, "repo", "delta", "generate", "--repo", src, "--empty", "--to", "os^")
	if !strings.Contains(out, "Generated delta ") {
		t.Fatalf("generate printed %q", out)
	}
	out = deltaCLI(t, 0, "repo", "delta", "generate", "--repo", src, "--to", "os", "--max-chunk-size", "100k", "--compression", "builtin")
	if !strings.Contains(out, "1 rollsum") && !strings.Contains(out, "1 bsdiff") {
		t.Errorf("the modified file was not diffed: %s", out)
	}
	list := strings.Fields(deltaCLI(t, 0, "repo", "delta", "list", "--repo", src))
	if len(list) != 2 {
		t.Fatalf("list: %v", list)
	}
	var update string
	for _, n := range list {
		if strings.Contains(n, "-") {
			update = n
		}
	}
	show := deltaCLI(t, 0, "repo", "delta", "show", "--repo", src, "--ops", update)
	if !strings.Contains(show, "Number of parts: 1") || !strings.Contains(show, "operations: ") {
		t.Errorf("show: %s", show)
	}
	deltaCLI(t, ExitUsage, "repo", "delta", "show", "--repo", src, "nonsense")
	deltaCLI(t, ExitUsage, "repo", "delta", "generate", "--repo", src, "--empty", "--from", "os^", "--to", "os")
	deltaCLI(t, ExitUsage, "repo", "delta", "generate", "--repo", src, "--to", "os", "--max-chunk-size", "0")

	dst := filepath.Join(tmp, "dst")
	deltaCLI(t, 0, "repo", "init", "--repo", dst, "--mode", "bare")
	scratch := list[0]
	if scratch == update {
		scratch = list[1]
	}
	deltaCLI(t, 0, "repo", "delta", "apply-offline", "--repo", dst, filepath.Join(src, deltaDir(t, scratch)))
	deltaCLI(t, 0, "repo", "delta", "apply-offline", "--repo", dst, filepath.Join(src, deltaDir(t, update), "superblock"))
	deltaCLI(t, 0, "repo", "fsck", "--repo", dst)

	od := filepath.Join(tmp, "ostree")
	testutil.Run(t, ostree, "--repo="+od, "init", "--mode=bare")
	testutil.Run(t, ostree, "--repo="+od, "static-delta", "apply-offline", filepath.Join(src, deltaDir(t, scratch)))
	testutil.Run(t, ostree, "--repo="+od, "static-delta", "apply-offline", filepath.Join(src, deltaDir(t, update)))
	testutil.Run(t, ostree, "--repo="+od, "fsck")
}

// deltaDir returns a delta's directory relative to the repository.
func deltaDir(t *testing.T, name string) string {
	t.Helper()
	n, err := delta.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.Dir()
}
