// Package gvariant encodes and decodes GLib's GVariant serialization format,
// strictly: only data in normal form decodes, so every value has exactly one
// byte representation and checksums over serialized bytes are well defined.
//
// Values map to Go types as follows:
//
//	y uint8   b bool    n int16   q uint16  i int32   h int32
//	u uint32  x int64   t uint64  d float64 s, o, g string
//	v Variant           ay []byte           a<T> []Value
//	(…) and {KV} []Value                    m<T> Maybe
//
// Decoded []byte and string values may alias the input.
package gvariant

import (
	"fmt"
	"strings"
	"sync"
)

// MaxDepth bounds container nesting, both in type strings and in data, so
// hostile input cannot exhaust the stack. GLib uses 128.
const MaxDepth = 64

// Type is a parsed, definite GVariant type.
type Type struct {
	Kind   byte    // the type character; '(' for tuples, '{' for dict entries
	Elem   *Type   // element type of 'a' and 'm'
	Fields []*Type // members of '(' and '{'
	str    string
	align  int // alignment in bytes (1, 2, 4 or 8)
	fixed  int // fixed serialized size, or 0 when the size is variable
}

func (t *Type) String() string { return t.str }

// Alignment returns the type's alignment in bytes.
func (t *Type) Alignment() int { return t.align }

// FixedSize returns the serialized size of a fixed-size type, or 0 when the
// size varies with the value.
func (t *Type) FixedSize() int { return t.fixed }

var typeCache sync.Map // string -> *Type

// ParseType parses exactly one complete, definite type.
func ParseType(s string) (*Type, error) {
	if t, ok := typeCache.Load(s); ok {
		return t.(*Type), nil
	}
	t, n, err := parseType(s, 0, 0)
	if err != nil {
		return nil, err
	}
	if n != len(s) {
		return nil, fmt.Errorf("gvariant: type %q: trailing characters after %q", s, s[:n])
	}
	typeCache.Store(s, t)
	return t, nil
}

// MustParseType is ParseType for types written in the program.
func MustParseType(s string) *Type {
	t, err := ParseType(s)
	if err != nil {
		panic(err)
	}
	return t
}

func isBasic(c byte) bool { return strings.IndexByte("ybnqihuxtdsog", c) >= 0 }

func parseType(s string, i, depth int) (*Type, int, error) {
	if depth > MaxDepth {
		return nil, 0, fmt.Errorf("gvariant: type %q nests deeper than %d", s, MaxDepth)
	}
	if i >= len(s) {
		return nil, 0, fmt.Errorf("gvariant: type %q is incomplete", s)
	}
	c := s[i]
	switch c {
	case 'y', 'b':
		return &Type{Kind: c, str: s[i : i+1], align: 1, fixed: 1}, i + 1, nil
	case 'n', 'q':
		return &Type{Kind: c, str: s[i : i+1], align: 2, fixed: 2}, i + 1, nil
	case 'i', 'u', 'h':
		return &Type{Kind: c, str: s[i : i+1], align: 4, fixed: 4}, i + 1, nil
	case 'x', 't', 'd':
		return &Type{Kind: c, str: s[i : i+1], align: 8, fixed: 8}, i + 1, nil
	case 's', 'o', 'g':
		return &Type{Kind: c, str: s[i : i+1], align: 1}, i + 1, nil
	case 'v':
		return &Type{Kind: c, str: "v", align: 8}, i + 1, nil
	case 'a', 'm':
		elem, n, err := parseType(s, i+1, depth+1)
		if err != nil {
			return nil, 0, err
		}
		return &Type{Kind: c, Elem: elem, str: s[i:n], align: elem.align}, n, nil
	case '(', '{':
		closer := byte(')')
		if c == '{' {
			closer = '}'
		}
		t := &Type{Kind: c, align: 1}
		j := i + 1
		for {
			if j >= len(s) {
				return nil, 0, fmt.Errorf("gvariant: type %q: unterminated %c", s, c)
			}
			if s[j] == closer {
				j++
				break
			}
			f, n, err := parseType(s, j, depth+1)
			if err != nil {
				return nil, 0, err
			}
			t.Fields = append(t.Fields, f)
			j = n
		}
		if c == '{' {
			if len(t.Fields) != 2 {
				return nil, 0, fmt.Errorf("gvariant: type %q: a dict entry has exactly two members", s)
			}
			if !isBasic(t.Fields[0].Kind) {
				return nil, 0, fmt.Errorf("gvariant: type %q: a dict entry key must be a basic type", s)
			}
		}
		t.str = s[i:j]
		t.computeTupleLayout()
		return t, j, nil
	}
	return nil, 0, fmt.Errorf("gvariant: type %q: unknown type character %q", s, c)
}

// computeTupleLayout sets alignment and fixed size of a tuple or dict entry.
func (t *Type) computeTupleLayout() {
	if len(t.Fields) == 0 {
		t.align, t.fixed = 1, 1 // the unit type is one zero byte
		return
	}
	fixed := true
	off := 0
	for _, f := range t.Fields {
		if f.align > t.align {
			t.align = f.align
		}
		if f.fixed == 0 {
			fixed = false
			continue
		}
		off = alignUp(off, f.align) + f.fixed
	}
	if fixed {
		t.fixed = alignUp(off, t.align)
	}
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }
