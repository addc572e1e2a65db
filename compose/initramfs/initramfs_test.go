package initramfs

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/ulikunitz/xz"
)

// fakeModule returns a minimal ELF relocatable object whose .modinfo
// section holds the given key=value strings, as a kernel module's does.
func fakeModule(t *testing.T, modinfo ...string) []byte {
	t.Helper()
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	infoOff := uint64(64)
	strOff := infoOff + uint64(len(info))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: 1,
		Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1})
	binary.Write(&b, binary.LittleEndian, hdr)
	b.Write(info)
	b.Write(shstr)
	b.Write(make([]byte, int(shOff)-b.Len()))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: infoOff, Size: uint64(len(info)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// modulesTree makes usr/lib/modules/KVER with a small dependency graph:
// top -> mid-dep, base; mid-dep -> base; base is xz-compressed;
// uses-builtin -> crc_builtin (built in).
func modulesTree(t *testing.T) (tree, kver string) {
	tree, kver = t.TempDir(), "6.1.0-test"
	dir := filepath.Join(tree, "usr/lib/modules", kver)
	writeFile(t, filepath.Join(dir, "kernel/drivers/top.ko"), fakeModule(t, "license=GPL", "depends=mid-dep,base", "name=top"))
	writeFile(t, filepath.Join(dir, "kernel/drivers/sub/mid-dep.ko"), fakeModule(t, "depends=base", "name=mid_dep"))
	var xzBuf bytes.Buffer
	xw, _ := xz.NewWriter(&xzBuf)
	xw.Write(fakeModule(t, "depends=", "name=base"))
	xw.Close()
	writeFile(t, filepath.Join(dir, "kernel/lib/base.ko.xz"), xzBuf.Bytes())
	writeFile(t, filepath.Join(dir, "kernel/drivers/uses-builtin.ko"), fakeModule(t, "depends=crc_builtin"))
	writeFile(t, filepath.Join(dir, "kernel/drivers/needs-missing.ko"), fakeModule(t, "depends=nowhere"))
	writeFile(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/lib/crc_builtin.ko\n"))
	return tree, kver
}

func TestResolveModules(t *testing.T) {
	tree, kver := modulesTree(t)
	dir := filepath.Join(tree, "usr/lib/modules", kver)
	mods, err := ResolveModules(dir, []string{"top", "uses_builtin"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, " "); got != "base mid_dep top uses_builtin" {
		t.Fatalf("load order %q", got)
	}
	if mods[0].Path != "kernel/lib/base.ko.xz" {
		t.Fatalf("base path %q", mods[0].Path)
	}
	if _, err := ResolveModules(dir, []string{"virtio_blk"}); err == nil || !strings.Contains(err.Error(), "module virtio_blk not found") {
		t.Fatalf("unknown module: %v", err)
	}
	if _, err := ResolveModules(dir, []string{"needs-missing"}); err == nil || !strings.Contains(err.Error(), "nowhere (needed by needs_missing)") {
		t.Fatalf("missing dependency: %v", err)
	}
	writeFile(t, filepath.Join(dir, "kernel/bad.ko"), []byte("not elf"))
	if _, err := ResolveModules(dir, []string{"bad"}); err == nil || !strings.Contains(err.Error(), "kernel/bad.ko") {
		t.Fatalf("corrupt module: %v", err)
	}
}

// TestCPIORoundTrip checks our newc writer against GNU cpio: every entry
// comes back with its type, mode, content, link target and device number,
// and the bytes do not depend on the order entries are given in.
func TestCPIORoundTrip(t *testing.T) {
	cpio := testutil.RequireTool(t, "cpio")
	testutil.RequireRoot(t) // device nodes
	entries := []Entry{
		{Name: "init", Mode: modeReg | 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "etc", Mode: modeDir | 0o755},
		{Name: "etc/odd", Mode: modeReg | 0o600, Data: []byte("12345")},
		{Name: "etc/empty", Mode: modeReg | 0o644},
		{Name: "etc/link", Mode: modeLnk | 0o777, Link: "../init"},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChr | 0o600, Major: 5, Minor: 1},
	}
	var a, b bytes.Buffer
	if err := WriteCPIO(&a, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	rev := append([]Entry(nil), entries...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	WriteCPIO(&b, rev, 1700000000)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("archive depends on entry order")
	}
	out := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, bytes.NewReader(a.Bytes())
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, o)
	}
	for _, e := range entries {
		p := filepath.Join(out, e.Name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Mode & modeMask {
		case modeReg:
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, e.Data) || uint32(fi.Mode().Perm()) != e.Mode&0o777 {
				t.Errorf("%s: %q %v", e.Name, got, fi.Mode())
			}
			if fi.ModTime().Unix() != 1700000000 {
				t.Errorf("%s: mtime %v", e.Name, fi.ModTime())
			}
		case modeLnk:
			if l, _ := os.Readlink(p); l != e.Link {
				t.Errorf("%s -> %q", e.Name, l)
			}
		case modeChr:
			if fi.Mode()&os.ModeCharDevice == 0 || deviceOf(fi) != [2]uint32{5, 1} {
				t.Errorf("%s: %v %v", e.Name, fi.Mode(), deviceOf(fi))
			}
		case modeDir:
			if !fi.IsDir() {
				t.Errorf("%s not a dir", e.Name)
			}
		}
	}
	for _, bad := range []Entry{{Name: "/abs", Mode: modeDir}, {Name: "a/../b", Mode: modeDir}, {Name: "fifo", Mode: 0o010644}} {
		if err := WriteCPIO(&bytes.Buffer{}, []Entry{bad}, 0); err == nil {
			t.Errorf("%q accepted", bad.Name)
		}
	}
}

// TestBuild: the archive holds the static init, the modules (decompressed)
// and their load order; a dynamically linked init is refused.
func TestBuild(t *testing.T) {
	busybox := testutil.RequireTool(t, "busybox")
	if ok, _ := IsStatic(busybox); !ok {
		t.Fatalf("%s is not static (install busybox-static)", busybox)
	}
	cpio := testutil.RequireTool(t, "cpio")
	tree, kver := modulesTree(t)
	opts := Options{Tree: tree, KernelVersion: kver, Modules: []string{"top"}, InitPath: busybox, MTime: 1}
	var img, img2 bytes.Buffer
	if _, err := Build(&img, opts); err != nil {
		t.Fatal(err)
	}
	Build(&img2, opts)
	if !bytes.Equal(img.Bytes(), img2.Bytes()) {
		t.Fatal("not reproducible")
	}
	zr, err := gzip.NewReader(&img)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, zr
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, o)
	}
	list, err := os.ReadFile(filepath.Join(out, ModulesList))
	if err != nil {
		t.Fatal(err)
	}
	m := "usr/lib/modules/" + kver + "/kernel/"
	want := m + "lib/base.ko\n" + m + "drivers/sub/mid-dep.ko\n" + m + "drivers/top.ko\n"
	if string(list) != want {
		t.Fatalf("module list:\n%s\nwant:\n%s", list, want)
	}
	for _, p := range strings.Fields(want) {
		data, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := elf.NewFile(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s is not a decompressed module: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("init: %v %v", fi, err)
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "sysroot"} {
		if fi, err := os.Stat(filepath.Join(out, d)); err != nil || !fi.IsDir() {
			t.Fatalf("/%s missing", d)
		}
	}

	sh, err := exec.LookPath("true")
	if err == nil {
		if ok, _ := IsStatic(sh); !ok {
			opts.InitPath = sh
			if _, err := Build(&bytes.Buffer{}, opts); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
				t.Fatalf("dynamic init: %v", err)
			}
		}
	}
	opts.InitPath, opts.Modules = busybox, []string{"absent"}
	if _, err := Build(&bytes.Buffer{}, opts); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("unknown module: %v", err)
	}
}
