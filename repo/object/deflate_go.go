//go:build !cgo

package object

import (
	"io"

	"github.com/klauspost/compress/flate"
)

// ZlibDeflate tells whether NewDeflater uses the system's zlib.
const ZlibDeflate = false

func newDeflater(w io.Writer, level int) (Deflater, error) {
	return flate.NewWriter(w, level)
}
