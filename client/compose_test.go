package client

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

// TestComposeCommitCLI commits a directory twice through the command
// line with signing on: the second commit gets a static delta from the
// first, and the summary is regenerated and signed; ostree reads it all.
func TestComposeCommitCLI(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ostree")
	key := gpgtest.NewKey(t, "Compose Signer", "never")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	repoDir := filepath.Join(dir, "repo")
	for p, body := range map[string]string{"etc/os-release": "ID=x\n", "usr/bin/app": "v1\n", "var/lib/app/db": "d"} {
		os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755)
		os.WriteFile(filepath.Join(rootfs, p), []byte(body), 0o644)
	}
	mustSync(t, "repo", "init", "--repo", repoDir, "--mode=archive")
	first := strings.TrimSpace(lastLine(mustSync(t, "compose", "commit", rootfs, "--repo", repoDir, "--branch", "os/x86_64/main",
		"--version", "1", "--gpg-key", key.SecretFile, "--source-date-epoch", "1700000000")))
	os.WriteFile(filepath.Join(rootfs, "usr/bin/app"), []byte("v2\n"), 0o644)
	out := mustSync(t, "compose", "commit", rootfs, "--repo", repoDir, "--branch", "os/x86_64/main",
		"--version", "2", "--gpg-key", key.SecretFile)
	second := strings.TrimSpace(lastLine(out))
	if !strings.Contains(out, "Generated static delta "+first+"-"+second) || !strings.Contains(out, "Updated summary (signed)") {
		t.Errorf("output:\n%s", out)
	}
	testutil.Run(t, "ostree", "fsck", "--repo", repoDir)
	if p := strings.TrimSpace(testutil.Run(t, "ostree", "rev-parse", "--repo", repoDir, "os/x86_64/main^")); p != first {
		t.Errorf("parent %s, want %s", p, first)
	}
	if d := testutil.Run(t, "ostree", "static-delta", "list", "--repo", repoDir); !strings.Contains(d, first+"-"+second) {
		t.Errorf("deltas: %s", d)
	}
	if s := testutil.Run(t, "ostree", "summary", "--view", "--repo", repoDir); !strings.Contains(s, "os/x86_64/main") || !strings.Contains(s, second) {
		t.Errorf("summary: %s", s)
	}
	if _, err := os.Stat(filepath.Join(repoDir, "summary.sig")); err != nil {
		t.Error("summary not signed")
	}
	// ostree reads binary keyrings, not GnuPG 2's keybox.
	kh := filepath.Join(dir, "keyring")
	os.MkdirAll(kh, 0o700)
	key.Run(t, "--dearmor", "--output", filepath.Join(kh, "pubring.gpg"), key.PublicFile)
	show := testutil.Run(t, "ostree", "show", "--repo", repoDir, "--gpg-homedir", kh, "os/x86_64/main")
	if !strings.Contains(show, "Good signature") {
		t.Errorf("commit signature not verified by ostree:\n%s", show)
	}

	// Usage errors exit 2; a bad treefile fails cleanly.
	if code := Main([]string{"compose", "commit", rootfs, "--repo", repoDir}, io.Discard, io.Discard); code != ExitUsage {
		t.Errorf("missing --branch: exit %d", code)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("ref: a\npackages: [x]\nnope: 1\n"), 0o644)
	out, err := runSync(t, t.Context(), "compose", "tree", bad, "--repo", repoDir, "--dry-run")
	if err == nil || !strings.Contains(out+err.Error(), `bad.yaml:3: unknown key "nope"`) {
		t.Errorf("bad treefile: %v %s", err, out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestComposeImageCLIErrors: the command line refuses bad input with a
// message naming it and leaves no file at the output path.
func TestComposeImageCLIErrors(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	out := filepath.Join(dir, "disk.raw")
	mustSync(t, "repo", "init", "--repo", repoDir, "--mode=archive")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--size", "lots"}, ExitUsage, `bad size "lots"`},
		{nil, ExitFailure, "nothing/os"},
		{[]string{"--bootloader", "lilo"}, ExitFailure, `unknown bootloader "lilo"`},
		{[]string{"--karg", "a b"}, ExitFailure, `kernel argument "a b" contains whitespace`},
	} {
		var stderr strings.Builder
		args := append([]string{"compose", "image", "--repo", repoDir, "--ref", "nothing/os", "--output", out}, c.args...)
		if code := Main(args, io.Discard, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v left an image", c.args)
		}
	}
	if code := Main([]string{"compose", "image", "--repo", repoDir}, io.Discard, io.Discard); code != ExitUsage {
		t.Errorf("missing --ref/--output: exit %d", code)
	}
}
