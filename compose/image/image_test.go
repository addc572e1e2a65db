package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
)

// sourceRepo commits a small bootable tree (a stand-in kernel: nothing
// boots here; the qemu tests in integration/ boot real images).
func sourceRepo(t *testing.T, withKernel bool) *repo.Repo {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	files := map[string]string{
		"usr/etc/os-release": "PRETTY_NAME=\"Image Test\"\n",
		"usr/bin/hello":      "#!/bin/sh\necho hello\n",
	}
	if withKernel {
		files["usr/lib/modules/6.0-t/vmlinuz"] = "kernel"
		files["usr/lib/modules/6.0-t/initramfs.img"] = "initramfs"
	}
	for p, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte(body), 0o644)
	}
	for _, d := range []string{"sysroot", "var", "boot", "etc"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	os.Remove(filepath.Join(tree, "etc"))
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := r.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: "test/os", Subject: "s", Timestamp: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	return r
}

func requireImageTools(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "losetup", "extlinux", "debugfs", "dumpe2fs"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, SyslinuxMBR, "syslinux-common")
}

// debugfs reads a file of the image's root file system without mounting.
func debugfs(t *testing.T, img, cmd string) string {
	t.Helper()
	return testutil.Run(t, "debugfs", "-R", cmd, img+"?offset=1048576")
}

