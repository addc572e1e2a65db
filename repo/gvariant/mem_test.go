package gvariant

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// TestUnmarshalMemory: whatever the element type, decoding allocates a
// bounded multiple of MaxValues, and input denser in values than
// MaxValues allows (a 40 MiB array of one-byte elements would otherwise
// cost ~1.8 GB) is refused before its items are allocated.
func TestUnmarshalMemory(t *testing.T) {
	alloc := func(fn func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		fn()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	mk := func(typ string, n int, v Value) []byte {
		items := make([]Value, n)
		for i := range items {
			items[i] = v
		}
		b, err := Marshal(MustParseType(typ), items)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const bound = 200 << 20
	for _, c := range []struct {
		typ string
		v   Value
	}{
		{"a()", []Value{}},
		{"ab", true},
		{"aq", uint16(1000)},
		{"as", ""},
		{"a(yy)", []Value{uint8(1), uint8(2)}},
		{"av", NewVariant("()", []Value{})},
	} {
		// Far above the cap: refused.
		big := mk(c.typ, 8<<20, c.v) // 8M values: ~350 MB if decoded
		var err error
		a := alloc(func() { _, err = Unmarshal(MustParseType(c.typ), big) })
		if err == nil || !errors.Is(err, ErrNotNormal) || !strings.Contains(err.Error(), "more values") {
			t.Errorf("%s: %d MiB: %v", c.typ, len(big)>>20, err)
		}
		if a > bound {
			t.Errorf("%s: refusing %d MiB allocated %d MiB", c.typ, len(big)>>20, a>>20)
		}
		big = nil
		// The densest input that is accepted.
		n := 0
		for _, try := range []int{MaxValues(1<<30) - 1, 1 << 20, 1 << 19, 1 << 16, 2000, 1000, 500, 100} {
			n = try
			data := mk(c.typ, n, c.v)
			var v Value
			a := alloc(func() { v, err = Unmarshal(MustParseType(c.typ), data) })
			if err != nil {
				continue
			}
			t.Logf("%s: %d values in %d KiB decoded with %d MiB allocated", c.typ, n, len(data)>>10, a>>20)
			if a > bound {
				t.Errorf("%s: %d values allocated %d MiB", c.typ, n, a>>20)
			}
			_ = v
			n = -1
			break
		}
		if n != -1 {
			t.Errorf("%s: nothing decodes", c.typ)
		}
	}
}
