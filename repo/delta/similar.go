package delta

import "encoding/binary"

// Similarity sampling: before computing a rollsum or bsdiff encoding of
// a file against its source, check that they share byte sequences at
// all. A handful of short windows of the new file are looked up in one
// pass over the old file; if almost none occurs in it, neither encoding
// can beat sending the file whole.
const (
	shareSamples = 128
	shareWindow  = 6 // bytes; random data of 100 MB hardly ever repeats 6 bytes of another file
	// shareMin of shareSamples must be found: below it at most a few
	// percent of the file could be copied.
	shareMin = 8
	// Files below this are diffed without sampling: it costs little.
	shareMinSize = 16 << 10
)

const windowMask = 1<<(8*shareWindow) - 1

// mayShare reports whether a diff of new against old may pay off.
func mayShare(old, new []byte) bool {
	if len(new) < shareMinSize || len(old) < 8 {
		return true
	}
	// The sampled windows, in a 64 Ki-bit filter and a map for exact checks.
	var filter [1 << 10]uint64
	samples := make(map[uint64]int, shareSamples)
	for i := 0; i < shareSamples; i++ {
		off := (len(new) - 8) * i / (shareSamples - 1)
		v := binary.LittleEndian.Uint64(new[off:]) & windowMask
		h := hashWindow(v)
		filter[h>>6] |= 1 << (h & 63)
		samples[v]++
	}
	found := 0
	for i := 0; i+8 <= len(old); i++ {
		v := binary.LittleEndian.Uint64(old[i:]) & windowMask
		h := hashWindow(v)
		if filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		if n, ok := samples[v]; ok && n > 0 {
			found += n
			samples[v] = 0 // count each distinct window once
			if found >= shareMin {
				return true
			}
		}
	}
	return false
}

func hashWindow(v uint64) uint64 { return (v * 0x9E3779B97F4A7C15) >> 48 }
