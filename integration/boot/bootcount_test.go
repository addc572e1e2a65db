package boot

// Boot counting under qemu: a grub2 image of v1, an update whose
// initramfs makes the kernel panic, and grub coming back to v1 by itself
// once the update's tries are used up.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/compose/image"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
)

// guestPanicRef is the branch of the update that cannot boot.
const guestPanicRef = "osu/test/x86_64-panic"

// panicMarker is what the broken update's /init prints before it exits
// (and the kernel panics: init must not exit).
const panicMarker = "OSU-PANIC-INIT"

func requireGrubTools(t *testing.T) {
	for _, tool := range []string{"grub-mkimage", "cpio", "gzip"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, filepath.Join(image.GrubPCDir, "boot.img"), "grub-pc-bin")
}

// buildGrubImage writes the v1 image with grub2 as the boot loader (the
// ref must still be at v1).
func buildGrubImage(t *testing.T, g *guestOS, work, repoDir, osu string) {
	requireGrubTools(t)
	g.GrubImage = filepath.Join(work, "v1-grub.raw")
	args := []string{"compose", "image", "--repo", repoDir, "--ref", guestRef, "--output", g.GrubImage, "--bootloader", "grub2",
		"--remote", guestRemote, "--remote-url", guestRemoteURL, "--no-gpg-verify"}
	for _, k := range strings.Fields(guestKargs) {
		args = append(args, "--karg", k)
	}
	run(t, "", nil, osu, args...)
}

// buildPanicUpdate commits v1 with an initramfs whose /init prints the
// marker and exits, on its own branch: the kernel panics at every boot
// (the guest's panic=-1 reboots at once), as a broken kernel update
// would.
func buildPanicUpdate(t *testing.T, g *guestOS, work, repoDir, osu string) {
	requireGrubTools(t)
	tree := filepath.Join(work, "panic-tree")
	os.RemoveAll(tree)
	run(t, "", nil, osu, "repo", "checkout", "--repo", repoDir, g.V1, tree)
	ird := filepath.Join(work, "panic-initramfs")
	os.RemoveAll(ird)
	for _, d := range []string{"bin", "dev"} {
		os.MkdirAll(filepath.Join(ird, d), 0o755)
	}
	run(t, "", nil, "cp", filepath.Join(tree, "usr/bin/busybox"), filepath.Join(ird, "bin/busybox"))
	os.WriteFile(filepath.Join(ird, "init"), []byte("#!/bin/busybox sh\necho \""+panicMarker+": this update cannot boot\"\nexit 1\n"), 0o755)
	run(t, "", nil, "mknod", "-m", "600", filepath.Join(ird, "dev/console"), "c", "5", "1")
	img := filepath.Join(tree, "usr/lib/modules", g.KernelVer, "initramfs.img")
	os.Remove(img) // a hard link into the checkout's objects: replace, do not write through
	cmd := "find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n > " + img
	run(t, ird, nil, "sh", "-c", cmd)
	run(t, "", nil, osu, "repo", "commit", "--repo", repoDir, "-b", guestPanicRef, "-s", "kernel panics at boot",
		"--bootable", "--timestamp", "1700000200", "--add-metadata-string", "version=2-panic", tree)
	g.Panic = strings.TrimSpace(run(t, "", nil, osu, "repo", "rev-parse", "--repo", repoDir, guestPanicRef))
	run(t, "", nil, osu, "repo", "summary", "--repo", repoDir, "--update")
	os.RemoveAll(tree)
}

