package postprocess

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/osupdate/os-update/compose/treefs"
	"github.com/osupdate/os-update/internal/testutil"
)

func TestApply(t *testing.T) {
	testutil.RequireRoot(t)
	tree := t.TempDir()
	mk := func(p, body string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc/passwd", "root:x:0:0::/root:/bin/sh\nfoo:x:1000:1001::/:/bin/sh\n", 0o644)
	mk("etc/group", "root:x:0:\nfoog:x:1001:\n", 0o644)
	mk("var/log/app.log", "log", 0o640)
	os.MkdirAll(filepath.Join(tree, "var/lib/foo"), 0o750)
	os.Chown(filepath.Join(tree, "var/lib/foo"), 1000, 1001)
	os.Symlink("../run", filepath.Join(tree, "var/run"))
	mk("boot/vmlinuz-6.1.0-test", "KERNEL", 0o644)
	mk("boot/initramfs-6.1.0-test.img", "INITRD", 0o644)
	mk("opt/app/bin", "app", 0o755)
	os.MkdirAll(filepath.Join(tree, "home"), 0o755)
	mk("tmp/junk", "x", 0o644)

	root, err := treefs.Open(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	res, err := Apply(root)
	if err != nil {
		t.Fatal(err)
	}
	if res.KernelVersion != "6.1.0-test" {
		t.Errorf("kernel %q", res.KernelVersion)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(tree, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read("usr/lib/modules/6.1.0-test/vmlinuz") != "KERNEL" || read("usr/lib/modules/6.1.0-test/initramfs.img") != "INITRD" {
		t.Error("kernel not moved")
	}
	if !strings.Contains(read("usr/etc/passwd"), "foo:x:1000") {
		t.Error("etc not moved")
	}
	if _, err := os.Lstat(filepath.Join(tree, "etc")); !os.IsNotExist(err) {
		t.Error("/etc still there")
	}
	for dir, target := range map[string]string{"home": "var/home", "root": "var/roothome", "opt": "var/opt", "srv": "var/srv", "mnt": "var/mnt", "ostree": "sysroot/ostree"} {
		if l, err := os.Readlink(filepath.Join(tree, dir)); err != nil || l != target {
			t.Errorf("/%s -> %q (%v), want %s", dir, l, err, target)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(tree, "var")); len(ents) != 0 {
		t.Errorf("/var not empty: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(tree, "tmp")); len(ents) != 0 {
		t.Errorf("/tmp not empty")
	}
	if fi, _ := os.Stat(filepath.Join(tree, "tmp")); fi.Mode()&os.ModeSticky == 0 {
		t.Error("/tmp not sticky")
	}
	conf := read(strings.TrimPrefix(TmpfilesConf, "/"))
	for _, want := range []string{
		"d /var/lib/foo 0750 foo foog - -",
		"L /var/run - - - - ../run",
		"C /var/log/app.log 0640 root root - /usr/share/factory/var/log/app.log",
		"d /var/opt/app 0755 root root - -",
		"C /var/opt/app/bin 0755 root root - /usr/share/factory/var/opt/app/bin",
		"d /var/roothome 0700 root root - -",
		"d /var/home 0755 root root - -",
	} {
		if !strings.Contains(conf, want+"\n") {
			t.Errorf("tmpfiles missing %q:\n%s", want, conf)
		}
	}
	if strings.Index(conf, "d /var/lib ") > strings.Index(conf, "d /var/lib/foo ") {
		t.Error("parent after child in tmpfiles")
	}
	if read("usr/share/factory/var/log/app.log") != "log" {
		t.Error("factory copy missing")
	}
	fi, _ := os.Lstat(filepath.Join(tree, "usr/share/factory/var/log/app.log"))
	if fi.Sys().(*syscall.Stat_t).Mode&0o777 != 0o640 {
		t.Error("factory file mode changed")
	}

	// Both /etc and /usr/etc is an error.
	tree2 := t.TempDir()
	os.MkdirAll(filepath.Join(tree2, "etc"), 0o755)
	os.MkdirAll(filepath.Join(tree2, "usr/etc"), 0o755)
	r2, _ := treefs.Open(tree2)
	defer r2.Close()
	if _, err := Apply(r2); err == nil || !strings.Contains(err.Error(), "both /etc and /usr/etc") {
		t.Errorf("got %v", err)
	}
}
