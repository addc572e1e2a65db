package gvariant

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from objects written by libostree 2022.7 (see the format notes).
func TestKnownSerializations(t *testing.T) {
	cases := []struct {
		typ string
		val Value
		hex string
	}{
		{"(a(say)a(sayay))", []Value{[]Value{}, []Value{}}, "00"},
		{"(uuua(ayay))", []Value{uint32(0), uint32(0), uint32(0xed410000), []Value{}}, "00000000" + "00000000" + "000041ed"},
		{"(uuuusa(ayay))", []Value{uint32(0), uint32(0), uint32(0xa4810000), uint32(0), "", []Value{}}, "00000000000000000000" + "81a4" + "00000000" + "00" + "11"},
		{"a{sv}", []Value{[]Value{"ostree.ref-binding", NewVariant("as", []Value{"test"})}},
			hex.EncodeToString([]byte("ostree.ref-binding\x00")) + "0000000000" + hex.EncodeToString([]byte("test\x00")) + "05" + "00" + hex.EncodeToString([]byte("as")) + "13" + "22"},
		{"(yy)", []Value{uint8(1), uint8(2)}, "0102"},
		{"(ty)", []Value{uint64(1), uint8(2)}, "0100000000000000" + "02" + "00000000000000"},
		{"()", []Value{}, "00"},
		{"ms", Maybe{Valid: true, Value: "a"}, "610000"},
		{"mu", Maybe{}, ""},
		{"as", []Value{"a", "", "bc"}, "6100" + "00" + "626300" + "020306"},
	}
	for _, c := range cases {
		typ := MustParseType(c.typ)
		got, err := Marshal(typ, c.val)
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		want := mustHex(t, c.hex)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x, want %x", c.typ, got, want)
		}
		back, err := Unmarshal(typ, want)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.typ, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(c.val)) {
			t.Errorf("%s: decoded %#v, want %#v", c.typ, back, c.val)
		}
	}
}

// normalize makes variant types comparable by their strings.
func normalize(v Value) Value {
	switch x := v.(type) {
	case Variant:
		return [2]any{x.Type.String(), normalize(x.Value)}
	case []Value:
		out := make([]Value, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	case Maybe:
		return Maybe{x.Valid, normalize(x.Value)}
	}
	return v
}

func TestLargeOffsets(t *testing.T) {
	// Enough data to force 2-byte and 4-byte framing offsets.
	for _, n := range []int{10, 300, 70000} {
		typ := MustParseType("aay")
		items := []Value{bytes.Repeat([]byte{7}, n), []byte("x"), []byte{}}
		b, err := Marshal(typ, items)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(typ, b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !reflect.DeepEqual(back, items) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestRejectsMalformed(t *testing.T) {
	cases := []struct {
		typ, hex, why string
	}{
		{"b", "02", "boolean out of range"},
		{"u", "000000", "truncated fixed"},
		{"s", "6162", "missing NUL"},
		{"s", "610062" + "00", "embedded NUL"},
		{"s", "ff00", "invalid UTF-8"},
		{"as", "6100" + "05", "offset past end"},
		{"(uuua(ayay))", "0000000000000000000041ed00", "trailing garbage in fixed prefix"},
		{"(say)", "610001" + "01", "string cut before its NUL"},
		{"(ty)", "0100000000000000" + "02" + "00000000000001", "non-zero padding"},
		{"v", "0000", "empty variant type"},
		{"v", "01" + "00" + "7a", "unknown variant type"},
		{"a(say)", "6100" + "02", "truncated element"},
		{"o", "2f612f00", "object path with trailing slash"},
		{"au", "01000000" + "02", "size not a multiple"},
	}
	for _, c := range cases {
		_, err := Unmarshal(MustParseType(c.typ), mustHex(t, c.hex))
		if err == nil {
			t.Errorf("%s %s (%s): decoded, want error", c.typ, c.hex, c.why)
		} else if !errors.Is(err, ErrNotNormal) {
			t.Errorf("%s: error %v does not wrap ErrNotNormal", c.why, err)
		}
	}
}

func TestNonMinimalOffsetsRejected(t *testing.T) {
	// "as" ["a"] with 2-byte offsets instead of 1-byte ones.
	if _, err := Unmarshal(MustParseType("as"), mustHex(t, "61000200")); err == nil {
		t.Fatal("non-minimal offset width accepted")
	}
}

func TestParseType(t *testing.T) {
	for _, good := range []string{"(a{sv}aya(say)sstayay)", "a{sa(s(taya{sv}))}", "(a(uuu)aa(ayay)ayay)", "mv", "()", "g"} {
		if _, err := ParseType(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"", "a", "(u", "{vs}", "{s}", "{sss}", "uu", "z", string(bytes.Repeat([]byte("a"), 200)) + "y"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("%q: parsed, want error", bad)
		}
	}
	if got := MustParseType("(uuu)").FixedSize(); got != 12 {
		t.Errorf("(uuu) size %d", got)
	}
	if got := MustParseType("(yt)").FixedSize(); got != 16 {
		t.Errorf("(yt) size %d", got)
	}
	if got := MustParseType("{sv}").Alignment(); got != 8 {
		t.Errorf("{sv} align %d", got)
	}
}
