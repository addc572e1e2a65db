package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// GrubPCDir holds grub's i386-pc (BIOS) images and modules (Debian
// package grub-pc-bin).
var GrubPCDir = "/usr/lib/grub/i386-pc"

// grubModules go into core.img: reading the disk and the root file
// system, and everything the grub.cfg os-update writes uses (menus,
// linux, gzio, test, load_env/save_env for boot counting). Nothing is
// loaded from /boot at boot time, so no module directory has to match
// core.img.
var grubModules = []string{"biosdisk", "part_msdos", "ext2", "search", "normal", "configfile",
	"linux", "gzio", "test", "loadenv", "echo", "sleep"}

// Offsets in grub's i386-pc boot.img (grub-core/boot/i386/pc/boot.S) and
// diskboot.img, the first sector of core.img.
const (
	grubKernelSector = 0x5c // boot.img: 64-bit LBA of core.img's first sector
	grubBootDrive    = 0x64 // boot.img: 0xff = the drive the BIOS booted
	grubDriveCheck   = 0x66 // boot.img: 2-byte jump skipping the drive check
	grubBlocklist    = Sector - 12
	grubCoreSegment  = 0x820 // where diskboot loads the rest of core.img
)

// grubCoreStart is the sector core.img is written at: right after the
// MBR, in the gap before the partition (what grub-install calls
// embedding).
const grubCoreStart = 1

// grubEarlyConfig is core.img's embedded configuration: the root file
// system found by UUID (whatever the disk's BIOS number), grub.cfg read
// from its /boot/grub.
func grubEarlyConfig(uuid string) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", uuid)
}

// grubImages builds the MBR boot code and core.img for a BIOS disk whose
// root file system has uuid: boot.img (440 bytes) told where core.img
// is, and core.img with an embedded configuration that finds the file
// system by UUID and reads /boot/grub/grub.cfg from it. What
// grub-bios-setup would patch is written here, so no loop device with
// partition nodes is needed.
func grubImages(ctx context.Context, uuid string) (bootCode, core []byte, err error) {
	boot, err := os.ReadFile(filepath.Join(GrubPCDir, "boot.img"))
	if err != nil {
		return nil, nil, fmt.Errorf("grub BIOS boot code (Debian package grub-pc-bin): %w", err)
	}
	if len(boot) != Sector {
		return nil, nil, fmt.Errorf("%s/boot.img is %d bytes, want %d", GrubPCDir, len(boot), Sector)
	}
	tmp, err := os.MkdirTemp("", "os-update-grub-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	early := filepath.Join(tmp, "early.cfg")
	if err := os.WriteFile(early, []byte(grubEarlyConfig(uuid)), 0o644); err != nil {
		return nil, nil, err
	}
	corePath := filepath.Join(tmp, "core.img")
	args := append([]string{"-O", "i386-pc", "-d", GrubPCDir, "-c", early, "-p", "/boot/grub", "-o", corePath}, grubModules...)
	if out, err := exec.CommandContext(ctx, "grub-mkimage", args...).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("grub-mkimage: %v: %s", err, bytes.TrimSpace(out))
	}
	if core, err = os.ReadFile(corePath); err != nil {
		return nil, nil, err
	}
	sectors := (len(core) + Sector - 1) / Sector
	if sectors < 2 || grubCoreStart+sectors > partStart {
		return nil, nil, fmt.Errorf("grub core.img of %d bytes does not fit the %d sectors before the partition", len(core), partStart-grubCoreStart)
	}
	core = append(core, make([]byte, sectors*Sector-len(core))...)
	// diskboot (core.img's first sector) loads the other sectors from
	// one block list entry: the sector after it, their number, and the
	// load segment.
	bl := core[grubBlocklist:Sector]
	binary.LittleEndian.PutUint64(bl[0:], grubCoreStart+1)
	binary.LittleEndian.PutUint16(bl[8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(bl[10:], grubCoreSegment)
	bootCode = append([]byte(nil), boot[:440]...)
	binary.LittleEndian.PutUint64(bootCode[grubKernelSector:], grubCoreStart)
	bootCode[grubBootDrive] = 0xff
	// A hard disk: skip the check that replaces a boot drive number
	// some BIOSes pass wrongly (two NOPs over the jump, as
	// grub-bios-setup does for disks).
	bootCode[grubDriveCheck], bootCode[grubDriveCheck+1] = 0x90, 0x90
	return bootCode, core, nil
}
