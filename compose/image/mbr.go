package image

import (
	"encoding/binary"
	"fmt"
)

// Sector is the logical sector size of the images written here.
const Sector = 512

// mbr returns a master boot record: bootCode (at most 440 bytes, the
// boot loader's first stage), the disk signature, and one active Linux
// partition of count sectors at start. CHS fields hold the "use LBA"
// marker (0xfe 0xff 0xff), which every BIOS boot code since the 1990s
// ignores in favour of the LBA fields. A table is 66 bytes: writing it
// here instead of running sfdisk keeps the image free of a tool's version
// quirks and byte-for-byte reproducible.
func mbr(bootCode []byte, signature uint32, start, count uint64) ([]byte, error) {
	if len(bootCode) > 440 {
		return nil, fmt.Errorf("mbr: boot code is %d bytes, at most 440 fit", len(bootCode))
	}
	if start+count > 1<<32 {
		return nil, fmt.Errorf("mbr: a disk of %d sectors is too large for an MBR (2 TiB)", start+count)
	}
	b := make([]byte, Sector)
	copy(b, bootCode)
	binary.LittleEndian.PutUint32(b[440:], signature)
	p := b[446:462]
	p[0] = 0x80 // active: the partition the boot code chains to
	copy(p[1:4], []byte{0xfe, 0xff, 0xff})
	p[4] = 0x83 // Linux
	copy(p[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(p[8:], uint32(start))
	binary.LittleEndian.PutUint32(p[12:], uint32(count))
	b[510], b[511] = 0x55, 0xaa
	return b, nil
}
