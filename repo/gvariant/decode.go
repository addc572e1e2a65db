package gvariant

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// ErrNotNormal is wrapped by every decoding error: the data is truncated,
// malformed, or a valid but non-normal serialization.
var ErrNotNormal = errors.New("not in GVariant normal form")

func malformed(t *Type, format string, args ...any) error {
	return fmt.Errorf("gvariant: %q: %s: %w", t.str, fmt.Sprintf(format, args...), ErrNotNormal)
}

// Unmarshal decodes data as type t. It accepts only normal-form data: every
// value has a single valid serialization, and anything else is an error.
// Allocation is bounded by len(data).
func Unmarshal(t *Type, data []byte) (Value, error) {
	v, err := decode(t, data, 0, &budget{left: MaxValues(len(data))})
	if err != nil {
		return nil, err
	}
	// The structural checks below reject what GLib would treat as
	// non-normal, but a round trip is the definition of normal form and
	// catches anything they miss (it is cheap next to I/O).
	again, err := Marshal(t, v)
	if err != nil {
		return nil, malformed(t, "%v", err)
	}
	if !bytes.Equal(again, data) {
		return nil, malformed(t, "serialization is not canonical")
	}
	return v, nil
}

// MaxValues is how many values Unmarshal decodes from n bytes at most:
// half a value per byte (the densest OSTree data, a(uuu) mode tables,
// has a third) and never more than 2M. Each decoded value costs some 40
// bytes of memory, whatever its size in the input, so without this a
// few MiB of one-byte elements would cost GBs.
func MaxValues(n int) int { return min(n/2+1024, 2<<20) }

// budget counts down the values a decode may still produce. An array's
// item count is checked against it before the items' slice is allocated;
// each item is charged as it is decoded.
type budget struct{ left int }

func (b *budget) check(t *Type, n int) error {
	if n > b.left {
		return malformed(t, "more values than the %d allowed for this input", b.left)
	}
	return nil
}

func (b *budget) take(t *Type, n int) error {
	if n > b.left {
		return malformed(t, "more values than the %d allowed for this input", b.left)
	}
	b.left -= n
	return nil
}

func decode(t *Type, data []byte, depth int, b *budget) (Value, error) {
	if depth > MaxDepth {
		return nil, malformed(t, "nested deeper than %d", MaxDepth)
	}
	if err := b.take(t, 1); err != nil {
		return nil, err
	}
	if t.fixed != 0 && len(data) != t.fixed {
		return nil, malformed(t, "size %d, want %d", len(data), t.fixed)
	}
	switch t.Kind {
	case 'y':
		return data[0], nil
	case 'b':
		if data[0] > 1 {
			return nil, malformed(t, "boolean byte %d", data[0])
		}
		return data[0] == 1, nil
	case 'n':
		return int16(binary.LittleEndian.Uint16(data)), nil
	case 'q':
		return binary.LittleEndian.Uint16(data), nil
	case 'i', 'h':
		return int32(binary.LittleEndian.Uint32(data)), nil
	case 'u':
		return binary.LittleEndian.Uint32(data), nil
	case 'x':
		return int64(binary.LittleEndian.Uint64(data)), nil
	case 't':
		return binary.LittleEndian.Uint64(data), nil
	case 'd':
		return math.Float64frombits(binary.LittleEndian.Uint64(data)), nil
	case 's', 'o', 'g':
		if len(data) == 0 || data[len(data)-1] != 0 {
			return nil, malformed(t, "string lacks its terminating NUL")
		}
		s := string(data[:len(data)-1])
		if err := checkString(t.Kind, s); err != nil {
			return nil, malformed(t, "%v", err)
		}
		return s, nil
	case 'v':
		return decodeVariant(t, data, depth, b)
	case 'm':
		if len(data) == 0 {
			return Maybe{}, nil
		}
		child := data
		if t.Elem.fixed == 0 {
			if data[len(data)-1] != 0 {
				return nil, malformed(t, "maybe lacks its trailing zero byte")
			}
			child = data[:len(data)-1]
		}
		v, err := decode(t.Elem, child, depth+1, b)
		if err != nil {
			return nil, err
		}
		return Maybe{Valid: true, Value: v}, nil
	case 'a':
		return decodeArray(t, data, depth, b)
	case '(', '{':
		return decodeTuple(t, data, depth, b)
	}
	return nil, malformed(t, "unsupported type")
}

func decodeVariant(t *Type, data []byte, depth int, b *budget) (Value, error) {
	z := bytes.LastIndexByte(data, 0)
	if z < 0 {
		return nil, malformed(t, "variant has no type separator")
	}
	ts := string(data[z+1:])
	if len(ts) > 2*MaxDepth+2 {
		return nil, malformed(t, "variant type string too long")
	}
	ct, err := ParseType(ts)
	if err != nil {
		return nil, malformed(t, "variant type: %v", err)
	}
	v, err := decode(ct, data[:z], depth+1, b)
	if err != nil {
		return nil, err
	}
	return Variant{Type: ct, Value: v}, nil
}

