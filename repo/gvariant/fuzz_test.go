package gvariant

import (
	"bytes"
	"testing"
)

// Types used by OSTree's formats; every decoder must be total on them.
var fuzzTypes = []string{
	"(a{sv}aya(say)sstayay)",
	"(a(say)a(sayay))",
	"(uuua(ayay))",
	"(uuuusa(ayay))",
	"(tuuuusa(ayay))",
	"a{sv}",
	"(a(s(taya{sv}))a{sv})",
	"(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))",
	"(taya{sv})",
	"(a(uuu)aa(ayay)ayay)",
	"(yay)",
	"v",
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(uint8(0), []byte{0})
	f.Add(uint8(5), []byte("ostree.ref-binding\x00\x00\x00\x00\x00\x00test\x00\x05\x00as\x13\x22"))
	f.Add(uint8(11), []byte("\x01\x00u"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		typ := MustParseType(fuzzTypes[int(which)%len(fuzzTypes)])
		v, err := Unmarshal(typ, data)
		if err != nil {
			return
		}
		again, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("decoded value does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted non-canonical data %x (canonical %x)", data, again)
		}
	})
}
