package delta

import (
	"encoding/binary"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// writeXZStored writes data as an .xz stream (CRC64 check) whose LZMA2
// chunks are all stored uncompressed. Any xz decoder reads it, at the
// speed of a copy. Parts of incompressible objects use it: libostree
// cannot read a part stored with compression type 0 from a file (it maps
// the file at offset 1, which mmap refuses), and liblzma spends about a
// second per 1.5 MB trying to compress random bytes.
func writeXZStored(w io.Writer, data []byte) error {
	const flags = 0x04 // check: CRC64
	var buf []byte
	// Stream header.
	buf = append(buf, 0xFD, '7', 'z', 'X', 'Z', 0x00, 0x00, flags)
	buf = binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE([]byte{0x00, flags}))
	// Block header: 12 bytes; one filter, LZMA2 with a 4 KiB dictionary
	// (stored chunks never refer back).
	hdr := []byte{12/4 - 1, 0x00, 0x21, 0x01, 0x00, 0x00, 0x00, 0x00}
	buf = append(buf, hdr...)
	buf = binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(hdr))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	// LZMA2 stored chunks of up to 64 KiB: 0x01 resets the dictionary
	// (first chunk), 0x02 does not; then the size minus one, big-endian.
	packed := 0
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1<<16)
		ctl := byte(0x02)
		if off == 0 {
			ctl = 0x01
		}
		if _, err := w.Write([]byte{ctl, byte((n - 1) >> 8), byte(n - 1)}); err != nil {
			return err
		}
		if _, err := w.Write(data[off : off+n]); err != nil {
			return err
		}
		off += n
		packed += 3 + n
	}
	packed++ // end of LZMA2 data
	tail := []byte{0x00}
	tail = append(tail, make([]byte, (4-packed%4)%4)...) // block padding
	tail = binary.LittleEndian.AppendUint64(tail, crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)))
	// Index: one record (unpadded block size, uncompressed size).
	idx := []byte{0x00, 0x01}
	idx = binary.AppendUvarint(idx, uint64(12+packed+8))
	idx = binary.AppendUvarint(idx, uint64(len(data)))
	idx = append(idx, make([]byte, (4-len(idx)%4)%4)...)
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	tail = append(tail, idx...)
	// Stream footer.
	foot := binary.LittleEndian.AppendUint32(nil, uint32(len(idx)/4-1))
	foot = append(foot, 0x00, flags)
	tail = binary.LittleEndian.AppendUint32(tail, crc32.ChecksumIEEE(foot))
	tail = append(tail, foot...)
	tail = append(tail, 'Y', 'Z')
	_, err := w.Write(tail)
	return err
}
