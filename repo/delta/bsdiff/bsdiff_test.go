package bsdiff

import (
	"bytes"
	"errors"
	"math/rand"
	"sort"
	"testing"
)

func roundTrip(t *testing.T, old, new []byte) []byte {
	t.Helper()
	p := Diff(old, new)
	var out bytes.Buffer
	if err := Patch(bytes.NewReader(old), int64(len(old)), p, uint64(len(new)), &out); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatalf("round trip differs (old %d, new %d bytes)", len(old), len(new))
	}
	return p
}

func TestSuffixArray(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, s := range [][]byte{[]byte("a"), []byte("banana"), []byte("aaaaaaaaaa"), []byte("abababab\x00\xff\xff")} {
		checkSA(t, s)
	}
	for i := 0; i < 50; i++ {
		s := make([]byte, r.Intn(300)+1)
		for j := range s {
			s[j] = byte(r.Intn(3))
		}
		checkSA(t, s)
	}
}

func checkSA(t *testing.T, s []byte) {
	t.Helper()
	got := suffixArray(s)
	fast := sortSuffixes(s)
	want := make([]int32, len(s))
	for i := range want {
		want[i] = int32(i)
	}
	sort.Slice(want, func(a, b int) bool { return bytes.Compare(s[want[a]:], s[want[b]:]) < 0 })
	for i := range want {
		if got[i] != want[i] || fast[i] != want[i] {
			t.Fatalf("suffix array of %q: got %v, want %v", s, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	roundTrip(t, nil, nil)
	roundTrip(t, nil, []byte("hello"))
	roundTrip(t, []byte("hello"), nil)
	roundTrip(t, []byte("hello world"), []byte("hello, world!"))
	// A "recompiled binary": shared structure, inserted bytes, and
	// embedded addresses shifted by a constant.
	old := make([]byte, 300000)
	r.Read(old)
	for i := 0; i+8 < len(old); i += 64 {
		old[i] = 0xe8
	}
	new := append([]byte{}, old[:1000]...)
	new = append(new, []byte("inserted code here")...)
	new = append(new, old[1000:200000]...)
	for i := 2000; i < len(new); i += 64 {
		new[i+1]++
	}
	new = append(new, make([]byte, 5000)...)
	new = append(new, old[210000:]...)
	p := roundTrip(t, old, new)
	nonzero := 0
	for _, c := range p {
		if c != 0 {
			nonzero++
		}
	}
	if nonzero > len(new)/10 {
		t.Errorf("patch has %d non-zero bytes for a %d-byte file with small changes", nonzero, len(new))
	}
	for i := 0; i < 30; i++ {
		a := make([]byte, r.Intn(2000))
		r.Read(a)
		b := append([]byte{}, a...)
		for j := 0; j < r.Intn(20); j++ {
			if len(b) > 0 {
				b[r.Intn(len(b))] = byte(r.Intn(256))
			}
		}
		roundTrip(t, a, append(b, a[:len(a)/2]...))
	}
}

func TestPatchRejects(t *testing.T) {
	old := []byte("0123456789")
	p := Diff(old, []byte("0123456789abc"))
	for name, c := range map[string]struct {
		patch []byte
		size  uint64
	}{
		"truncated":     {p[:len(p)-1], 13},
		"too short new": {p, 12},
		"trailing":      {append(append([]byte{}, p...), 0), 13},
		"short control": {p[:10], 13},
	} {
		err := Patch(bytes.NewReader(old), int64(len(old)), c.patch, c.size, new(bytes.Buffer))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	// Negative lengths.
	bad := make([]byte, 24)
	putInt(bad[0:8], -1)
	if err := Patch(bytes.NewReader(old), 10, bad, 5, new(bytes.Buffer)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("negative diff length: %v", err)
	}
}

func TestSignMagnitude(t *testing.T) {
	var b [8]byte
	for _, x := range []int64{0, 1, -1, 143423, -143423, 1 << 40, -(1 << 62)} {
		putInt(b[:], x)
		if got := getInt(b[:]); got != x {
			t.Errorf("%d -> %x -> %d", x, b, got)
		}
	}
	putInt(b[:], -143423)
	if b[7] != 0x80 || b[0] != 0x3f {
		t.Errorf("-143423 encoded as %x", b)
	}
}

func FuzzPatch(f *testing.F) {
	f.Add([]byte("0123456789"), Diff([]byte("0123456789"), []byte("01234x6789abc")), uint16(13))
	f.Fuzz(func(t *testing.T, old, patch []byte, size uint16) {
		var out bytes.Buffer
		if err := Patch(bytes.NewReader(old), int64(len(old)), patch, uint64(size), &out); err == nil && out.Len() != int(size) {
			t.Fatalf("patch succeeded with %d bytes, want %d", out.Len(), size)
		}
	})
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("hello world"), []byte("hello, world"))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		roundTrip(t, old, new)
	})
}
