package sysroot

import (
	"context"
	"debug/elf"
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
	// The running system finds itself among the deployments (booted into
	// the rollback, index 1), keeps itself as the rollback of a new
	// deployment, and rollback brings it back to the front.
	s, err := Open("/sysroot", Options{NoSync: true, MutableDeployments: true})
	if err != nil {
		report("booted", false, err)
		return 0
	}
	report("booted", s.Booted != nil && s.Booted == s.Deployments[1] && s.MergeDeployment("testos") == s.Booted, s.Booted)
	if s.Booted == nil {
		return 0
	}
	booted := s.Booted.Name()
	fmt.Printf("booted-name %s\n", booted)
	ctx := context.Background()
	_, err = s.Deploy(ctx, DeployOptions{OS: "testos", Rev: "os3"})
	report("deploy-keeps-booted", err == nil && len(s.Deployments) == 2 && s.Deployments[1].Name() == booted && s.Booted.Index == 1, err)
	_, err = s.Rollback(ctx)
	report("rollback-to-booted", err == nil && s.Deployments[0].Name() == booted, err)
	return 0
}

// staticSelf returns this test binary, rebuilt without cgo when it is
// dynamically linked: it runs as the new root's program, and the test
// tree has no dynamic loader or libraries.
func staticSelf(t *testing.T) []byte {
	t.Helper()
	f, err := elf.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	f.Close()
	path := os.Args[0]
	if dynamic {
		goTool := testutil.RequireTool(t, "go")
		path = filepath.Join(t.TempDir(), "probe")
		cmd := exec.Command(goTool, "test", "-c", "-o", path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build a static probe: %v\n%s", err, out)
		}
	}
	self, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func TestPrepareRoot(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	dir := t.TempDir()
	s := newSysroot(t, dir)
	self := staticSelf(t)
	spec := treeSpec{version: "1", files: map[string]string{"usr/bin/probe": string(self)}, modes: map[string]os.FileMode{"usr/bin/probe": 0o755}}
	commitTree(t, s.Repo(), "os", spec)
	deploy(t, s, "os", func(o *DeployOptions) { o.Kargs = []string{"rw"} })
	spec.version = "2"
	commitTree(t, s.Repo(), "os", spec)
	deploy(t, s, "os")
	spec.version = "3"
	commitTree(t, s.Repo(), "os3", spec)
	bootInto := s.Deployments[1] // boot the rollback
	os.WriteFile(filepath.Join(dir, "ostree/deploy/testos/var/marker"), nil, 0o644)
	entries, err := s.loader().ReadEntries(s.BootVersion)
	if err != nil {
		t.Fatal(err)
	}
	cmdline := "BOOT_IMAGE=/vmlinuz " + entries[1].Get("options")
	run := t.TempDir()
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OSU_PR_CHILD=1", "OSU_PR_SYSROOT="+dir, "OSU_PR_CMDLINE="+cmdline, "OSU_PR_RUN="+run)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("prepare-root child: %v\n%s", err, out)
	}
	t.Logf("probe:\n%s", out)
	for _, check := range []string{"usr-readonly", "usr-write-refused", "etc-writable", "var-shared", "sysroot", "root-is-deployment", "booted", "deploy-keeps-booted", "rollback-to-booted"} {
		if !strings.Contains(string(out), check+"=true") {
			t.Errorf("%s failed:\n%s", check, out)
		}
	}
	if !strings.Contains(string(out), "booted-name "+bootInto.Name()) {
		t.Errorf("booted deployment not identified:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, bootInto.RelDir(), "etc/probe-write")); err != nil || len(b) == 0 {
		t.Errorf("/etc written in the new root is not the deployment's /etc: %v", err)
	}
	after := openSysroot(t, dir)
	if len(after.Deployments) != 2 || after.Deployments[0].Name() != bootInto.Name() || after.Deployments[1].Version != "3" {
		t.Errorf("after deploy + rollback from the booted system: %v", names(after))
	}
	checkConsistent(t, after)
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		t.Errorf("ostree-booted stamp: %v", err)
	}
	// The host's mounts are untouched.
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(dir, bootInto.RelDir(), "usr"), &st); err != nil || st.Flags&unix.ST_RDONLY != 0 {
		t.Errorf("host sees a read-only /usr: %v", err)
	}

	// Bad command lines are refused before any mount.
	for _, bad := range []string{"quiet", "ostree=/ostree/boot.1/testos/nothere/0"} {
		if _, err := PrepareRoot(PrepareRootOptions{Sysroot: dir, Cmdline: bad}); err == nil {
			t.Errorf("cmdline %q accepted", bad)
		}
	}
}
