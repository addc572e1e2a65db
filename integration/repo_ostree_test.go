package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

const ts = "2021-06-01T12:00:00Z"

func sampleTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	testutil.MakeSampleTree(t, src)
	return src
}

// Test 1: ostree reads what os-update writes.
func TestOstreeReadsOurRepositories(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	testutil.RequireRoot(t)
	src := sampleTree(t)
	for _, mode := range []string{"archive", "bare"} {
		t.Run(mode, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			osu(t, "repo", "init", "--repo", repo, "--mode", mode)
			c := strings.TrimSpace(osu(t, "repo", "commit", "--repo", repo, "-b", "os/x86_64/stable",
				"-s", "Release 1.2", "-m", "first line\nsecond line", "--add-metadata-string", "version=1.2",
				"--add-metadata", "build.number=uint64 42", "--timestamp", ts, "--tree=dir="+src))
			testutil.Run(t, ostree, "fsck", "--repo="+repo)

			show := testutil.Run(t, ostree, "show", "--repo="+repo, "os/x86_64/stable")
			for _, want := range []string{"commit " + c, "Version: 1.2", "Release 1.2", "second line", "Date:  2021-06-01 12:00:00 +0000"} {
				if !strings.Contains(show, want) {
					t.Errorf("ostree show lacks %q:\n%s", want, show)
				}
			}
			if got := strings.TrimSpace(testutil.Run(t, ostree, "show", "--repo="+repo, "--print-metadata-key=version", c)); got != "'1.2'" {
				t.Errorf("version key %s", got)
			}

			dest := filepath.Join(t.TempDir(), "co")
			testutil.Run(t, ostree, "checkout", "--repo="+repo, c, dest)
			opts := testutil.TreeOptions{Owners: true, Hardlinks: mode == "bare"}
			testutil.CompareTrees(t, testutil.SnapshotTree(t, src, opts), testutil.SnapshotTree(t, dest, opts))

			// Listings agree line for line.
			ours := osu(t, "repo", "ls", "--repo", repo, "-R", "-C", c)
			theirs := testutil.Run(t, ostree, "ls", "--repo="+repo, "-R", "-C", c)
			if ours != theirs {
				t.Errorf("ls differs\nours:\n%s\nostree:\n%s", ours, theirs)
			}
		})
	}
}

// Test 2: os-update reads what ostree writes.
func TestWeReadOstreeRepositories(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	testutil.RequireRoot(t)
	src := sampleTree(t)
	for _, mode := range []string{"archive", "bare"} {
		t.Run(mode, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			testutil.Run(t, ostree, "init", "--repo="+repo, "--mode="+mode)
			c := strings.TrimSpace(testutil.Run(t, ostree, "commit", "--repo="+repo, "-b", "test", "-s", "by ostree",
				"--add-metadata-string=version=7", "--tree=dir="+src))
			out := osu(t, "repo", "fsck", "--repo", repo)
			if !strings.Contains(out, "no errors found") {
				t.Fatalf("fsck: %s", out)
			}
			dest := filepath.Join(t.TempDir(), "co")
			osu(t, "repo", "checkout", "--repo", repo, "test", dest)
			opts := testutil.TreeOptions{Owners: true, Hardlinks: mode == "bare"}
			testutil.CompareTrees(t, testutil.SnapshotTree(t, src, opts), testutil.SnapshotTree(t, dest, opts))

			for _, args := range [][]string{{"show", c}, {"log", "test"}, {"rev-parse", "test"}, {"refs"}, {"cat", "test", "/etc/config"},
				{"show", "--print-metadata-key=version", "test"}} {
				ours := osu(t, append([]string{"repo", args[0], "--repo", repo}, args[1:]...)...)
				theirs := testutil.Run(t, ostree, append([]string{args[0], "--repo=" + repo}, args[1:]...)...)
				if ours != theirs {
					t.Errorf("%s differs\nours:\n%s\nostree:\n%s", args[0], ours, theirs)
				}
			}
		})
	}
}

func commitChecksums(t *testing.T, ostree, repo, rev string) (commit, tree, meta string) {
	t.Helper()
	commit = strings.TrimSpace(testutil.Run(t, ostree, "rev-parse", "--repo="+repo, rev))
	fields := strings.Fields(strings.SplitN(testutil.Run(t, ostree, "ls", "--repo="+repo, "-C", "-d", rev, "/"), "\n", 2)[0])
	if len(fields) < 7 {
		t.Fatalf("unexpected ls output %q", fields)
	}
	return commit, fields[4], fields[5]
}

