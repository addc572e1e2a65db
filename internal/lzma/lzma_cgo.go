//go:build cgo

package lzma

/*
#cgo LDFLAGS: -llzma
#include <stdlib.h>
#include <string.h>
#include <lzma.h>

static lzma_stream *osu_lzma_new(void) {
	lzma_stream *s = calloc(1, sizeof(lzma_stream));
	if (s) {
		lzma_stream init = LZMA_STREAM_INIT;
		*s = init;
	}
	return s;
}

// One step of lzma_code on buffers passed for this call only: the stream
// keeps no pointer into Go memory once it returns.
static lzma_ret osu_lzma_code(lzma_stream *s, const uint8_t *in, size_t in_len, size_t *in_used,
		uint8_t *out, size_t out_len, size_t *out_used, int finish) {
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	lzma_ret r = lzma_code(s, finish ? LZMA_FINISH : LZMA_RUN);
	*in_used = in_len - s->avail_in;
	*out_used = out_len - s->avail_out;
	s->next_in = NULL;
	s->avail_in = 0;
	s->next_out = NULL;
	s->avail_out = 0;
	return r;
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

// Available tells whether this build has liblzma.
const Available = true

const inBuf = 64 << 10

// Reader decodes one .xz stream.
type Reader struct {
	s        *C.lzma_stream
	src      io.Reader
	in       []byte
	pos, end int
	srcEOF   bool
	done     bool
	err      error
	inUsed   C.size_t
	outUsed  C.size_t
}

// NewReader decodes the single .xz stream read from src (bytes after its
// end are not read past the decoder's input buffer and are ignored), with
// liblzma's check verification, refusing a stream that needs more than
// memlimit bytes of decoder memory.
func NewReader(src io.Reader, memlimit uint64) (*Reader, error) {
	s := C.osu_lzma_new()
	if s == nil {
		return nil, errors.New("xz: out of memory")
	}
	if rc := C.lzma_stream_decoder(s, C.uint64_t(memlimit), 0); rc != C.LZMA_OK {
		C.free(unsafe.Pointer(s))
		return nil, fmt.Errorf("xz: decoder init: %s", retString(rc))
	}
	z := &Reader{s: s, src: src, in: make([]byte, inBuf)}
	runtime.SetFinalizer(z, (*Reader).free)
	return z, nil
}

func (z *Reader) free() {
	if z.s != nil {
		C.lzma_end(z.s)
		C.free(unsafe.Pointer(z.s))
		z.s = nil
	}
}

// Close releases liblzma's memory (the decoder's dictionary) at once.
func (z *Reader) Close() error {
	z.free()
	runtime.SetFinalizer(z, nil)
	return nil
}

// Read decodes into p.
func (z *Reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.done {
		return 0, io.EOF
	}
	if z.s == nil {
		return 0, errors.New("xz: read after close")
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if z.pos == z.end && !z.srcEOF {
			n, err := z.src.Read(z.in)
			z.pos, z.end = 0, n
			if err == io.EOF {
				z.srcEOF = true
			} else if err != nil {
				z.err = err
				return 0, err
			}
			if n == 0 && !z.srcEOF {
				continue
			}
		}
		var inp *C.uint8_t
		if z.end > z.pos {
			inp = (*C.uint8_t)(unsafe.Pointer(&z.in[z.pos]))
		}
		finish := C.int(0)
		if z.srcEOF {
			finish = 1
		}
		rc := C.osu_lzma_code(z.s, inp, C.size_t(z.end-z.pos), &z.inUsed,
			(*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)), &z.outUsed, finish)
		runtime.KeepAlive(p)
		runtime.KeepAlive(z.in)
		z.pos += int(z.inUsed)
		n := int(z.outUsed)
		switch rc {
		case C.LZMA_OK:
			if n > 0 {
				return n, nil
			}
			if z.srcEOF && z.pos == z.end {
				z.err = fmt.Errorf("xz: %w", io.ErrUnexpectedEOF)
				return 0, z.err
			}
		case C.LZMA_STREAM_END:
			z.done = true
			z.free()
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		case C.LZMA_BUF_ERROR:
			// No progress possible: the input ended inside the stream.
			if n > 0 {
				return n, nil
			}
			z.err = fmt.Errorf("xz: %w", io.ErrUnexpectedEOF)
			return 0, z.err
		default:
			z.err = fmt.Errorf("xz: %s", retString(rc))
			if n > 0 {
				return n, nil
			}
			return 0, z.err
		}
	}
}

func retString(rc C.lzma_ret) string {
	switch rc {
	case C.LZMA_MEM_ERROR:
		return "out of memory"
	case C.LZMA_MEMLIMIT_ERROR:
		return "the stream needs more memory than allowed"
	case C.LZMA_FORMAT_ERROR:
		return "not in the .xz format"
	case C.LZMA_OPTIONS_ERROR:
		return "unsupported options"
	case C.LZMA_DATA_ERROR:
		return "compressed data is corrupt"
	case C.LZMA_UNSUPPORTED_CHECK:
		return "unsupported integrity check"
	case C.LZMA_PROG_ERROR:
		return "programming error"
	}
	return fmt.Sprintf("liblzma error %d", int(rc))
}
