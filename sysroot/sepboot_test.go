package sysroot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"golang.org/x/sys/unix"
)

// sepBootChild runs in a private mount namespace with a tmpfs on
// SYSROOT/boot (a separate /boot partition): kernels cannot be hardlinked
// there and must be copied.
func sepBootChild() int {
	dir := os.Getenv("OSU_SEPBOOT_SYSROOT")
	if err := unix.Mount("tmpfs", filepath.Join(dir, "boot"), "tmpfs", 0, "mode=0755"); err != nil {
		fmt.Println("mount:", err)
		return 1
	}
	s, err := Open(dir, Options{MutableDeployments: true})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := s.Deploy(ctx, DeployOptions{OS: "testos", Rev: fmt.Sprintf("v%d", i+1)}); err != nil {
			fmt.Println("deploy:", err)
			return 1
		}
	}
	for _, d := range s.Deployments {
		if err := s.VerifyDeployment(ctx, d); err != nil {
			fmt.Println(err)
			return 1
		}
		k := filepath.Join(dir, "boot", bootDirRel(d.OS, d.BootCsum), "vmlinuz-6.1.0-test")
		var st syscall.Stat_t
		if err := syscall.Stat(k, &st); err != nil || st.Nlink != 1 {
			fmt.Println("kernel not copied:", err, st.Nlink)
			return 1
		}
		b, _ := os.ReadFile(k)
		fmt.Printf("kernel %s\n", b)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "boot/loader/entries"))
	fmt.Printf("entries %d deployments %d\n", len(entries), len(s.Deployments))
	return 0
}

func TestSeparateBootPartition(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	dir := t.TempDir()
	s := newSysroot(t, dir)
	commitTree(t, s.Repo(), "v1", treeSpec{version: "1"})
	commitTree(t, s.Repo(), "v2", treeSpec{version: "2"})
	s.Close()
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OSU_SEPBOOT_CHILD=1", "OSU_SEPBOOT_SYSROOT="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "kernel KERNEL 6.1.0-test") || !strings.Contains(string(out), "entries 2 deployments 2") {
		t.Fatalf("child output:\n%s", out)
	}
	// The tmpfs was private to the child: the host's boot dir is empty.
	if des, _ := os.ReadDir(filepath.Join(dir, "boot")); len(des) != 0 {
		t.Fatalf("boot written outside the namespace: %v", des)
	}
}
