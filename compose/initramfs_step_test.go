package compose

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// elfWithModinfo is a minimal relocatable ELF with a .modinfo section,
// enough for depmod to index it as a module.
func elfWithModinfo(modinfo string) []byte {
	info := []byte(modinfo + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	strOff := uint64(64 + len(info))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: 1, Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2}
	copy(hdr.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1})
	binary.Write(&b, binary.LittleEndian, hdr)
	b.Write(info)
	b.Write(shstr)
	b.Write(make([]byte, int(shOff)-b.Len()))
	for _, s := range []elf.Section64{{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: 64, Size: uint64(len(info)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1}} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}

// TestEnsureModulesDep: a kernel whose modules have no modules.dep gets
// one from depmod (Debian's kernel packages ship none); an existing one is
// kept; a kernel without modules is left alone.
func TestEnsureModulesDep(t *testing.T) {
	testutil.RequireTool(t, "depmod")
	work := t.TempDir()
	mod := filepath.Join(work, "usr/lib/modules/6.0-t")
	os.MkdirAll(filepath.Join(mod, "kernel/drivers"), 0o755)
	os.WriteFile(filepath.Join(mod, "kernel/drivers/one.ko"), elfWithModinfo("name=one"), 0o644)
	note, err := ensureModulesDep(work, "6.0-t")
	if err != nil {
		t.Fatal(err)
	}
	dep, err := os.ReadFile(filepath.Join(mod, "modules.dep"))
	if err != nil || !strings.Contains(string(dep), "kernel/drivers/one.ko:") || !strings.Contains(note, "modules.dep written") {
		t.Fatalf("modules.dep %q (%v), note %q", dep, err, note)
	}
	if _, err := os.Stat(filepath.Join(work, "lib")); err == nil {
		t.Fatal("depmod's base directory leaked into the tree")
	}
	os.WriteFile(filepath.Join(mod, "modules.dep"), []byte("mine\n"), 0o644)
	if note, err := ensureModulesDep(work, "6.0-t"); err != nil || note != "" {
		t.Fatalf("existing modules.dep: %q %v", note, err)
	}
	if b, _ := os.ReadFile(filepath.Join(mod, "modules.dep")); string(b) != "mine\n" {
		t.Fatalf("existing modules.dep replaced: %q", b)
	}
	bare := t.TempDir()
	os.MkdirAll(filepath.Join(bare, "usr/lib/modules/6.0-t"), 0o755)
	if note, err := ensureModulesDep(bare, "6.0-t"); err != nil || note != "" {
		t.Fatalf("kernel without modules: %q %v", note, err)
	}
}
