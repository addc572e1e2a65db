package bsdiff

import (
	"bytes"
	"encoding/binary"
	"index/suffixarray"
)

// sortSuffixes returns the suffix array of s. It uses the standard
// library's SA-IS construction (index/suffixarray), several times faster
// than prefix doubling, and reads the array back from the index's
// serialization (Index.Write: the data length and the data, then chunks
// each headed by their byte size, of uvarint suffix positions). Should
// that ever fail to decode into a permutation, it falls back to
// suffixArray.
func sortSuffixes(s []byte) []int32 {
	if len(s) == 0 {
		return nil
	}
	if len(s) < 1<<31-1 {
		if sa := fromIndex(s); sa != nil {
			return sa
		}
	}
	return suffixArray(s)
}

func fromIndex(s []byte) []int32 {
	var buf bytes.Buffer
	buf.Grow(len(s)*4 + 1<<16)
	if err := suffixarray.New(s).Write(&buf); err != nil {
		return nil
	}
	b := buf.Bytes()
	const w = binary.MaxVarintLen64
	if len(b) < w {
		return nil
	}
	if n, _ := binary.Varint(b[:w]); n != int64(len(s)) || len(b) < w+len(s) {
		return nil
	}
	b = b[w+len(s):]
	sa := make([]int32, 0, len(s))
	seen := make([]uint64, (len(s)+63)/64)
	for len(b) > 0 {
		if len(b) < w {
			return nil
		}
		size, _ := binary.Varint(b[:w])
		if size < w || size > int64(len(b)) {
			return nil
		}
		chunk := b[w:size]
		b = b[size:]
		for len(chunk) > 0 {
			x, k := binary.Uvarint(chunk)
			if k <= 0 || x >= uint64(len(s)) || seen[x/64]&(1<<(x%64)) != 0 {
				return nil
			}
			seen[x/64] |= 1 << (x % 64)
			sa = append(sa, int32(x))
			chunk = chunk[k:]
		}
	}
	if len(sa) != len(s) {
		return nil
	}
	return sa
}
