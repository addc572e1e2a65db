package client

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/daemon"
	"github.com/osupdate/os-update/sysroot"
)

// TestStatusShowsBootTries: the daemon's status carries the boot
// loader's counting of a new default (grub2 here) and `status` prints it,
// tries left and used up.
func TestStatusShowsBootTries(t *testing.T) {
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := filepath.Join(t.TempDir(), "sysroot")
	runCLI(t, "admin", "init-fs", dir)
	runCLI(t, "admin", "os-init", "os", "--sysroot", dir)
	os.MkdirAll(filepath.Join(dir, "boot/grub"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot/grub/grub.cfg"), []byte("# installer's\n"), 0o644)
	b := daemon.NewHostBackend(daemon.HostConfig{Sysroot: dir, SysrootOptions: sysroot.Options{NoSync: true, MutableDeployments: true}})
	show := func() string {
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		printStatus(&env{stdout: &out, stderr: &out}, &st, false)
		return out.String()
	}
	for i, v := range []string{"1", "2"} {
		commitOS(t, dir+"/ostree/repo", v)
		runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "os", "cli/os")
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && st.Deployments[0].BootTries != nil {
			t.Fatalf("the only deployment is counted: %+v", st.Deployments[0].BootTries)
		}
	}
	st, _ := b.Status(context.Background())
	if bt := st.Deployments[0].BootTries; bt == nil || bt.Method != "grubenv" || bt.Left != 3 || st.Deployments[1].BootTries != nil {
		t.Fatalf("boot tries: %+v %+v", st.Deployments[0].BootTries, st.Deployments[1].BootTries)
	}
	if out := show(); !strings.Contains(out, "BootTries: 3 left (grubenv)") {
		t.Fatalf("status:\n%s", out)
	}
	// grub used them up.
	envPath := filepath.Join(dir, "boot/grub/grubenv")
	env, err := bootloader.ReadGrubEnv(envPath)
	if err != nil {
		t.Fatal(err)
	}
	env.Set("boot_counter", "0")
	data, _ := env.Bytes()
	os.WriteFile(envPath, data, 0o644)
	if out := show(); !strings.Contains(out, "BootTries: used up (grubenv): the boot loader boots the next deployment") {
		t.Fatalf("status:\n%s", out)
	}
}
