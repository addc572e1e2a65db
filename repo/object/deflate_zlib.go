//go:build cgo

package object

/*
#cgo LDFLAGS: -lz
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// Raw deflate, as GLib's GZlibCompressor (G_ZLIB_COMPRESSOR_FORMAT_RAW)
// sets it up for libostree.
static int osu_deflate_init(z_stream *s, int level) {
	memset(s, 0, sizeof(*s));
	return deflateInit2(s, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// ZlibDeflate tells whether NewDeflater uses the system's zlib.
const ZlibDeflate = true

const zbuf = 64 << 10

// zlibDeflater drives zlib's deflate. The stream and both buffers live in
// C memory (zlib keeps pointers to them across calls); a finalizer frees
// them.
type zlibDeflater struct {
	s       *C.z_stream
	in, out *C.uchar
	w       io.Writer
	done    bool
	err     error
}

func newDeflater(w io.Writer, level int) (Deflater, error) {
	s := (*C.z_stream)(C.calloc(1, C.size_t(unsafe.Sizeof(C.z_stream{}))))
	if s == nil {
		return nil, errors.New("deflate: out of memory")
	}
	if rc := C.osu_deflate_init(s, C.int(level)); rc != C.Z_OK {
		C.free(unsafe.Pointer(s))
		return nil, fmt.Errorf("deflate: zlib init failed (%d)", int(rc))
	}
	d := &zlibDeflater{s: s, in: (*C.uchar)(C.malloc(zbuf)), out: (*C.uchar)(C.malloc(zbuf)), w: w}
	runtime.SetFinalizer(d, (*zlibDeflater).free)
	return d, nil
}

func (d *zlibDeflater) free() {
	C.deflateEnd(d.s)
	C.free(unsafe.Pointer(d.s))
	C.free(unsafe.Pointer(d.in))
	C.free(unsafe.Pointer(d.out))
}

// run feeds avail_in bytes (already in d.in) with flush and writes what
// zlib produces.
func (d *zlibDeflater) run(n int, flush C.int) error {
	d.s.next_in, d.s.avail_in = d.in, C.uInt(n)
	for {
		d.s.next_out, d.s.avail_out = d.out, zbuf
		rc := C.deflate(d.s, flush)
		if rc != C.Z_OK && rc != C.Z_STREAM_END && rc != C.Z_BUF_ERROR {
			return fmt.Errorf("deflate: zlib error %d", int(rc))
		}
		if produced := zbuf - int(d.s.avail_out); produced > 0 {
			if _, err := d.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(d.out)), produced)); err != nil {
				return err
			}
		}
		if flush == C.Z_FINISH {
			if rc == C.Z_STREAM_END {
				return nil
			}
			continue
		}
		if d.s.avail_in == 0 && d.s.avail_out != 0 {
			return nil
		}
	}
}

func (d *zlibDeflater) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.done {
		return 0, errors.New("deflate: write after close")
	}
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), zbuf)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(d.in)), n), p[:n])
		if d.err = d.run(n, C.Z_NO_FLUSH); d.err != nil {
			return total - len(p), d.err
		}
		p = p[n:]
	}
	runtime.KeepAlive(d)
	return total, nil
}

func (d *zlibDeflater) Close() error {
	if d.err != nil || d.done {
		return d.err
	}
	d.done = true
	d.err = d.run(0, C.Z_FINISH)
	runtime.KeepAlive(d)
	return d.err
}

func (d *zlibDeflater) Reset(w io.Writer) {
	C.deflateReset(d.s)
	d.w, d.done, d.err = w, false, nil
	runtime.KeepAlive(d)
}
