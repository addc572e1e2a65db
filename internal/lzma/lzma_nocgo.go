//go:build !cgo

package lzma

import (
	"errors"
	"io"
)

// Available tells whether this build has liblzma.
const Available = false

// Reader decodes one .xz stream (not in this build).
type Reader struct{}

// NewReader fails: this build has no liblzma.
func NewReader(src io.Reader, memlimit uint64) (*Reader, error) {
	return nil, errors.New("xz: built without cgo, no liblzma")
}

func (z *Reader) Read(p []byte) (int, error) { return 0, io.EOF }

// Close does nothing.
func (z *Reader) Close() error { return nil }