func TestBuildImage(t *testing.T) {
	requireImageTools(t)
	r := sourceRepo(t, true)
	out := filepath.Join(t.TempDir(), "disk.raw")
	res, err := Build(context.Background(), Options{
		Repo: r, Ref: "test/os", Output: out, Kargs: []string{"console=ttyS0", "quiet"},
		Remote: "origin", RemoteURL: "file:///run/updates", NoGPGVerify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() != res.Size || fi.Mode().Perm() != 0o644 {
		t.Fatalf("image %v %v (want %d bytes)", fi, err, res.Size)
	}
	img, _ := os.ReadFile(out)
	bootCode, _ := os.ReadFile(SyslinuxMBR)
	if !bytes.Equal(img[:440], bootCode[:440]) {
		t.Error("MBR boot code is not syslinux's mbr.bin")
	}
	if img[510] != 0x55 || img[511] != 0xaa || img[446] != 0x80 || img[450] != 0x83 {
		t.Errorf("MBR partition table: % x", img[446:512])
	}
	// sfdisk reads our table as one bootable Linux partition at 1 MiB.
	if sfdisk, err := exec.LookPath("sfdisk"); err == nil {
		dump := testutil.Run(t, sfdisk, "--dump", out)
		if !strings.Contains(dump, "start=        2048") || !strings.Contains(dump, "type=83, bootable") {
			t.Errorf("sfdisk --dump:\n%s", dump)
		}
	}
	sb := testutil.Run(t, "dumpe2fs", "-h", out+"?offset=1048576")
	for _, want := range []string{"has_journal", "extent", "Filesystem UUID:          " + res.RootUUID} {
		if !strings.Contains(sb, want) {
			t.Errorf("superblock lacks %q:\n%s", want, sb)
		}
	}
	entry := debugfs(t, out, "cat /boot/loader.1/entries/ostree-1-os.conf")
	for _, want := range []string{"options root=UUID=" + res.RootUUID + " rw console=ttyS0 quiet ostree=/ostree/boot.1/os/", "linux /ostree/os-"} {
		if !strings.Contains(entry, want) {
			t.Errorf("boot entry lacks %q:\n%s", want, entry)
		}
	}
	if conf := debugfs(t, out, "cat /boot/loader.1/extlinux.conf"); !strings.Contains(conf, "APPEND root=UUID="+res.RootUUID) {
		t.Errorf("extlinux.conf:\n%s", conf)
	}
	if ls := debugfs(t, out, "ls -l /boot/extlinux"); !strings.Contains(ls, "ldlinux.sys") || !strings.Contains(ls, "extlinux.conf") {
		t.Errorf("extlinux not installed:\n%s", ls)
	}
	if cfg := debugfs(t, out, "cat /ostree/repo/config"); !strings.Contains(cfg, "url=file:///run/updates") || !strings.Contains(cfg, "bootloader=extlinux") || !strings.Contains(cfg, "gpg-verify=false") {
		t.Errorf("repository config:\n%s", cfg)
	}
	origin := debugfs(t, out, "cat /ostree/deploy/os/deploy/"+res.Commit.String()+".0.origin")
	if !strings.Contains(origin, "refspec=origin:test/os") {
		t.Errorf("origin:\n%s", origin)
	}
	if got := debugfs(t, out, "cat /ostree/deploy/os/deploy/"+res.Commit.String()+".0/usr/bin/hello"); got != "#!/bin/sh\necho hello\n" {
		t.Errorf("deployed file: %q", got)
	}

	// The same commit gives the same identifiers and partition table.
	out2 := filepath.Join(t.TempDir(), "disk.qcow2")
	format := "raw"
	if _, err := exec.LookPath("qemu-img"); err == nil {
		format = "qcow2"
	}
	res2, err := Build(context.Background(), Options{Repo: r, Ref: "test/os", Output: out2, Kargs: []string{"console=ttyS0", "quiet"}, Format: format, Size: res.Size})
	if err != nil {
		t.Fatal(err)
	}
	if res2.RootUUID != res.RootUUID || res2.DiskID != res.DiskID {
		t.Errorf("identifiers differ: %+v %+v", res, res2)
	}
	if format == "qcow2" {
		info := testutil.Run(t, "qemu-img", "info", out2)
		if !strings.Contains(info, "file format: qcow2") {
			t.Errorf("qemu-img info:\n%s", info)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out2), ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestBadInput: each mistake is refused with an error naming it, and
// nothing is written at the output path (an existing file stays as it
// was) nor left beside it.
func TestBadInput(t *testing.T) {
	requireImageTools(t)
	r := sourceRepo(t, true)
	noKernel := sourceRepo(t, false)
	dir := t.TempDir()
	out := filepath.Join(dir, "disk.raw")
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"karg with a space", Options{Repo: r, Kargs: []string{"console=ttyS0 quiet"}}, `"console=ttyS0 quiet" contains whitespace`},
		{"karg with quotes", Options{Repo: r, Kargs: []string{`init="/bin/sh"`}}, "contains a quote"},
		{"root karg", Options{Repo: r, Kargs: []string{"root=/dev/sda1"}}, "set by the image builder"},
		{"unknown bootloader", Options{Repo: r, Bootloader: "lilo"}, `unknown bootloader "lilo"`},
		{"unknown format", Options{Repo: r, Format: "vmdk"}, `unknown image format "vmdk"`},
		{"too small", Options{Repo: r, Size: 8 << 20}, "--size 8 MiB is too small"},
		{"no kernel", Options{Repo: noKernel}, "has no kernel"},
		{"unknown ref", Options{Repo: r, Ref: "nope/os"}, "nope/os"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, existing := range []bool{false, true} {
				os.Remove(out)
				if existing {
					os.WriteFile(out, []byte("previous image"), 0o644)
				}
				o := c.opts
				o.Output = out
				if o.Ref == "" {
					o.Ref = "test/os"
				}
				_, err := Build(context.Background(), o)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want an error containing %q", err, c.want)
				}
				got, rerr := os.ReadFile(out)
				if existing && string(got) != "previous image" {
					t.Fatalf("existing output changed: %q %v", got, rerr)
				}
				if !existing && rerr == nil {
					t.Fatal("an image was left at the output path")
				}
				if ents, _ := os.ReadDir(dir); len(ents) != map[bool]int{false: 0, true: 1}[existing] {
					t.Fatalf("left behind: %v", ents)
				}
			}
		})
	}
	if _, err := ParseSize("2 potatoes"); err == nil {
		t.Error("bad size accepted")
	}
	if n, err := ParseSize("1.5G"); err != nil || n != 3<<29 {
		t.Errorf("ParseSize(1.5G) = %d, %v", n, err)
	}
}
