// Package bsdiff implements the binary diff used inside libostree static
// deltas: the streaming variant of the bsdiff format with no header and no
// compression (the delta part is compressed as a whole).
//
// A patch is a sequence of records. Each starts with 24 bytes of control:
// three signed 64-bit integers in sign-magnitude little-endian form
// (diffLen, extraLen, seek). Then come diffLen bytes, each added modulo
// 256 to the old byte at the same position (positions outside the old
// data add 0), and extraLen literal bytes. After a record the old
// position advances by diffLen and then by seek. Records continue until
// the new data is complete.
package bsdiff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrCorrupt is wrapped by every error about a malformed patch.
var ErrCorrupt = errors.New("corrupt bsdiff patch")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// getInt decodes a sign-magnitude little-endian int64.
func getInt(b []byte) int64 {
	var y int64
	for i := 7; i >= 0; i-- {
		y = y<<8 | int64(b[i])
	}
	y &= 0x7fffffffffffffff
	if b[7]&0x80 != 0 {
		y = -y
	}
	return y
}

// putInt encodes x as sign-magnitude little-endian.
func putInt(b []byte, x int64) {
	neg := x < 0
	if neg {
		x = -x
	}
	for i := 0; i < 8; i++ {
		b[i] = byte(x >> (8 * i))
	}
	if neg {
		b[7] |= 0x80
	}
}

// Patch applies patch to old (oldSize bytes readable through old) and
// writes exactly newSize bytes to out. It fails on a record that would
// overrun newSize, on a truncated patch, and on bytes left after the new
// data is complete.
func Patch(old io.ReaderAt, oldSize int64, patch []byte, newSize uint64, out io.Writer) error {
	return PatchReader(old, oldSize, bytes.NewReader(patch), int64(len(patch)), newSize, out)
}

// PatchReader is Patch with the patch read from patch (patchSize bytes),
// so that a patch larger than memory can be applied: it holds two 64 KiB
// buffers whatever the sizes.
func PatchReader(old io.ReaderAt, oldSize int64, patch io.Reader, patchSize int64, newSize uint64, out io.Writer) error {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	oldBuf := make([]byte, chunk)
	var ctl [24]byte
	var newPos uint64
	var oldPos int64
	left := patchSize // patch bytes not yet consumed
	read := func(b []byte) error {
		if _, err := io.ReadFull(patch, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return corrupt("patch ends early at offset %d", patchSize-left)
			}
			return fmt.Errorf("read patch: %w", err)
		}
		left -= int64(len(b))
		return nil
	}
	for newPos < newSize {
		if left < 24 {
			return corrupt("truncated control record at patch offset %d", patchSize-left)
		}
		if err := read(ctl[:]); err != nil {
			return err
		}
		diffLen, extraLen, seek := getInt(ctl[0:8]), getInt(ctl[8:16]), getInt(ctl[16:24])
		if diffLen < 0 || extraLen < 0 || uint64(diffLen) > newSize-newPos || uint64(extraLen) > newSize-newPos-uint64(diffLen) {
			return corrupt("record (%d, %d) overruns the new size %d at %d", diffLen, extraLen, newSize, newPos)
		}
		if left < diffLen+extraLen {
			return corrupt("truncated record data at patch offset %d", patchSize-left)
		}
		for done := int64(0); done < diffLen; {
			n := min(diffLen-done, chunk)
			b := buf[:n]
			if err := read(b); err != nil {
				return err
			}
			if err := addOld(old, oldSize, oldPos+done, b, oldBuf); err != nil {
				return err
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
			done += n
		}
		newPos += uint64(diffLen)
		oldPos += diffLen
		for done := int64(0); done < extraLen; {
			n := min(extraLen-done, chunk)
			b := buf[:n]
			if err := read(b); err != nil {
				return err
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
			done += n
		}
		newPos += uint64(extraLen)
		oldPos += seek
	}
	if left != 0 {
		return corrupt("%d bytes after the end of the new data", left)
	}
	return nil
}

// addOld adds old[pos:pos+len(b)] to b bytewise; the part of the range
// outside the old data contributes nothing.
func addOld(old io.ReaderAt, oldSize, pos int64, b, scratch []byte) error {
	lo, hi := max(pos, 0), min(pos+int64(len(b)), oldSize)
	if lo >= hi {
		return nil
	}
	src := scratch[:hi-lo]
	if n, err := old.ReadAt(src, lo); err != nil && !(errors.Is(err, io.EOF) && n == len(src)) {
		return fmt.Errorf("read old data at %d: %w", lo, err)
	}
	d := b[lo-pos:]
	for i, c := range src {
		d[i] += c
	}
	return nil
}
