package sysroot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/internal/testutil"
)

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	const hex = "0123456789abcdef"
	out := make([]byte, n)
	for i, c := range b {
		out[i] = hex[c&15]
	}
	return string(out)
}

// fill leaves about keep bytes usable (above the reserve) on the file
// system of dir, with a file the caller removes to free the space.
func fill(t *testing.T, s *Sysroot, dir string, keep uint64) string {
	t.Helper()
	sp, err := fsutil.StatSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.repo.MinFreeSpace()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := int64(sp.Free - res.Bytes - keep)
	chunk := make([]byte, 1<<20)
	for n > 0 {
		w := int64(len(chunk))
		if n < w {
			w = n
		}
		if _, err := f.Write(chunk[:w]); err != nil {
			t.Fatal(err)
		}
		n -= w
	}
	return p
}

// A deployment that does not fit is refused before anything is written,
// with the file system, the bytes needed and free and the option named;
// once space is freed it deploys.
func TestDeployRefusedOnSmallFilesystem(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "size=32m")
	dir := filepath.Join(mnt, "sysroot")
	s := newSysroot(t, dir)
	c1 := commitTree(t, s.repo, "os", treeSpec{version: "1"})
	deploy(t, s, c1.String())
	c2 := commitTree(t, s.repo, "os", treeSpec{version: "2", files: map[string]string{
		"usr/etc/big1": randomText(2 << 20), "usr/etc/big2": randomText(2 << 20)}})

	filler := fill(t, s, mnt, 2<<20)
	before := listFiles(t, dir)
	loaderBefore, _ := os.Readlink(filepath.Join(dir, "boot/loader"))
	_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: c2.String()})
	var ns *fsutil.NoSpaceError
	if !errors.As(err, &ns) {
		t.Fatalf("deploy on a full file system: got %v, want a NoSpaceError", err)
	}
	for _, m := range []string{filepath.Join(dir, "ostree/deploy"), "needed", "free", "min-free-space-percent=3"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	if ns.Need < 4<<20 {
		t.Errorf("need %d: the /etc copy alone is 4 MiB", ns.Need)
	}
	if after := listFiles(t, dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("a refused deploy wrote files:\nbefore %v\nafter %v", before, after)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "boot/loader")); l != loaderBefore {
		t.Errorf("boot/loader changed to %s", l)
	}

	// The options are honoured: a reserve larger than the file system
	// refuses even with the space freed; a small one lets it through.
	os.Remove(filler)
	s.repo.Config().Set("core", "min-free-space-size", "31MB")
	if _, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: c2.String()}); !errors.As(err, &ns) ||
		!strings.Contains(err.Error(), "min-free-space-size=31MB") {
		t.Fatalf("deploy with min-free-space-size=31MB: got %v", err)
	}
	s.repo.Config().Set("core", "min-free-space-size", "1MB")
	deploy(t, s, c2.String())
	checkConsistent(t, s)
	checkNoLeftovers(t, s)
	if s.Deployments[0].Commit != c2 {
		t.Fatalf("default is %s, want %s", s.Deployments[0].Commit, c2)
	}
}

// A hardlink deployment on a file system with too few free inodes fails
// mid-checkout: the error says the file system is full and how many inodes
// are left, nothing half-deployed remains, the boot configuration is
// untouched, and once inodes are freed the next deploy works.
func TestDeployOutOfInodes(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "size=64m,nr_inodes=2000")
	dir := filepath.Join(mnt, "sysroot")
	s := newSysroot(t, dir)
	c1 := commitTree(t, s.repo, "os", treeSpec{version: "1"})
	deploy(t, s, c1.String())
	files := map[string]string{}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("usr/share/d%03d/f", i)] = fmt.Sprintf("file %d", i)
	}
	c2 := commitTree(t, s.repo, "os", treeSpec{version: "2", files: files})

	// Use up the inodes but 60: the new deployment needs over 200
	// directories.
	fillDir := filepath.Join(mnt, "filler")
	os.Mkdir(fillDir, 0o755)
	for i := 0; ; i++ {
		sp, err := fsutil.StatSpace(mnt)
		if err != nil {
			t.Fatal(err)
		}
		if sp.FreeInodes <= 60 {
			break
		}
		if err := os.WriteFile(filepath.Join(fillDir, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := listFiles(t, dir)
	loaderBefore, _ := os.Readlink(filepath.Join(dir, "boot/loader"))
	entriesBefore := readEntries(t, dir)
	_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: c2.String()})
	if err == nil {
		t.Fatal("deploy succeeded without free inodes")
	}
	t.Logf("deploy without free inodes: %v", err)
	for _, m := range []string{"file system of " + filepath.Join(dir, "ostree/deploy") + " is full", "inodes free", "no space left on device"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	if after := listFiles(t, dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("a failed deploy left files behind:\nbefore %v\nafter %v", before, after)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "boot/loader")); l != loaderBefore {
		t.Errorf("boot/loader changed to %s", l)
	}
	if got := readEntries(t, dir); got != entriesBefore {
		t.Errorf("boot entries changed:\n%s", got)
	}
	checkConsistent(t, s)
	checkNoLeftovers(t, s)

	if err := os.RemoveAll(fillDir); err != nil {
		t.Fatal(err)
	}
	deploy(t, s, c2.String())
	checkConsistent(t, s)
	checkNoLeftovers(t, s)
	if s.Deployments[0].Commit != c2 {
		t.Fatalf("default is %s, want %s", s.Deployments[0].Commit, c2)
	}
}

// readEntries concatenates the current boot entries.
func readEntries(t *testing.T, dir string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "boot/loader/entries/*"))
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(p + "\n" + string(data))
	}
	return b.String()
}
