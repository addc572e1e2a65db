package object

import "io"

// Deflater compresses to raw deflate (RFC 1951), the data format of
// .filez objects, and can be reset to a new destination and reused.
// Built with cgo it is the system's zlib with libostree's parameters
// (level, 32 KiB window, memLevel 8, default strategy), so .filez
// objects come out byte-identical to libostree's; without cgo it is a
// pure-Go encoder whose output is some 5% larger at level 6.
type Deflater interface {
	io.WriteCloser
	// Reset discards the state and starts a new stream to w.
	Reset(w io.Writer)
}

// NewDeflater returns a raw-deflate compressor at level (1-9) writing to w.
func NewDeflater(w io.Writer, level int) (Deflater, error) {
	return newDeflater(w, level)
}
