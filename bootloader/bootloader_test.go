package bootloader

import (
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testEntries are two entries as sysroot writes them, with a title that
// needs quoting.
func testEntries() []*Entry {
	mk := func(name, title, version, serial string, dt bool) *Entry {
		e := &Entry{Name: name}
		e.Add("title", title)
		e.Add("version", version)
		e.Add("options", "root=UUID=1234 rw quiet ostree=/ostree/boot.1/testos/abcd/"+serial)
		if dt {
			e.Add("devicetree", "/ostree/testos-abcd/devicetree-6.1.0")
		}
		e.Add("linux", "/ostree/testos-abcd/vmlinuz-6.1.0")
		e.Add("initrd", "/ostree/testos-abcd/initramfs-6.1.0.img")
		return e
	}
	return []*Entry{
		mk("ostree-2-testos.conf", "Test OS 2.0 (ostree:0)", "2", "0", true),
		mk("ostree-1-testos.conf", `Bob's "OS" $HOME; {x} (ostree:1)`, "1", "1", false),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got) {
		t.Fatalf("%s differs from golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestGrub2ConfigAcceptedByGrubScriptCheck(t *testing.T) {
	tool := testutil.RequireTool(t, "grub-script-check")
	files, err := Grub2{Dir: "grub"}.Configs(testEntries())
	if err != nil {
		t.Fatal(err)
	}
	cfg := files["grub.cfg"]
	p := filepath.Join(t.TempDir(), "grub.cfg")
	os.WriteFile(p, cfg, 0o644)
	testutil.Run(t, tool, p)
	golden(t, "grub.cfg", cfg)
	// The checker can fail: an unbalanced quote is rejected.
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	os.WriteFile(bad, []byte("menuentry 'x {\n}\n"), 0o644)
	if _, _, err := testutil.RunErr(tool, bad); err == nil {
		t.Fatal("grub-script-check accepted a broken file")
	}
}

func TestSyslinuxAndUBootGolden(t *testing.T) {
	for _, tc := range []struct {
		be   Backend
		file string
	}{
		{Syslinux{Dir: "syslinux", File: "syslinux.cfg"}, "syslinux.cfg"},
		{Syslinux{Dir: "extlinux", File: "extlinux.conf"}, "extlinux.conf"},
		{UBoot{}, "uEnv.txt"},
	} {
		files, err := tc.be.Configs(testEntries())
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, files[tc.file])
	}
	for i, e := range testEntries() {
		golden(t, []string{"entry0.conf", "entry1.conf"}[i], e.Bytes())
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"", "bls"},
		{"syslinux/syslinux.cfg", "syslinux"},
		{"extlinux/extlinux.conf", "syslinux"},
		{"grub/grub.cfg", "grub2"},
		{"grub2/grub.cfg", "grub2"},
		{"uEnv.txt", "uboot"},
	} {
		dir := t.TempDir()
		if tc.file != "" {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(tc.file)), 0o755)
			os.WriteFile(filepath.Join(dir, tc.file), nil, 0o644)
		}
		if got := Detect(dir).Name(); got != tc.want {
			t.Errorf("%q: detected %s, want %s", tc.file, got, tc.want)
		}
	}
}

func TestPrepareSwapAndLink(t *testing.T) {
	boot := t.TempDir()
	os.MkdirAll(filepath.Join(boot, "grub"), 0o755)
	os.WriteFile(filepath.Join(boot, "grub/grub.cfg"), []byte("# distro\n"), 0o644)
	l := &Loader{BootDir: boot}
	be := Detect(boot)
	if err := l.Prepare(1, testEntries(), be); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := l.CurrentVersion(); ok || v != 0 {
		t.Fatal("prepare made the loader current")
	}
	if err := l.Swap(1); err != nil {
		t.Fatal(err)
	}
	if err := be.Link(boot); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := l.CurrentVersion(); !ok || v != 1 {
		t.Fatalf("after swap: %d %v", v, ok)
	}
	if err := l.Prepare(1, testEntries(), be); err == nil {
		t.Fatal("rewriting the current loader directory was allowed")
	}
	got, err := os.ReadFile(filepath.Join(boot, "grub/grub.cfg"))
	if err != nil || !strings.Contains(string(got), "menuentry 'Test OS 2.0 (ostree:0)'") {
		t.Fatalf("grub.cfg through the symlink: %v\n%s", err, got)
	}
	entries, err := l.ReadEntries(1)
	if err != nil || len(entries) != 2 || entries[0].Name != "ostree-2-testos.conf" {
		t.Fatalf("read back: %v %v", entries, err)
	}
	if bb, _ := os.Readlink(filepath.Join(boot, "boot")); bb != "." {
		t.Fatalf("boot/boot -> %q", bb)
	}
}

