package delta

import (
	"bytes"
	"hash/maphash"
)

// Content-defined chunking parameters: boundaries fall where a rolling
// hash of the last 64 bytes has its top chunkBits bits zero, so equal data
// splits the same way wherever it sits in a file (average chunk
// 2^chunkBits bytes).
const (
	chunkBits = 11
	minChunk  = 256
	maxChunk  = 64 << 10
)

// gear is the table of the rolling hash: 256 fixed pseudo-random words
// (splitmix64 of the byte value), identical on every run.
var gear = func() (g [256]uint64) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range g {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		g[i] = z ^ z>>31
	}
	return g
}()

// chunkBounds returns the end offsets of data's content-defined chunks.
func chunkBounds(data []byte) []int {
	const mask = uint64(1<<chunkBits-1) << (64 - chunkBits)
	var ends []int
	var h uint64
	start := 0
	for i, b := range data {
		h = h<<1 + gear[b]
		n := i + 1 - start
		if (n >= minChunk && h&mask == 0) || n >= maxChunk {
			ends = append(ends, i+1)
			start, h = i+1, 0
		}
	}
	if start < len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// segment is a run of the new file: copied from old at Off, or literal
// (Off < 0) from the new data.
type segment struct {
	Copy   bool
	Off    int // offset in old when Copy
	Len    int
	NewOff int
}

// rollsumMatch finds the chunks of new that also occur in old and returns
// new as a list of copy and literal segments. Matches are extended byte by
// byte in both directions, so a change costs about its own size rather
// than a whole chunk.
func rollsumMatch(old, new []byte) (segs []segment, literal int) {
	seed := maphash.MakeSeed()
	index := map[uint64]int{}
	start := 0
	for _, end := range chunkBounds(old) {
		h := maphash.Bytes(seed, old[start:end])
		if _, ok := index[h]; !ok {
			index[h] = start
		}
		start = end
	}
	add := func(s segment) {
		if s.Len == 0 {
			return
		}
		if n := len(segs); n > 0 {
			p := &segs[n-1]
			if p.Copy == s.Copy && (!s.Copy || p.Off+p.Len == s.Off) {
				p.Len += s.Len
				return
			}
		}
		segs = append(segs, s)
	}
	lit := 0 // start of the pending literal run in new
	pos := 0 // new data before pos is covered
	start = 0
	for _, end := range chunkBounds(new) {
		if end <= pos {
			start = end
			continue
		}
		s := max(start, pos)
		o, ok := index[maphash.Bytes(seed, new[start:end])]
		if !ok || o+end-start > len(old) || !bytes.Equal(old[o:o+end-start], new[start:end]) {
			start = end
			continue
		}
		o += s - start
		// Extend backwards into the pending literal run.
		for s > lit && o > 0 && old[o-1] == new[s-1] {
			s--
			o--
		}
		// And forwards past the chunk.
		e, oe := end, o+(end-s)
		for e < len(new) && oe < len(old) && old[oe] == new[e] {
			e++
			oe++
		}
		add(segment{Len: s - lit, NewOff: lit})
		add(segment{Copy: true, Off: o, Len: e - s, NewOff: s})
		lit, pos, start = e, e, end
	}
	add(segment{Len: len(new) - lit, NewOff: lit})
	for _, s := range segs {
		if !s.Copy {
			literal += s.Len
		}
	}
	return segs, literal
}
