package boot

// The guest OS of the boot tests, built the way a distribution would be:
// RPMs made with rpmbuild around Debian's packages (the cloud kernel,
// busybox-static, dbus) and os-update's own binaries, composed with
// `os-update compose tree` into an archive repository (v1, then v2 with a
// changed file and a static delta), a disk image of v1 written by
// `os-update compose image`, and a second disk holding the published
// repository.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/compose/image"
	"github.com/osupdate/os-update/internal/testutil"
)

// guestRef is the branch the guest follows; guestRemote names the file://
// remote on the second disk (mounted at /run/osu-updates by rcS).
const (
	guestRef       = "osu/test/x86_64"
	guestBadRef    = "osu/test/bad/x86_64"
	guestRemote    = "updates"
	guestRemoteURL = "file:///run/osu-updates"
	guestKargs     = "console=ttyS0 loglevel=4 panic=-1 no_timer_check"
)

// guestModules are the kernel modules the guest's kernel package keeps
// (the rest of Debian's 100 MB of modules would only slow the test).
var guestModules = []string{"kernel/drivers/virtio", "kernel/drivers/block/virtio_blk.ko", "modules.builtin", "modules.builtin.modinfo", "modules.order"}

// guestOS is what the boot tests run.
type guestOS struct {
	Image     string // raw disk image of v1
	Updates   string // raw ext4 disk with the published repository
	V1, V2    string // commits
	V1Version string
	V2Version string
	// Bad is v1 plus a health check that fails, on its own branch
	// (guestBadRef): the update the health-check test rolls back.
	Bad        string
	BadVersion string
	KernelVer  string
	KernelPath string // vmlinuz, for reference
	GrubImage  string // raw disk image of v1 booting with grub2
	Panic      string // commit on guestPanicRef: v1 with an initramfs that makes the kernel panic
}

