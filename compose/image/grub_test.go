package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/testutil"
)

// TestBuildGrubImage: a grub2 image has grub's boot.img in the MBR
// pointing at core.img in the gap after it, core.img's block list
// covering the rest of it, and the sysroot configured for grub2 with a
// grubenv grub can rewrite. (integration/boot boots such an image.)
func TestBuildGrubImage(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "losetup", "grub-mkimage", "debugfs", "grub-editenv"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, filepath.Join(GrubPCDir, "boot.img"), "grub-pc-bin")
	r := sourceRepo(t, true)
	out := filepath.Join(t.TempDir(), "disk.raw")
	res, err := Build(context.Background(), Options{Repo: r, Ref: "test/os", Output: out, Bootloader: "grub2", Kargs: []string{"console=ttyS0"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := os.ReadFile(filepath.Join(GrubPCDir, "boot.img"))
	// boot.img's code, with the fields grub-bios-setup sets.
	for i := 0; i < 440; i++ {
		switch {
		case i >= grubKernelSector && i < grubKernelSector+8, i == grubBootDrive, i == grubDriveCheck, i == grubDriveCheck+1:
			continue
		}
		if img[i] != boot[i] {
			t.Fatalf("MBR byte %#x is %#x, boot.img has %#x", i, img[i], boot[i])
		}
	}
	if got := binary.LittleEndian.Uint64(img[grubKernelSector:]); got != 1 {
		t.Errorf("boot.img loads core.img from sector %d", got)
	}
	if img[grubDriveCheck] != 0x90 || img[grubDriveCheck+1] != 0x90 || img[grubBootDrive] != 0xff {
		t.Errorf("boot drive fields % x", img[grubBootDrive:grubDriveCheck+2])
	}
	if img[446] != 0x80 || img[450] != 0x83 || img[510] != 0x55 || img[511] != 0xaa || binary.LittleEndian.Uint32(img[440:]) != res.DiskID {
		t.Errorf("partition table: % x", img[440:512])
	}
	// core.img at sector 1: diskboot.img, then the rest per its block list.
	diskboot, _ := os.ReadFile(filepath.Join(GrubPCDir, "diskboot.img"))
	core := img[Sector : 2*Sector]
	if !bytes.Equal(core[:grubBlocklist], diskboot[:grubBlocklist]) {
		t.Fatal("sector 1 is not grub's diskboot.img")
	}
	start := binary.LittleEndian.Uint64(core[grubBlocklist:])
	n := binary.LittleEndian.Uint16(core[grubBlocklist+8:])
	seg := binary.LittleEndian.Uint16(core[grubBlocklist+10:])
	if start != 2 || n == 0 || int(start)+int(n) > partStart || seg != 0x820 {
		t.Fatalf("block list: start %d, %d sectors, segment %#x", start, n, seg)
	}
	// The sectors the block list names are core.img's (compressed, so
	// its embedded configuration cannot be read here), and nothing else
	// is in the gap after them.
	if bytes.Count(img[start*Sector:(start+uint64(n))*Sector], []byte{0}) == int(n)*Sector {
		t.Error("the block list names empty sectors")
	}
	if bytes.Count(img[(start+uint64(n))*Sector:partStart*Sector], []byte{0}) != int(partStart-start-uint64(n))*Sector {
		t.Error("data after core.img in the gap")
	}
	if l := debugfs(t, out, "stat /boot/grub/grub.cfg"); !strings.Contains(l, `Fast link dest: "../loader/grub.cfg"`) {
		t.Errorf("grub.cfg link:\n%s", l)
	}
	cfg := debugfs(t, out, "cat /boot/loader.1/grub.cfg")
	if !strings.Contains(cfg, "linux '/boot/ostree/os-") || !strings.Contains(cfg, "'root=UUID="+res.RootUUID+"'") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	if conf := debugfs(t, out, "cat /ostree/repo/config"); !strings.Contains(conf, "bootloader=grub2") {
		t.Errorf("repository config:\n%s", conf)
	}
	// grubenv exists at grub's size (save_env rewrites it in place).
	env := debugfs(t, out, "cat /boot/grub/grubenv")
	if len(env) != 1024 || !strings.HasPrefix(env, "# GRUB Environment Block\n") {
		t.Errorf("grubenv (%d bytes): %q", len(env), env)
	}
}

// TestGrubCoreHasItsCommands: every command the embedded configuration
// and the generated grub.cfg run is in a module core.img holds (or their
// dependencies), by grub's own command.lst and moddep.lst: nothing is
// loaded from /boot at boot time.
func TestGrubCoreHasItsCommands(t *testing.T) {
	cmdList := testutil.RequireFile(t, filepath.Join(GrubPCDir, "command.lst"), "grub-pc-bin")
	depList := testutil.RequireFile(t, filepath.Join(GrubPCDir, "moddep.lst"), "grub-pc-bin")
	parse := func(p string) map[string][]string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok {
				m[strings.TrimPrefix(k, "*")] = strings.Fields(v)
			}
		}
		return m
	}
	commands, deps := parse(cmdList), parse(depList)
	have := map[string]bool{}
	var add func(string)
	add = func(m string) {
		if have[m] {
			return
		}
		have[m] = true
		for _, d := range deps[m] {
			add(d)
		}
	}
	for _, m := range grubModules {
		if _, ok := deps[m]; !ok {
			t.Errorf("module %s is not in grub's moddep.lst", m)
		}
		add(m)
	}
	// Built into grub's kernel or the script parser.
	builtin := map[string]bool{"set": true, "unset": true, "insmod": true, "if": true, "then": true, "elif": true, "else": true, "fi": true, "}": true}
	entries := []*bootloader.Entry{{Name: "ostree-2-os.conf"}, {Name: "ostree-1-os.conf"}}
	for i, e := range entries {
		e.Add("title", "OS")
		e.Add("options", "root=UUID=x ostree=/ostree/boot.1/os/c/"+strconv.Itoa(i))
		e.Add("linux", "/ostree/os-c/vmlinuz")
		e.Add("initrd", "/ostree/os-c/initramfs.img")
	}
	files, err := bootloader.Grub2{Dir: "grub"}.Configs(entries)
	if err != nil {
		t.Fatal(err)
	}
	script := grubEarlyConfig("0000") + string(files["grub.cfg"])
	checked := 0
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || builtin[f[0]] {
			continue
		}
		cmd := f[0]
		if cmd == "[" {
			cmd = "test"
		}
		if cmd == "insmod" {
			continue
		}
		mods, ok := commands[cmd]
		if !ok {
			t.Errorf("%q: no grub module provides %s", line, cmd)
			continue
		}
		if !have[mods[0]] {
			t.Errorf("%q: %s is in module %s, which core.img lacks", strings.TrimSpace(line), cmd, mods[0])
		}
		checked++
	}
	if checked < 6 {
		t.Fatalf("only %d commands checked:\n%s", checked, script)
	}
	for _, line := range strings.Split(script, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "insmod" && !have[f[1]] {
			t.Errorf("grub.cfg loads %s, which core.img lacks", f[1])
		}
	}
}