func TestParseEntryAndVersions(t *testing.T) {
	e, err := ParseEntry("x.conf", []byte("# comment\ntitle  A B\n\tindented ignored\nversion 10\ninitrd /a\ninitrd /b\noptions\tx=1 y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("title") != "A B" || e.Get("options") != "x=1 y" || len(e.GetAll("initrd")) != 2 || e.Get("indented") != "" {
		t.Fatalf("parsed %+v", e.Lines)
	}
	if CompareVersions("10", "9") != 1 || CompareVersions("2", "10") != -1 || CompareVersions("1.2", "1.2") != 0 {
		t.Fatal("version ordering")
	}
}

func TestKargsEdit(t *testing.T) {
	k := ParseKargs(`a=1 b c="x y" a=2`)
	if k.Replace("a=3").String() != `a=3 b c="x y"` {
		t.Fatalf("replace: %s", k.Replace("a=3"))
	}
	d, err := k.Delete("a")
	if err != nil || d.String() != `b c="x y"` {
		t.Fatalf("delete: %s %v", d, err)
	}
	d, err = k.Delete("a=2")
	if err != nil || d.String() != `a=1 b c="x y"` {
		t.Fatalf("delete exact: %s %v", d, err)
	}
	if _, err := k.Delete("zz"); err == nil {
		t.Fatal("deleting a missing key succeeded")
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte("title x\nversion 1\noptions a=b ostree=/ostree/boot.0/os/c/0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry("f.conf", data)
		if err != nil {
			return
		}
		// Rendering and parsing again is stable.
		e2, err := ParseEntry("f.conf", e.Bytes())
		if err != nil || string(e2.Bytes()) != string(e.Bytes()) {
			t.Fatalf("round trip: %q -> %q (%v)", e.Bytes(), e2.Bytes(), err)
		}
		_ = ParseKargs(e.Get("options")).String()
	})
}

// TestUEnvAcceptedByMkenvimage feeds uEnv.txt to u-boot's mkenvimage and
// reads the binary environment back (CRC32 + NUL-separated name=value).
func TestUEnvAcceptedByMkenvimage(t *testing.T) {
	tool := testutil.RequireTool(t, "mkenvimage")
	files, err := UBoot{}.Configs(testEntries())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, img := filepath.Join(dir, "uEnv.txt"), filepath.Join(dir, "env.bin")
	os.WriteFile(src, files["uEnv.txt"], 0o644)
	testutil.Run(t, tool, "-s", "16384", "-o", img, src)
	bin, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if crc := crc32.ChecksumIEEE(bin[4:]); crc != binary.LittleEndian.Uint32(bin) {
		t.Fatalf("environment CRC %08x mismatch", crc)
	}
	env := map[string]string{}
	// Variables end at the first empty one; the rest is 0xff padding.
	data, _, ok := strings.Cut(string(bin[4:]), "\x00\x00")
	if !ok {
		t.Fatal("environment is not terminated")
	}
	for _, kv := range strings.Split(data, "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	want := map[string]string{
		"kernel_image":   "/boot/ostree/testos-abcd/vmlinuz-6.1.0",
		"ramdisk_image":  "/boot/ostree/testos-abcd/initramfs-6.1.0.img",
		"fdt_file":       "/boot/ostree/testos-abcd/devicetree-6.1.0",
		"bootargs":       "root=UUID=1234 rw quiet ostree=/ostree/boot.1/testos/abcd/0",
		"kernel_image2":  "/boot/ostree/testos-abcd/vmlinuz-6.1.0",
		"ramdisk_image2": "/boot/ostree/testos-abcd/initramfs-6.1.0.img",
		"bootargs2":      "root=UUID=1234 rw quiet ostree=/ostree/boot.1/testos/abcd/1",
	}
	if len(env) != len(want) {
		t.Fatalf("u-boot read %d variables: %q", len(env), env)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

func FuzzParseKargs(f *testing.F) {
	f.Add(`root=/dev/sda1 quiet foo="a b" ostree=/ostree/boot.0/os/c/0`)
	f.Fuzz(func(t *testing.T, s string) {
		k := ParseKargs(s)
		// Joining and splitting again is stable, and edits keep it so.
		if k2 := ParseKargs(k.String()); !k2.Equal(k) {
			t.Fatalf("round trip %q -> %q", k, k2)
		}
		for _, a := range k {
			if a == "" {
				t.Fatal("empty argument")
			}
			_ = k.Replace(a)
		}
	})
}