func readOffset(b []byte) int {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if v > math.MaxInt32*2 {
		return -1 // larger than any slice we accept; callers compare against len
	}
	return int(v)
}

func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func decodeArray(t *Type, data []byte, depth int, b *budget) (Value, error) {
	e := t.Elem
	if e.Kind == 'y' {
		return data, nil
	}
	if e.fixed != 0 {
		if len(data)%e.fixed != 0 {
			return nil, malformed(t, "size %d is not a multiple of the element size %d", len(data), e.fixed)
		}
		if err := b.check(t, len(data)/e.fixed); err != nil {
			return nil, err
		}
		items := make([]Value, 0, len(data)/e.fixed)
		for off := 0; off < len(data); off += e.fixed {
			v, err := decode(e, data[off:off+e.fixed], depth+1, b)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		return items, nil
	}
	if len(data) == 0 {
		return []Value{}, nil
	}
	w := offsetSize(len(data))
	if len(data) < w {
		return nil, malformed(t, "truncated offset table")
	}
	tableStart := readOffset(data[len(data)-w:])
	if tableStart < 0 || tableStart > len(data)-w || (len(data)-tableStart)%w != 0 {
		return nil, malformed(t, "offset table start %d out of range", tableStart)
	}
	n := (len(data) - tableStart) / w
	if err := b.check(t, n); err != nil {
		return nil, err
	}
	items := make([]Value, 0, n)
	prev := 0
	for i := 0; i < n; i++ {
		end := readOffset(data[tableStart+i*w : tableStart+(i+1)*w])
		start := alignUp(prev, e.align)
		if end < start || end > tableStart || start > tableStart {
			return nil, malformed(t, "element %d bounds %d..%d invalid", i, start, end)
		}
		if !zeros(data[prev:start]) {
			return nil, malformed(t, "non-zero padding before element %d", i)
		}
		v, err := decode(e, data[start:end], depth+1, b)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		prev = end
	}
	if prev != tableStart {
		return nil, malformed(t, "gap before the offset table")
	}
	return items, nil
}

func decodeTuple(t *Type, data []byte, depth int, b *budget) (Value, error) {
	if len(t.Fields) == 0 {
		if data[0] != 0 {
			return nil, malformed(t, "unit byte is not zero")
		}
		return []Value{}, nil
	}
	w := 0
	framed := 0
	for i, f := range t.Fields {
		if f.fixed == 0 && i != len(t.Fields)-1 {
			framed++
		}
	}
	tableStart := len(data)
	if framed > 0 {
		w = offsetSize(len(data))
		if framed*w > len(data) {
			return nil, malformed(t, "truncated offset table")
		}
		tableStart = len(data) - framed*w
	}
	items := make([]Value, 0, len(t.Fields))
	pos := 0
	nextOffset := 0 // index of the next framing offset, counted from the end
	for i, f := range t.Fields {
		start := alignUp(pos, f.align)
		if start > tableStart {
			return nil, malformed(t, "member %d starts past the end", i)
		}
		if !zeros(data[pos:start]) {
			return nil, malformed(t, "non-zero padding before member %d", i)
		}
		var end int
		switch {
		case f.fixed != 0:
			end = start + f.fixed
		case i == len(t.Fields)-1:
			end = tableStart
		default:
			off := len(data) - (nextOffset+1)*w
			end = readOffset(data[off : off+w])
			nextOffset++
		}
		if end < start || end > tableStart {
			return nil, malformed(t, "member %d bounds %d..%d invalid", i, start, end)
		}
		v, err := decode(f, data[start:end], depth+1, b)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		pos = end
	}
	if t.fixed != 0 {
		if !zeros(data[pos:]) {
			return nil, malformed(t, "non-zero trailing padding")
		}
	} else if pos != tableStart {
		return nil, malformed(t, "gap before the offset table")
	}
	return items, nil
}

func checkString(kind byte, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("gvariant: string is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("gvariant: string contains a NUL byte")
	}
	switch kind {
	case 'o':
		if !validObjectPath(s) {
			return fmt.Errorf("gvariant: %q is not a valid object path", s)
		}
	case 'g':
		for i := 0; i < len(s); {
			_, n, err := parseType(s, i, 0)
			if err != nil {
				return fmt.Errorf("gvariant: %q is not a valid signature", s)
			}
			i = n
		}
	}
	return nil
}

func validObjectPath(s string) bool {
	if s == "/" {
		return true
	}
	if len(s) < 2 || s[0] != '/' || s[len(s)-1] == '/' {
		return false
	}
	prevSlash := true
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			if prevSlash {
				return false
			}
			prevSlash = true
		case c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			prevSlash = false
		default:
			return false
		}
	}
	return true
}