// testKernelPanicFallsBack: on grub2, the update gets 3 tries; its kernel
// panics each time and the machine reboots (no -no-reboot); then grub
// boots v1 by itself, with no one at the console.
func testKernelPanicFallsBack(t *testing.T, g *guestOS, work, logDir string) {
	if g.GrubImage == "" || g.Panic == "" {
		t.Fatal("the guest was built without the grub2 image or the panic update (stale OSU_BOOT_WORK?)")
	}
	disk := overlay(t, g.GrubImage, work, "grub-panic")
	// Reboots stay in the same qemu process; a kernel panic is expected.
	v := startVMWith(t, "6-grub-counting", disk, g.Updates, logDir, vmOptions{reboot: true, allowPanic: true})
	v.waitBooted()
	if d := v.booted(); d.Checksum != g.V1 {
		t.Fatalf("the grub2 image booted %s, want v1 %s", d.Checksum, g.V1)
	}
	grubenv := func() string {
		out := v.must("grep -a '^boot_' /boot/grub/grubenv || true", time.Minute)
		return strings.Join(strings.Fields(out), " ")
	}
	// The only deployment is not counted.
	if env := grubenv(); env != "boot_success=1" {
		t.Fatalf("grubenv of the image: %q", env)
	}
	out := v.must("os-update rebase "+guestRemote+":"+guestPanicRef, 10*time.Minute)
	t.Logf("rebase:\n%s", out)
	if st := v.status(); st.Deployments[0].Checksum != g.Panic || !st.Deployments[1].Booted {
		t.Fatalf("after rebase: %+v", st.Deployments)
	}
	if env := grubenv(); env != "boot_counter=3 boot_success=0" {
		t.Fatalf("grubenv after deploying the update: %q", env)
	}
	if out := v.must("os-update status", time.Minute); !strings.Contains(out, "BootTries: 3 left (grubenv)") {
		t.Fatalf("status does not show the update's tries:\n%s", out)
	}
	from := v.consoleLen()
	v.send("reboot")
	// Each try: the update's kernel starts, its init fails, the kernel
	// panics and reboots.
	for i := 1; i <= 3; i++ {
		v.expect(regexp.MustCompile(panicMarker), bootTimeout)
		v.expect(regexp.MustCompile(`Kernel panic - not syncing`), bootTimeout)
		t.Logf("try %d of the update: kernel panic", i)
	}
	v.waitBooted()
	log := v.consoleFrom(from)
	if n := strings.Count(log, panicMarker+": "); n != 3 {
		t.Fatalf("the update was tried %d times, want 3", n)
	}
	// Then exactly one more boot, which reached userspace: the console
	// names the deployment os-update's initramfs switched into.
	if n := strings.Count(log, "OSU-GUEST-READY"); n != 1 {
		t.Fatalf("%d boots reached userspace after the reboot, want 1", n)
	}
	booted := regexp.MustCompile(`os-update initramfs: booting /ostree/deploy/os/deploy/([0-9a-f]{64})\.`).FindAllStringSubmatch(log, -1)
	if len(booted) != 1 || booted[0][1] != g.V1 {
		t.Fatalf("the console shows the initramfs booting %q after the tries, want v1 %s once", booted, g.V1)
	}
	d := v.booted()
	if d.Checksum != g.V1 {
		t.Fatalf("after the tries: booted %s (version %q), want v1 %s", d.Checksum, d.Version, g.V1)
	}
	if got := strings.TrimSpace(v.must("cat /usr/share/osu-guest/release", time.Minute)); got != "release 1" {
		t.Fatalf("release %q", got)
	}
	// The health check at boot (rcS, as os-update-health-check.service)
	// found v1 healthy after the fallback: v1 is the default again, and
	// the update is recorded as having used up its tries (docs/health.md).
	st := v.status()
	if st.Deployments[0].Checksum != g.V1 || !st.Deployments[0].Booted || st.Deployments[1].Checksum != g.Panic {
		t.Fatalf("deployments after the fallback: %+v", st.Deployments)
	}
	// v1 is not on trial: the boot loader counts nothing any more.
	if bt := st.Deployments[0].BootTries; bt != nil {
		t.Fatalf("status shows boot tries for v1 after the health check: %+v", bt)
	}
	if bv := st.Deployments[1].BootVerdict; bv == nil || bv.Verdict != api.VerdictUnhealthy || bv.Action != api.ActionRolledBack ||
		!strings.Contains(bv.Reason, "used up its boot tries (grubenv)") {
		t.Fatalf("the update's verdict after the fallback: %+v", bv)
	}
	if env := grubenv(); env != "boot_success=1" {
		t.Fatalf("grubenv after the fallback and the health check: %q", env)
	}
	v.kill()
}
