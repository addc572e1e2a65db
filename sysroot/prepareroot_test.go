package sysroot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"golang.org/x/sys/unix"
)

// prepareRootChild runs in a private mount namespace (under unshare): it
// prepares the root and switches into it, running the probe.
func prepareRootChild() int {
	root := os.Getenv("OSU_PR_SYSROOT")
	// The initramfs has the physical root mounted; here it is a bind.
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		fmt.Println("bind:", err)
		return 1
	}
	if _, err := PrepareRoot(PrepareRootOptions{Sysroot: root, Cmdline: os.Getenv("OSU_PR_CMDLINE"), RunDir: os.Getenv("OSU_PR_RUN")}); err != nil {
		fmt.Println(err)
		return 1
	}
	os.Setenv("OSU_PROBE", "1")
	os.Unsetenv("OSU_PR_CHILD")
	if err := SwitchRoot(root, []string{"/usr/bin/probe", "-test.run=^$"}); err != nil {
		fmt.Println(err)
	}
	return 1
}

// probe runs as the new root's program and reports what it sees.
func probe() int {
	report := func(name string, ok bool, detail any) { fmt.Printf("%s=%v %v\n", name, ok, detail) }
	var st unix.Statfs_t
	err := unix.Statfs("/usr", &st)
	report("usr-readonly", err == nil && st.Flags&unix.ST_RDONLY != 0, err)
	err = os.WriteFile("/usr/probe", nil, 0o644)
	report("usr-write-refused", errors.Is(err, unix.EROFS), err)
	err = os.WriteFile("/etc/probe-write", []byte("from the new root\n"), 0o644)
	report("etc-writable", err == nil, err)
	_, err = os.Stat("/var/marker")
	report("var-shared", err == nil, err)
	_, err = os.Stat("/sysroot/ostree/repo/config")
	report("sysroot", err == nil, err)
	b, err := os.ReadFile("/usr/lib/os-release")
	report("root-is-deployment", err == nil && strings.Contains(string(b), "Test OS"), err)
	return 0
}

func TestPrepareRoot(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	dir := t.TempDir()
	s := newSysroot(t, dir)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	spec := treeSpec{version: "1", files: map[string]string{"usr/bin/probe": string(self)}, modes: map[string]os.FileMode{"usr/bin/probe": 0o755}}
	commitTree(t, s.Repo(), "os", spec)
	deploy(t, s, "os", func(o *DeployOptions) { o.Kargs = []string{"rw"} })
	os.WriteFile(filepath.Join(dir, "ostree/deploy/testos/var/marker"), nil, 0o644)
	entries, err := s.loader().ReadEntries(s.BootVersion)
	if err != nil {
		t.Fatal(err)
	}
	cmdline := "BOOT_IMAGE=/vmlinuz " + entries[0].Get("options")
	run := t.TempDir()
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OSU_PR_CHILD=1", "OSU_PR_SYSROOT="+dir, "OSU_PR_CMDLINE="+cmdline, "OSU_PR_RUN="+run)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("prepare-root child: %v\n%s", err, out)
	}
	t.Logf("probe:\n%s", out)
	for _, check := range []string{"usr-readonly", "usr-write-refused", "etc-writable", "var-shared", "sysroot", "root-is-deployment"} {
		if !strings.Contains(string(out), check+"=true") {
			t.Errorf("%s failed:\n%s", check, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, s.Deployments[0].RelDir(), "etc/probe-write")); err != nil || len(b) == 0 {
		t.Errorf("/etc written in the new root is not the deployment's /etc: %v", err)
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		t.Errorf("ostree-booted stamp: %v", err)
	}
	// The host's mounts are untouched.
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(dir, s.Deployments[0].RelDir(), "usr"), &st); err != nil || st.Flags&unix.ST_RDONLY != 0 {
		t.Errorf("host sees a read-only /usr: %v", err)
	}

	// Bad command lines are refused before any mount.
	for _, bad := range []string{"quiet", "ostree=/ostree/boot.1/testos/nothere/0"} {
		if _, err := PrepareRoot(PrepareRootOptions{Sysroot: dir, Cmdline: bad}); err == nil {
			t.Errorf("cmdline %q accepted", bad)
		}
	}
}