// Test 3: the same tree committed by both tools has the same checksums.
func TestSameTreeSameChecksums(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	testutil.RequireRoot(t)
	src := sampleTree(t)
	base := t.TempDir()
	ourRepo, theirRepo := filepath.Join(base, "ours"), filepath.Join(base, "theirs")
	osu(t, "repo", "init", "--repo", ourRepo, "--mode", "archive")
	testutil.Run(t, ostree, "init", "--repo="+theirRepo, "--mode=archive")
	for i, version := range []string{"1.0", "1.1"} {
		args := []string{"-b", "os/main", "-s", "subject " + version, "--add-metadata-string", "version=" + version,
			"--add-metadata-string", "org.example.build=" + fmt.Sprint(i), "--add-metadata", "org.example.n=uint64 42",
			"--add-metadata", "org.example.flag=true", "--timestamp", ts}
		osu(t, append([]string{"repo", "commit", "--repo", ourRepo, "--tree=dir=" + src}, args...)...)
		testutil.Run(t, ostree, append([]string{"commit", "--repo=" + theirRepo, "--tree=dir=" + src}, args...)...)
		oc, ot, om := commitChecksums(t, ostree, ourRepo, "os/main")
		tc, tt, tm := commitChecksums(t, ostree, theirRepo, "os/main")
		if ot != tt || om != tm {
			t.Fatalf("root dirtree/dirmeta differ: ours %s %s, ostree %s %s", ot, om, tt, tm)
		}
		if oc != tc {
			t.Fatalf("commit %d differs: ours %s, ostree %s", i, oc, tc)
		}
	}
}

// Two processes committing to one repository at once both succeed.
func TestConcurrentCommitProcesses(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	testutil.RequireRoot(t)
	repo := filepath.Join(t.TempDir(), "repo")
	osu(t, "repo", "init", "--repo", repo, "--mode", "archive")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		src := filepath.Join(t.TempDir(), "src")
		testutil.MakeSampleTree(t, src)
		os.WriteFile(filepath.Join(src, "unique"), []byte(fmt.Sprint(i)), 0o644)
		wg.Add(1)
		go func(i int, src string) {
			defer wg.Done()
			out, err := exec.Command(osUpdate, "repo", "commit", "--repo", repo, "-b", fmt.Sprintf("b%d", i), "--tree=dir="+src).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%v: %s", err, out)
			}
		}(i, src)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
	}
	testutil.Run(t, ostree, "fsck", "--repo="+repo)
	refs := testutil.Run(t, ostree, "refs", "--repo="+repo)
	if strings.Count(refs, "\n") != 4 {
		t.Fatalf("refs:\n%s", refs)
	}
}

// Bad input: an unknown repository mode and a corrupted object are named.
func TestCLIErrorsNameTheCulprit(t *testing.T) {
	base := t.TempDir()
	repo := filepath.Join(base, "repo")
	osu(t, "repo", "init", "--repo", repo, "--mode", "archive")
	src := filepath.Join(base, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	c := strings.TrimSpace(osu(t, "repo", "commit", "--repo", repo, "-b", "x", src))

	cfg := filepath.Join(repo, "config")
	orig, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte("[core]\nrepo_version=1\nmode=tarball\n"), 0o644)
	_, stderr, err := osuErr("repo", "fsck", "--repo", repo)
	if err == nil || !strings.Contains(stderr, `"tarball"`) {
		t.Fatalf("unknown mode: err %v, stderr %s", err, stderr)
	}
	os.WriteFile(cfg, orig, 0o644)

	var filez string
	filepath.Walk(filepath.Join(repo, "objects"), func(p string, fi os.FileInfo, err error) error {
		if strings.HasSuffix(p, ".filez") {
			filez = p
		}
		return nil
	})
	b, _ := os.ReadFile(filez)
	b[len(b)-1] ^= 0xff
	os.WriteFile(filez, b, 0o644)
	name := strings.TrimSuffix(filepath.Base(filepath.Dir(filez))+filepath.Base(filez), ".filez")
	_, stderr, err = osuErr("repo", "fsck", "--repo", repo)
	if err == nil || !strings.Contains(stderr, name) {
		t.Fatalf("corrupt object: err %v, stderr %s", err, stderr)
	}
	out := osu(t, "repo", "fsck", "--repo", repo, "--delete")
	_ = out
	if _, err := os.Stat(filez); err == nil {
		t.Fatal("fsck --delete kept the corrupt object")
	}
	if _, _, err := osuErr("repo", "checkout", "--repo", repo, c, filepath.Join(base, "co")); err == nil {
		t.Fatal("checkout of a commit with a deleted object succeeded")
	}
}
