package gvariant

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
)

func TestParseText(t *testing.T) {
	for _, c := range []struct {
		in  string
		typ string
		val Value
	}{
		{"true", "b", true},
		{" false ", "b", false},
		{"'hello world'", "s", "hello world"},
		{`"x"`, "s", "x"},
		{"''", "s", ""},
		{"5", "i", int32(5)},
		{"-0x10", "i", int32(-16)},
		{"int32 -7", "i", int32(-7)},
		{"uint32 4000000000", "u", uint32(4000000000)},
		{"int64 -9000000000", "x", int64(-9000000000)},
		{"uint64 7", "t", uint64(7)},
		{"@t 42", "t", uint64(42)},
		{"@i -1", "i", int32(-1)},
		{"@u 3", "u", uint32(3)},
		{"@x 9", "x", int64(9)},
		{"@s 'a'", "s", "a"},
		{"@b true", "b", true},
		{"['a', \"b\" , 'c d']", "as", []Value{"a", "b", "c d"}},
		{"[]", "as", []Value{}},
	} {
		v, err := ParseText(c.in)
		if err != nil {
			t.Errorf("ParseText(%q): %v", c.in, err)
			continue
		}
		if v.Type.String() != c.typ || !reflect.DeepEqual(v.Value, c.val) {
			t.Errorf("ParseText(%q) = %s %#v, want %s %#v", c.in, v.Type, v.Value, c.typ, c.val)
		}
	}
}

func TestParseTextErrors(t *testing.T) {
	var numErr *strconv.NumError
	for _, in := range []string{"hello", "int32 3000000000", "uint32 -1", "uint64 x", "@t nope"} {
		if _, err := ParseText(in); !errors.As(err, &numErr) {
			t.Errorf("ParseText(%q): got %v, want strconv's number error", in, err)
		}
	}
	for _, in := range []string{"float 1.5", "string x"} {
		if _, err := ParseText(in); !errors.Is(err, ErrUnknownText) {
			t.Errorf("ParseText(%q): got %v, want ErrUnknownText", in, err)
		}
	}
	for _, in := range []string{"['a', 5]", "@q 1"} {
		if _, err := ParseText(in); err == nil || errors.Is(err, ErrUnknownText) {
			t.Errorf("ParseText(%q): got %v, want a specific error", in, err)
		}
	}
}