// cacheDir holds downloads and RPMs that do not depend on this checkout
// (the kernel), outside the repository.
func cacheDir(t *testing.T) string {
	d := os.Getenv("OSU_TEST_CACHE")
	if d == "" {
		d = "/var/cache/os-update-test"
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// debianKernel returns the extracted cloud kernel package (downloaded
// once into the cache with apt-get).
func debianKernel(t *testing.T) (root, kver string) {
	cache := cacheDir(t)
	debs, _ := filepath.Glob(filepath.Join(cache, "linux-image-*-cloud-amd64_*.deb"))
	sort.Strings(debs)
	if len(debs) == 0 {
		testutil.RequireTool(t, "apt-get")
		run(t, cache, nil, "apt-get", "download", "-q", "linux-image-cloud-amd64")
		metas, _ := filepath.Glob(filepath.Join(cache, "linux-image-cloud-amd64_*.deb"))
		if len(metas) == 0 {
			t.Fatal("apt-get download linux-image-cloud-amd64 left no package")
		}
		dep := strings.TrimSpace(run(t, cache, nil, "dpkg-deb", "-f", metas[0], "Depends"))
		pkg := strings.Fields(strings.Split(dep, ",")[0])[0]
		run(t, cache, nil, "apt-get", "download", "-q", pkg)
		debs, _ = filepath.Glob(filepath.Join(cache, "linux-image-*-cloud-amd64_*.deb"))
		if len(debs) == 0 {
			t.Fatalf("apt-get download %s left no package", pkg)
		}
	}
	deb := debs[len(debs)-1]
	root = strings.TrimSuffix(deb, ".deb") + ".extracted"
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		os.RemoveAll(root)
		run(t, cache, nil, "dpkg-deb", "-x", deb, root)
		os.WriteFile(filepath.Join(root, ".complete"), nil, 0o644)
	}
	vms, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	if len(vms) != 1 {
		t.Fatalf("%s: want one kernel, found %v", deb, vms)
	}
	return root, strings.TrimPrefix(filepath.Base(vms[0]), "vmlinuz-")
}

// rpmPackage is one RPM to build: files copied from the host (or written)
// into a root that rpmbuild packs as is.
type rpmPackage struct {
	name, version string
	root          string // staging root
}

func newRPM(t *testing.T, work, name, version string) *rpmPackage {
	root := filepath.Join(work, "stage", name+"-"+version)
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &rpmPackage{name: name, version: version, root: root}
}

func (p *rpmPackage) copy(t *testing.T, src, dst string) {
	t.Helper()
	d := filepath.Join(p.root, dst)
	os.MkdirAll(filepath.Dir(d), 0o755)
	run(t, "", nil, "cp", "-a", "--dereference", src, d)
}

func (p *rpmPackage) write(t *testing.T, dst string, data []byte, mode os.FileMode) {
	t.Helper()
	d := filepath.Join(p.root, dst)
	os.MkdirAll(filepath.Dir(d), 0o755)
	if err := os.WriteFile(d, data, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, mode)
}

func (p *rpmPackage) symlink(t *testing.T, target, dst string) {
	t.Helper()
	d := filepath.Join(p.root, dst)
	os.MkdirAll(filepath.Dir(d), 0o755)
	if err := os.Symlink(target, d); err != nil {
		t.Fatal(err)
	}
}

// build runs rpmbuild over the staging root and returns the RPM path.
// Owned paths are the staging root's top-level entries; rpm's automatic
// dependencies, stripping and debuginfo are off (the files are Debian's).
func (p *rpmPackage) build(t *testing.T, work, outDir string) string {
	t.Helper()
	ents, err := os.ReadDir(p.root)
	if err != nil {
		t.Fatal(err)
	}
	var files strings.Builder
	for _, e := range ents {
		files.WriteString("/" + e.Name() + "\n")
	}
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: 1
Summary: os-update boot test guest package %s
License: GPL-2.0-or-later
BuildArch: x86_64
AutoReqProv: no
%%define debug_package %%{nil}
%%define __os_install_post %%{nil}
%%define _build_id_links none
%%define _binary_payload w1.gzdio

%%description
Part of the os-update boot test guest.

%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/

%%files
%s`, p.name, p.version, p.name, p.root, files.String())
	top := filepath.Join(work, "rpmbuild")
	specPath := filepath.Join(work, p.name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, work, nil, "rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, specPath)
	rpm := filepath.Join(top, "RPMS/x86_64", fmt.Sprintf("%s-%s-1.x86_64.rpm", p.name, p.version))
	dst := filepath.Join(outDir, filepath.Base(rpm))
	if err := os.Rename(rpm, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// kernelRPM packs the Debian cloud kernel (vmlinuz and the virtio modules)
// once per kernel version into the cache.
func kernelRPM(t *testing.T, work, outDir string) string {
	kroot, kver := debianKernel(t)
	ver := strings.ReplaceAll(strings.SplitN(kver, "-", 2)[0], "-", ".") + "." + strings.Split(kver, "-")[1]
	cached := filepath.Join(cacheDir(t), "rpms", fmt.Sprintf("kernel-%s-1.x86_64.rpm", ver))
	if _, err := os.Stat(cached); err != nil {
		os.MkdirAll(filepath.Dir(cached), 0o755)
		p := newRPM(t, work, "kernel", ver)
		p.copy(t, filepath.Join(kroot, "boot/vmlinuz-"+kver), "usr/lib/modules/"+kver+"/vmlinuz")
		modSrc := filepath.Join(kroot, "lib/modules", kver)
		if _, err := os.Stat(modSrc); err != nil {
			modSrc = filepath.Join(kroot, "usr/lib/modules", kver)
		}
		for _, m := range guestModules {
			p.copy(t, filepath.Join(modSrc, m), filepath.Join("usr/lib/modules", kver, m))
		}
		built := p.build(t, work, filepath.Dir(cached))
		if built != cached {
			os.Rename(built, cached)
		}
	}
	dst := filepath.Join(outDir, filepath.Base(cached))
	run(t, "", nil, "cp", cached, dst)
	return dst
}

// libClosure lists the shared libraries (and the loader) a dynamically
// linked program needs, as ldd resolves them on this Debian host.
func libClosure(t *testing.T, bins ...string) []string {
	seen := map[string]bool{}
	for _, b := range bins {
		for _, line := range strings.Split(run(t, "", nil, "ldd", b), "\n") {
			f := strings.Fields(line)
			for _, w := range f {
				if strings.HasPrefix(w, "/") {
					seen[w] = true
				}
			}
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// usrPath maps a host library path into the guest's merged /usr.
func usrPath(p string) string {
	if strings.HasPrefix(p, "/usr/") {
		return p
	}
	return "/usr" + p
}

// buildGuest makes the whole guest: RPMs, composes v1 and v2, the image
// of v1 and the updates disk.
func buildGuest(t *testing.T, work string) *guestOS {
	for _, tool := range []string{"rpmbuild", "createrepo_c", "dpkg-deb", "ldd", "mkfs.ext4", "losetup", "extlinux", "busybox", "dbus-daemon", "dbus-send", "bwrap", "go"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, image.SyslinuxMBR, "syslinux-common")
	g := &guestOS{}
	t0 := time.Now()
	step := func(what string) {
		t.Logf("guest: %s (%s)", what, time.Since(t0).Round(100*time.Millisecond))
		t0 = time.Now()
	}
	rpms := filepath.Join(work, "rpms")
	os.MkdirAll(rpms, 0o755)
	_, g.KernelVer = debianKernel(t)
	kernelRPM(t, work, rpms)
	step("kernel RPM")

	// Static builds of os-update and os-updated: the guest has no Go
	// runtime dependencies, and os-update is also the initramfs' /init.
	bin := filepath.Join(work, "bin")
	for _, b := range []string{"os-update", "os-updated"} {
		run(t, "", []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", filepath.Join(bin, b), "github.com/osupdate/os-update/cmd/"+b)
	}
	step("static binaries")
	osu := newRPM(t, work, "os-update", "1.0")
	osu.copy(t, filepath.Join(bin, "os-update"), "usr/bin/os-update")
	osu.copy(t, filepath.Join(bin, "os-updated"), "usr/libexec/os-updated")
	osu.copy(t, "../../dist/dbus/org.osupdate.OSUpdate1.conf", "usr/share/dbus-1/system.d/org.osupdate.OSUpdate1.conf")
	for _, u := range []string{"os-updated.service", "os-update-finalize-staged.service", "os-update-finalize-staged.path", "os-update-health-check.service"} {
		osu.copy(t, "../../dist/systemd/"+u, "usr/lib/systemd/system/"+u)
	}
	osu.build(t, work, rpms)
	step("os-update RPM")

	bb := newRPM(t, work, "busybox", "1.35.0")
	busybox, _ := exec.LookPath("busybox")
	bb.copy(t, busybox, "usr/bin/busybox")
	for _, applet := range strings.Fields(run(t, "", nil, busybox, "--list-full")) {
		dst := "/" + applet
		if !strings.HasPrefix(dst, "/usr/") {
			dst = "/usr" + dst
		}
		if dst == "/usr/bin/busybox" {
			continue
		}
		rel, _ := filepath.Rel(filepath.Dir(dst), "/usr/bin/busybox")
		if _, err := os.Lstat(filepath.Join(bb.root, dst)); err == nil {
			continue
		}
		bb.symlink(t, rel, dst)
	}
	bb.build(t, work, rpms)

	dbus := newRPM(t, work, "dbus", "1.14")
	for _, b := range []string{"dbus-daemon", "dbus-send"} {
		p, _ := exec.LookPath(b)
		dbus.copy(t, p, "usr/bin/"+b)
	}
	daemonPath, _ := exec.LookPath("dbus-daemon")
	sendPath, _ := exec.LookPath("dbus-send")
	for _, lib := range libClosure(t, daemonPath, sendPath) {
		dbus.copy(t, lib, usrPath(lib))
	}
	dbus.copy(t, "testdata/guest/system.conf", "usr/share/dbus-1/system.conf")
	dbus.build(t, work, rpms)
	step("busybox and dbus RPMs")

	base := func(version string, blob []byte) {
		p := newRPM(t, work, "osu-guest-base", version)
		for _, l := range []string{"bin", "sbin", "lib"} {
			p.symlink(t, "usr/"+l, l)
		}
		p.symlink(t, "usr/lib64", "lib64")
		for _, f := range []string{"inittab", "passwd", "group"} {
			p.copy(t, "testdata/guest/"+f, "etc/"+f)
		}
		p.copy(t, "testdata/guest/rcS", "etc/init.d/rcS")
		p.copy(t, "testdata/guest/rcK", "etc/init.d/rcK")
		p.copy(t, "testdata/guest/osu-guest-shell", "usr/libexec/osu-guest-shell")
		p.write(t, "etc/hostname", []byte("osu-guest\n"), 0o644)
		p.write(t, "etc/osu-guest.conf", []byte("setting=default\n"), 0o644)
		p.write(t, "usr/lib/os-release", []byte("NAME=\"OSU Test\"\nID=osutest\nPRETTY_NAME=\"OSU-Test\"\nVERSION=\"VERSION\"\n"), 0o644)
		p.write(t, "usr/share/osu-guest/release", []byte("release "+version+"\n"), 0o644)
		// A health check that passes, as an OS would ship one.
		p.write(t, "usr/lib/os-update/health.d/10-osu-guest", []byte("#!/bin/sh\necho \"osu-guest release $(cat /usr/share/osu-guest/release) is up\"\n"), 0o755)
		if blob != nil {
			p.write(t, "usr/share/osu-guest/blob", blob, 0o644)
		}
		p.build(t, work, rpms)
	}
	base("1", nil)
	run(t, rpms, nil, "createrepo_c", "--quiet", ".")

	// Compose v1.
	comp := filepath.Join(work, "compose")
	os.MkdirAll(comp, 0o755)
	os.WriteFile(filepath.Join(comp, "guest.repo"), []byte("[guest]\nname=guest\nbaseurl=file://"+rpms+"\ngpgcheck=0\n"), 0o644)
	os.WriteFile(filepath.Join(comp, "guest.yaml"), []byte(`ref: `+guestRef+`
repos: [guest]
packages: [osu-guest-base, busybox, dbus, os-update, kernel]
initramfs-modules: [virtio_pci, virtio_blk]
automatic-version-prefix: "1"
mutate-os-release: VERSION
`), 0o644)
	repoDir := filepath.Join(work, "repo")
	osu2 := filepath.Join(bin, "os-update")
	run(t, "", nil, osu2, "repo", "init", "--repo", repoDir, "--mode=archive")
	cache := filepath.Join(work, "compose-cache")
	run(t, "", nil, osu2, "compose", "tree", filepath.Join(comp, "guest.yaml"), "--repo", repoDir, "--cache", cache, "--source-date-epoch", "1700000000")
	g.V1 = strings.TrimSpace(run(t, "", nil, osu2, "repo", "rev-parse", "--repo", repoDir, guestRef))
	g.V1Version = "1"
	step("compose v1")

	// The bad update: v1's packages and one whose health check fails, on
	// a branch of its own (composed from the same RPMs, so the rebase to
	// it fetches little).
	bad := newRPM(t, work, "osu-guest-app", "1")
	bad.write(t, "usr/lib/os-update/health.d/50-osu-guest-app", []byte("#!/bin/sh\necho 'osu-guest-app: starting check'\necho 'osu-guest-app: not responding on port 8080' >&2\nexit 7\n"), 0o755)
	bad.build(t, work, rpms)
	run(t, rpms, nil, "createrepo_c", "--quiet", "--update", ".")
	os.WriteFile(filepath.Join(comp, "guest-bad.yaml"), []byte(`ref: `+guestBadRef+`
repos: [guest]
packages: [osu-guest-base, busybox, dbus, os-update, kernel, osu-guest-app]
initramfs-modules: [virtio_pci, virtio_blk]
automatic-version-prefix: "9"
mutate-os-release: VERSION
`), 0o644)
	run(t, "", nil, osu2, "compose", "tree", filepath.Join(comp, "guest-bad.yaml"), "--repo", repoDir, "--cache", cache, "--source-date-epoch", "1700000050")
	g.Bad = strings.TrimSpace(run(t, "", nil, osu2, "repo", "rev-parse", "--repo", repoDir, guestBadRef))
	g.BadVersion = "9"
	step("compose the bad update")

	// The image of v1, following the file:// remote on the second disk.
	g.Image = filepath.Join(work, "v1.raw")
	args := []string{"compose", "image", "--repo", repoDir, "--ref", guestRef, "--output", g.Image,
		"--remote", guestRemote, "--remote-url", guestRemoteURL, "--no-gpg-verify"}
	for _, k := range strings.Fields(guestKargs) {
		args = append(args, "--karg", k)
	}
	run(t, "", nil, osu2, args...)
	buildGrubImage(t, g, work, repoDir, osu2)
	step("images (extlinux, grub2)")

	// v2: a changed file and 12 MiB of new incompressible data (so that
	// the download takes long enough to be cut), through a static delta.
	blob := make([]byte, 12<<20)
	rand.New(rand.NewSource(int64(sha256.Sum256([]byte("v2"))[0]))).Read(blob)
	base("2", blob)
	run(t, rpms, nil, "createrepo_c", "--quiet", "--update", ".")
	run(t, "", nil, osu2, "compose", "tree", filepath.Join(comp, "guest.yaml"), "--repo", repoDir, "--cache", cache, "--source-date-epoch", "1700000100")
	g.V2 = strings.TrimSpace(run(t, "", nil, osu2, "repo", "rev-parse", "--repo", repoDir, guestRef))
	g.V2Version = "1.1"
	if g.V2 == g.V1 {
		t.Fatal("v2 compose made no new commit")
	}
	step("compose v2")
	deltas := run(t, "", nil, osu2, "repo", "delta", "list", "--repo", repoDir)
	if !strings.Contains(deltas, g.V1) {
		t.Fatalf("no static delta from v1: %s", deltas)
	}

	buildPanicUpdate(t, g, work, repoDir, osu2)
	step("panicking update")

	// The updates disk: the published repository on ext4, made without a
	// mount (mkfs.ext4 -d).
	g.Updates = filepath.Join(work, "updates.raw")
	sz := dirSize(t, repoDir)*3/2 + 32<<20
	run(t, "", nil, "mkfs.ext4", "-q", "-F", "-L", "updates", "-d", repoDir, g.Updates, fmt.Sprintf("%dk", sz>>10))
	step("updates disk")
	return g
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			n += (fi.Size() + 4095) &^ 4095
		}
		return nil
	})
	return n
}
