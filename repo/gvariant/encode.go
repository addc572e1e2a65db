package gvariant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Value is a decoded GVariant value; see the package documentation for the
// Go type that each GVariant type maps to.
type Value = any

// Variant is a value of type 'v': a value together with its own type.
type Variant struct {
	Type  *Type
	Value Value
}

// NewVariant wraps v with the type given as a string.
func NewVariant(typ string, v Value) Variant { return Variant{Type: MustParseType(typ), Value: v} }

// Maybe is a value of type 'm': Just Value, or Nothing when Valid is false.
type Maybe struct {
	Valid bool
	Value Value
}

// Marshal serializes v as type t in normal form.
func Marshal(t *Type, v Value) ([]byte, error) {
	return AppendValue(nil, t, v)
}

// AppendValue appends the serialization of v to dst. The value is laid out
// as if it started at offset 0, so dst's length must be a multiple of 8 for
// the result to be a valid standalone serialization.
func AppendValue(dst []byte, t *Type, v Value) ([]byte, error) {
	return appendValue(dst, len(dst), t, v)
}

func pad(dst []byte, base, align int) []byte {
	for (len(dst)-base)&(align-1) != 0 {
		dst = append(dst, 0)
	}
	return dst
}

func typeErr(t *Type, v Value) error {
	return fmt.Errorf("gvariant: cannot encode %T as %q", v, t.str)
}

func appendValue(dst []byte, base int, t *Type, v Value) ([]byte, error) {
	switch t.Kind {
	case 'y':
		x, ok := v.(uint8)
		if !ok {
			return nil, typeErr(t, v)
		}
		return append(dst, x), nil
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return nil, typeErr(t, v)
		}
		if x {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint16(dst, uint16(x)), nil
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint16(dst, x), nil
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint32(dst, uint32(x)), nil
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint32(dst, x), nil
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(dst, uint64(x)), nil
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(dst, x), nil
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return nil, typeErr(t, v)
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x)), nil
	case 's', 'o', 'g':
		x, ok := v.(string)
		if !ok {
			return nil, typeErr(t, v)
		}
		if err := checkString(t.Kind, x); err != nil {
			return nil, err
		}
		dst = append(dst, x...)
		return append(dst, 0), nil
	case 'v':
		x, ok := v.(Variant)
		if !ok || x.Type == nil {
			return nil, typeErr(t, v)
		}
		dst, err := appendValue(dst, base, x.Type, x.Value)
		if err != nil {
			return nil, err
		}
		dst = append(dst, 0)
		return append(dst, x.Type.str...), nil
	case 'm':
		x, ok := v.(Maybe)
		if !ok {
			return nil, typeErr(t, v)
		}
		if !x.Valid {
			return dst, nil
		}
		dst, err := appendValue(dst, base, t.Elem, x.Value)
		if err != nil {
			return nil, err
		}
		if t.Elem.fixed == 0 {
			dst = append(dst, 0)
		}
		return dst, nil
	case 'a':
		return appendArray(dst, base, t, v)
	case '(', '{':
		return appendTuple(dst, base, t, v)
	}
	return nil, fmt.Errorf("gvariant: unsupported type %q", t.str)
}

func appendArray(dst []byte, base int, t *Type, v Value) ([]byte, error) {
	if t.Elem.Kind == 'y' {
		x, ok := v.([]byte)
		if !ok {
			return nil, typeErr(t, v)
		}
		return append(dst, x...), nil
	}
	items, ok := v.([]Value)
	if !ok {
		return nil, typeErr(t, v)
	}
	if t.Elem.fixed != 0 {
		var err error
		for _, it := range items {
			if dst, err = appendValue(dst, base, t.Elem, it); err != nil {
				return nil, err
			}
		}
		return dst, nil
	}
	start := len(dst)
	ends := make([]int, 0, len(items))
	var err error
	for _, it := range items {
		dst = pad(dst, base, t.Elem.align)
		if dst, err = appendValue(dst, base, t.Elem, it); err != nil {
			return nil, err
		}
		ends = append(ends, len(dst)-start)
	}
	return appendOffsets(dst, len(dst)-start, ends, false), nil
}

func appendTuple(dst []byte, base int, t *Type, v Value) ([]byte, error) {
	items, ok := v.([]Value)
	if !ok {
		return nil, typeErr(t, v)
	}
	if len(items) != len(t.Fields) {
		return nil, fmt.Errorf("gvariant: %q needs %d members, got %d", t.str, len(t.Fields), len(items))
	}
	if len(t.Fields) == 0 {
		return append(dst, 0), nil
	}
	start := len(dst)
	var ends []int
	var err error
	for i, f := range t.Fields {
		dst = pad(dst, base, f.align)
		if dst, err = appendValue(dst, base, f, items[i]); err != nil {
			return nil, err
		}
		if f.fixed == 0 && i != len(t.Fields)-1 {
			ends = append(ends, len(dst)-start)
		}
	}
	if t.fixed != 0 {
		return pad(dst, base, t.align), nil
	}
	return appendOffsets(dst, len(dst)-start, ends, true), nil
}

// offsetSize is the framing offset width a container of total serialized
// size n must use.
func offsetSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 0xff:
		return 1
	case n <= 0xffff:
		return 2
	case uint64(n) <= 0xffffffff:
		return 4
	}
	return 8
}

// appendOffsets appends framing offsets for a body of the given size, with
// the smallest width that can address the whole container.
func appendOffsets(dst []byte, body int, ends []int, reverse bool) []byte {
	if len(ends) == 0 {
		return dst
	}
	w := 1
	for ; w < 8; w *= 2 {
		if uint64(body+len(ends)*w) <= uint64(1)<<(8*w)-1 {
			break
		}
	}
	for i := range ends {
		e := ends[i]
		if reverse {
			e = ends[len(ends)-1-i]
		}
		for b := 0; b < w; b++ {
			dst = append(dst, byte(uint64(e)>>(8*b)))
		}
	}
	return dst
}
