package gvariant

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknownText is returned by ParseText for text in none of the forms
// it knows; callers word that error for their own users.
var ErrUnknownText = errors.New("not a known GVariant text form")

var annotationTypes = map[string]string{"i": "int32", "u": "uint32", "x": "int64", "t": "uint64", "s": "string", "b": "boolean"}

// ParseText parses the GVariant text forms people give metadata values in
// on command lines: true/false, 'string' or "string", ['a', 'b'] string
// lists, integers (int32, or with a type prefix such as "uint64 42"), and
// the type annotations "@t 42", "@s 'x'", "@b true". A bad number gives
// strconv's error; text in no known form gives ErrUnknownText.
func ParseText(s string) (Variant, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "true" || s == "false":
		return NewVariant("b", s == "true"), nil
	case len(s) >= 2 && (s[0] == '\'' && s[len(s)-1] == '\'' || s[0] == '"' && s[len(s)-1] == '"'):
		return NewVariant("s", s[1:len(s)-1]), nil
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		items := []Value{}
		for _, it := range strings.Split(strings.Trim(s, "[]"), ",") {
			if it = strings.TrimSpace(it); it == "" {
				continue
			}
			v, err := ParseText(it)
			if err != nil || v.Type.String() != "s" {
				return Variant{}, fmt.Errorf("only string lists are supported: %q", s)
			}
			items = append(items, v.Value)
		}
		return NewVariant("as", items), nil
	}
	if strings.HasPrefix(s, "@") {
		t, v, _ := strings.Cut(s[1:], " ")
		v = strings.TrimSpace(v)
		switch annotationTypes[t] {
		case "string":
			return NewVariant("s", strings.Trim(v, "'\"")), nil
		case "boolean":
			return NewVariant("b", v == "true"), nil
		case "":
			return Variant{}, fmt.Errorf("unsupported type annotation in %q", s)
		}
		s = annotationTypes[t] + " " + v
	}
	typ, num, hasType := strings.Cut(s, " ")
	if !hasType {
		typ, num = "int32", s
	}
	switch typ {
	case "int32":
		n, err := strconv.ParseInt(num, 0, 32)
		return NewVariant("i", int32(n)), err
	case "uint32":
		n, err := strconv.ParseUint(num, 0, 32)
		return NewVariant("u", uint32(n)), err
	case "int64":
		n, err := strconv.ParseInt(num, 0, 64)
		return NewVariant("x", n), err
	case "uint64":
		n, err := strconv.ParseUint(num, 0, 64)
		return NewVariant("t", n), err
	}
	return Variant{}, ErrUnknownText
}
