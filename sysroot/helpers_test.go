package sysroot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// treeSpec describes a test OS tree.
type treeSpec struct {
	version string
	kernels []string          // KVER directories with a vmlinuz (default one)
	files   map[string]string // path -> content ("->target" makes a symlink)
	modes   map[string]os.FileMode
	noEtc   bool
}

// writeTree creates a small OS tree: a fake kernel and initramfs, os-release
// and usr/etc defaults.
func writeTree(t testing.TB, dir string, spec treeSpec) {
	t.Helper()
	kernels := spec.kernels
	if kernels == nil {
		kernels = []string{"6.1.0-test"}
	}
	files := map[string]string{
		"usr/lib/os-release": "NAME=\"Test OS\"\nID=testos\nPRETTY_NAME=\"Test OS\"\n",
		"usr/bin/tool":       "tool " + spec.version + "\n",
		"var/lib/fromcommit": "ignored: /var is the stateroot's\n",
	}
	for _, k := range kernels {
		files["usr/lib/modules/"+k+"/vmlinuz"] = "KERNEL " + k
		files["usr/lib/modules/"+k+"/initramfs.img"] = "INITRD " + k
	}
	if !spec.noEtc {
		files["usr/etc/os-release"] = "ID=testos\n"
	}
	for p, c := range spec.files {
		files[p] = c
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, m := range spec.modes {
		if err := os.Chmod(filepath.Join(dir, p), m); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"sysroot", "var", "proc", "dev", "sys", "run", "tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
}

// commitTree writes a tree and commits it on branch.
func commitTree(t testing.TB, r *repo.Repo, branch string, spec treeSpec) object.Checksum {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, spec)
	var md object.Metadata
	if spec.version != "" {
		md.Set("version", gvariant.NewVariant("s", spec.version))
	}
	c, err := r.CommitDir(context.Background(), dir, repo.CommitOptions{Branch: branch, Subject: spec.version, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newSysroot creates and opens an initialized sysroot with stateroot testos.
func newSysroot(t testing.TB, dir string) *Sysroot {
	t.Helper()
	if err := InitFS(dir); err != nil {
		t.Fatal(err)
	}
	s := openSysroot(t, dir)
	if err := s.InitOS("testos"); err != nil {
		t.Fatal(err)
	}
	return s
}

func openSysroot(t testing.TB, dir string) *Sysroot {
	t.Helper()
	s, err := Open(dir, Options{NoSync: true, MutableDeployments: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func deploy(t testing.TB, s *Sysroot, rev string, mod ...func(*DeployOptions)) *DeployResult {
	t.Helper()
	opts := DeployOptions{OS: "testos", Rev: rev}
	for _, m := range mod {
		m(&opts)
	}
	res, err := s.Deploy(context.Background(), opts)
	if err != nil {
		t.Fatalf("deploy %s: %v", rev, err)
	}
	return res
}

// listFiles returns every path under dir (for "nothing was written").
func listFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			if !strings.HasPrefix(rel, "ostree/repo/tmp") && rel != "ostree/lock" && !strings.HasPrefix(rel, "ostree/repo/.lock") {
				out = append(out, rel)
			}
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// clearImmutable lets t.TempDir remove deployments made immutable.
func clearImmutable(t testing.TB, sysroot string) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(sysroot, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
				exec.Command("chattr", "-i", d).Run()
			}
		}
	})
}

// checkConsistent asserts the invariants that must hold at any time: the
// boot configuration references complete deployments that verify against
// their commits, whose objects are all in the repository.
func checkConsistent(t testing.TB, s *Sysroot) {
	t.Helper()
	if err := s.Load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, d := range s.Deployments {
		if err := s.VerifyDeployment(context.Background(), d); err != nil {
			t.Fatalf("deployment %d: %v", d.Index, err)
		}
		if err := s.repo.TraverseCommit(d.Commit, 0, repo.Reachable{}); err != nil {
			t.Fatalf("deployment %d: commit incomplete: %v", d.Index, err)
		}
		if _, err := os.Stat(s.abs(filepath.Join("boot", bootDirRel(d.OS, d.BootCsum)))); err != nil {
			t.Fatalf("deployment %d: kernel dir: %v", d.Index, err)
		}
	}
}

// checkNoLeftovers asserts that only referenced state remains.
func checkNoLeftovers(t testing.TB, s *Sysroot) {
	t.Helper()
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	wantBoot := map[string]bool{}
	list := s.Deployments
	if s.Staged != nil {
		list = append(list, s.Staged)
	}
	for _, d := range list {
		want[filepath.Base(d.RelDir())] = true
		want[filepath.Base(d.RelDir())+".origin"] = true
	}
	for _, d := range s.Deployments {
		wantBoot[d.OS+"-"+d.BootCsum] = true
	}
	des, _ := os.ReadDir(s.abs("ostree/deploy/testos/deploy"))
	for _, de := range des {
		if !want[de.Name()] {
			t.Errorf("leftover deployment entry %s", de.Name())
		}
	}
	des, _ = os.ReadDir(s.abs("boot/ostree"))
	for _, de := range des {
		if !wantBoot[de.Name()] {
			t.Errorf("leftover kernel dir %s", de.Name())
		}
	}
	for _, p := range []string{"boot/loader.tmp", "boot/loader." + string(rune('0'+1-s.BootVersion)),
		"ostree/boot." + string(rune('0'+1-s.BootVersion))} {
		if _, err := os.Lstat(s.abs(p)); err == nil {
			t.Errorf("leftover %s", p)
		}
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func statIno(t testing.TB, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// fileSum finds the content checksum of a path in a commit.
func fileSum(t testing.TB, s *Sysroot, c object.Checksum, path string) object.Checksum {
	t.Helper()
	v, err := s.Repo().ViewCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := v.Lookup(path)
	if err != nil || e.IsDir {
		t.Fatalf("%s not a file in commit: %v", path, err)
	}
	return e.File
}
