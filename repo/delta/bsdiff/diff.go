package bsdiff

import (
	"bytes"
)

// maxMatch caps how far one comparison looks. Without a cap, long runs of
// identical bytes (zero padding in binaries) make the search quadratic;
// with it a long match is found in pieces, costing one extra record per
// maxMatch bytes.
const maxMatch = 1 << 16

// Diff returns a patch that turns old into new. It finds, for each
// position of new, the longest match in old through a suffix array of
// old, and extends matches approximately (allowing mismatched bytes) so
// that code shifted by a few bytes still becomes a run of mostly-zero
// diff bytes, which compresses well.
//
// Memory use is about 9 bytes per byte of old while the suffix array is
// built, plus the inputs and the patch.
func Diff(old, new []byte) []byte {
	sa := sortSuffixes(old)
	out := make([]byte, 0, len(new)/8+64)
	var ctrl [24]byte
	emit := func(diffOld, diffNew, extra []byte, seek int) {
		putInt(ctrl[0:8], int64(len(diffNew)))
		putInt(ctrl[8:16], int64(len(extra)))
		putInt(ctrl[16:24], int64(seek))
		out = append(out, ctrl[:]...)
		for i := range diffNew {
			out = append(out, diffNew[i]-diffOld[i])
		}
		out = append(out, extra...)
	}

	scan, pos, length := 0, 0, 0
	lastScan, lastPos, lastOffset := 0, 0, 0
	for scan < len(new) {
		oldScore := 0
		scan += length
		// Look for the next position where an exact match beats simply
		// continuing the current alignment by more than a few bytes.
		for scsc := scan; scan < len(new); scan++ {
			pos, length = search(sa, old, new[scan:])
			for ; scsc < scan+length; scsc++ {
				if o := scsc + lastOffset; o >= 0 && o < len(old) && old[o] == new[scsc] {
					oldScore++
				}
			}
			if (length == oldScore && length != 0) || length > oldScore+8 {
				break
			}
			if o := scan + lastOffset; o >= 0 && o < len(old) && old[o] == new[scan] {
				oldScore--
			}
		}
		if length == oldScore && scan != len(new) {
			continue
		}
		// Extend the previous match forward while at least half the
		// bytes agree...
		lenF := 0
		for i, s, best := 0, 0, 0; lastScan+i < scan && lastPos+i < len(old); {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if 2*s-i > 2*best-lenF {
				best, lenF = s, i
			}
		}
		// ...and the new match backward, likewise.
		lenB := 0
		if scan < len(new) {
			for i, s, best := 1, 0, 0; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if 2*s-i > 2*best-lenB {
					best, lenB = s, i
				}
			}
		}
		// Where the two extensions overlap, split at the best point.
		if lastScan+lenF > scan-lenB {
			overlap := lastScan + lenF - (scan - lenB)
			s, best, lenS := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+lenF-overlap+i] == old[lastPos+lenF-overlap+i] {
					s++
				}
				if new[scan-lenB+i] == old[pos-lenB+i] {
					s--
				}
				if s > best {
					best, lenS = s, i+1
				}
			}
			lenF += lenS - overlap
			lenB -= lenS
		}
		emit(old[lastPos:lastPos+lenF], new[lastScan:lastScan+lenF],
			new[lastScan+lenF:scan-lenB], (pos-lenB)-(lastPos+lenF))
		lastScan, lastPos, lastOffset = scan-lenB, pos-lenB, pos-scan
	}
	return out
}

// matchLen returns the length of the common prefix of a and b, up to
// maxMatch.
func matchLen(a, b []byte) int {
	n := min(len(a), len(b), maxMatch)
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// search finds a longest prefix of s that occurs in old, by binary search
// over the suffix array.
func search(sa []int32, old, s []byte) (pos, length int) {
	if len(sa) == 0 || len(s) == 0 {
		return 0, 0
	}
	key := s[:min(len(s), maxMatch)]
	lo, hi := 0, len(sa)-1
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		suf := old[sa[mid]:]
		if bytes.Compare(suf[:min(len(suf), len(key))], key) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	a, b := matchLen(old[sa[lo]:], s), matchLen(old[sa[hi]:], s)
	if a >= b {
		return int(sa[lo]), a
	}
	return int(sa[hi]), b
}

// suffixArray sorts the suffixes of s by prefix doubling: after the round
// with step k every suffix is ranked by its first 2k bytes (the end of
// the data sorting first), using two stable counting sorts per round.
func suffixArray(s []byte) []int32 {
	n := len(s)
	if n == 0 {
		return nil
	}
	sa := make([]int32, n)
	rank := make([]int32, n)
	tmp := make([]int32, n)
	cnt := make([]int32, max(256, n)+1)
	for _, c := range s {
		cnt[int(c)+1]++
	}
	for i := 1; i <= 256; i++ {
		cnt[i] += cnt[i-1]
	}
	for i, c := range s {
		sa[cnt[c]] = int32(i)
		cnt[c]++
	}
	classes := int32(1)
	rank[sa[0]] = 0
	for i := 1; i < n; i++ {
		if s[sa[i]] != s[sa[i-1]] {
			classes++
		}
		rank[sa[i]] = classes - 1
	}
	for k := 1; int(classes) < n; k <<= 1 {
		// Order by the second key: suffixes too short to have one first
		// (each is already unique by its rank), then the rest in the
		// order of the suffix k positions later.
		p := 0
		for i := n - k; i < n; i++ {
			tmp[p] = int32(i)
			p++
		}
		for _, j := range sa {
			if int(j) >= k {
				tmp[p] = j - int32(k)
				p++
			}
		}
		// Stable counting sort by the first key.
		c := cnt[:classes+1]
		clear(c)
		for _, i := range tmp {
			c[rank[i]+1]++
		}
		for i := 1; i < len(c); i++ {
			c[i] += c[i-1]
		}
		for _, i := range tmp {
			sa[c[rank[i]]] = i
			c[rank[i]]++
		}
		second := func(i int32) int32 {
			if int(i)+k < n {
				return rank[int(i)+k]
			}
			return -1
		}
		classes = 1
		tmp[sa[0]] = 0
		for i := 1; i < n; i++ {
			a, b := sa[i-1], sa[i]
			if rank[a] != rank[b] || second(a) != second(b) {
				classes++
			}
			tmp[b] = classes - 1
		}
		rank, tmp = tmp, rank
	}
	return sa
}
