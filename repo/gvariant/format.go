package gvariant

import (
	"fmt"
	"strconv"
	"strings"
)

// Format renders a value in GVariant text format, as g_variant_print does
// without type annotations (what `ostree show --print-metadata-key` shows).
func Format(v Value, t *Type) string {
	var b strings.Builder
	format(&b, v, t)
	return b.String()
}

func format(b *strings.Builder, v Value, t *Type) {
	switch t.Kind {
	case 's', 'o', 'g':
		b.WriteString(quote(v.(string)))
	case 'b':
		b.WriteString(strconv.FormatBool(v.(bool)))
	case 'v':
		x := v.(Variant)
		b.WriteString("<")
		format(b, x.Value, x.Type)
		b.WriteString(">")
	case 'm':
		x := v.(Maybe)
		if !x.Valid {
			b.WriteString("nothing")
			return
		}
		format(b, x.Value, t.Elem)
	case 'a':
		if t.Elem.Kind == 'y' {
			data := v.([]byte)
			if isPrintableBytestring(data) {
				b.WriteString("b" + quote(string(data[:len(data)-1])))
				return
			}
			b.WriteString("[")
			for i, c := range data {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(b, "0x%02x", c)
			}
			b.WriteString("]")
			return
		}
		items := v.([]Value)
		if t.Elem.Kind == '{' {
			b.WriteString("{")
			for i, it := range items {
				if i > 0 {
					b.WriteString(", ")
				}
				kv := it.([]Value)
				format(b, kv[0], t.Elem.Fields[0])
				b.WriteString(": ")
				format(b, kv[1], t.Elem.Fields[1])
			}
			b.WriteString("}")
			return
		}
		b.WriteString("[")
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			format(b, it, t.Elem)
		}
		b.WriteString("]")
	case '(', '{':
		items := v.([]Value)
		b.WriteString("(")
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			format(b, it, t.Fields[i])
		}
		if len(items) == 1 {
			b.WriteString(",")
		}
		b.WriteString(")")
	default:
		fmt.Fprint(b, v)
	}
}

func isPrintableBytestring(d []byte) bool {
	if len(d) == 0 || d[len(d)-1] != 0 {
		return false
	}
	for _, c := range d[:len(d)-1] {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

func quote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
