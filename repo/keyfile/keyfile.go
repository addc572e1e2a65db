// Package keyfile reads and writes GLib key files (the INI dialect of
// OSTree's repo config, origin files and remotes.d), keeping the order of
// groups, keys and comments so that a rewrite changes only what was set.
package keyfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

type line struct {
	key, value string // key is "" for comments and blank lines
	raw        string
}

type group struct {
	name   string
	lines  []line
	parsed bool // came from Parse: its surrounding blank lines are kept as read
}

// File is a parsed key file.
type File struct {
	head   []line // comments before the first group
	groups []*group
}

// New returns an empty key file.
func New() *File { return &File{} }

// Parse reads a key file. Lines outside a group, other than comments, and
// lines without '=' are errors naming the line.
func Parse(r io.Reader) (*File, error) {
	f := &File{}
	var cur *group
	// Lines end at '\n' only; a '\r' is kept as text so a rewrite of an
	// unchanged file reproduces it exactly.
	br := bufio.NewReader(r)
	n := 0
	for {
		raw, rerr := br.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, rerr
		}
		if rerr == io.EOF && raw == "" {
			break
		}
		raw = strings.TrimSuffix(raw, "\n")
		n++
		t := strings.TrimSpace(raw)
		switch {
		case t == "" || t[0] == '#':
			if cur == nil {
				f.head = append(f.head, line{raw: raw})
			} else {
				cur.lines = append(cur.lines, line{raw: raw})
			}
		case t[0] == '[':
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, fmt.Errorf("line %d: invalid group header %q", n, t)
			}
			name := t[1 : len(t)-1]
			if f.group(name) != nil {
				return nil, fmt.Errorf("line %d: duplicate group %q", n, name)
			}
			cur = &group{name: name, parsed: true}
			f.groups = append(f.groups, cur)
		default:
			if cur == nil {
				return nil, fmt.Errorf("line %d: key outside any group", n)
			}
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: expected key=value, got %q", n, t)
			}
			k = strings.TrimSpace(k)
			if k == "" {
				return nil, fmt.Errorf("line %d: empty key", n)
			}
			cur.lines = append(cur.lines, line{key: k, value: strings.TrimLeft(v, " \t")})
		}
		if rerr == io.EOF {
			break
		}
	}
	return f, nil
}

// ParseBytes parses b.
func ParseBytes(b []byte) (*File, error) { return Parse(bytes.NewReader(b)) }

func (f *File) group(name string) *group {
	for _, g := range f.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// Groups lists group names in file order.
func (f *File) Groups() []string {
	out := make([]string, len(f.groups))
	for i, g := range f.groups {
		out[i] = g.name
	}
	return out
}

// HasGroup reports whether the group exists.
func (f *File) HasGroup(name string) bool { return f.group(name) != nil }

// Keys lists the keys of a group in file order.
func (f *File) Keys(groupName string) []string {
	g := f.group(groupName)
	if g == nil {
		return nil
	}
	var out []string
	for _, l := range g.lines {
		if l.key != "" {
			out = append(out, l.key)
		}
	}
	return out
}

// Get returns the raw (unescaped) value of a key.
func (f *File) Get(groupName, key string) (string, bool) {
	g := f.group(groupName)
	if g == nil {
		return "", false
	}
	for i := len(g.lines) - 1; i >= 0; i-- { // the last occurrence wins, as in GLib
		if g.lines[i].key == key {
			return unescape(g.lines[i].value), true
		}
	}
	return "", false
}

// String returns a key's value, or def when it is absent.
func (f *File) String(groupName, key, def string) string {
	if v, ok := f.Get(groupName, key); ok {
		return v
	}
	return def
}

// Bool parses a boolean key ("true"/"false", also 1/0), with a default.
func (f *File) Bool(groupName, key string, def bool) (bool, error) {
	v, ok := f.Get(groupName, key)
	if !ok {
		return def, nil
	}
	switch strings.TrimSpace(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("[%s] %s: invalid boolean %q", groupName, key, v)
}

// List splits a ';'-separated list value.
func (f *File) List(groupName, key string) []string {
	v, ok := f.Get(groupName, key)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Set sets a key, creating the group as needed.
func (f *File) Set(groupName, key, value string) {
	g := f.group(groupName)
	if g == nil {
		g = &group{name: groupName}
		f.groups = append(f.groups, g)
	}
	for i := range g.lines {
		if g.lines[i].key == key {
			g.lines[i].value = escape(value)
			return
		}
	}
	// Append after the last key so trailing comments and blanks stay last.
	at := len(g.lines)
	for at > 0 && g.lines[at-1].key == "" {
		at--
	}
	g.lines = append(g.lines[:at], append([]line{{key: key, value: escape(value)}}, g.lines[at:]...)...)
}

// SetBool sets a boolean key.
func (f *File) SetBool(groupName, key string, v bool) { f.Set(groupName, key, strconv.FormatBool(v)) }

// SetList sets a ';'-separated list, with GLib's trailing separator.
func (f *File) SetList(groupName, key string, items []string) {
	f.Set(groupName, key, strings.Join(items, ";")+";")
}

// Delete removes a key.
func (f *File) Delete(groupName, key string) {
	g := f.group(groupName)
	if g == nil {
		return
	}
	out := g.lines[:0]
	for _, l := range g.lines {
		if l.key != key {
			out = append(out, l)
		}
	}
	g.lines = out
}

// DeleteGroup removes a group.
func (f *File) DeleteGroup(name string) {
	out := f.groups[:0]
	for _, g := range f.groups {
		if g.name != name {
			out = append(out, g)
		}
	}
	f.groups = out
}

// Bytes serializes the file.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.head {
		b.WriteString(l.raw + "\n")
	}
	for _, g := range f.groups {
		// GLib separates groups with a blank line; a group added by Set
		// gets one unless the text before it already ends with one.
		if !g.parsed && b.Len() > 0 && !endsBlank(b.Bytes()) {
			b.WriteString("\n")
		}
		b.WriteString("[" + g.name + "]\n")
		for _, l := range g.lines {
			if l.key == "" {
				b.WriteString(l.raw + "\n")
			} else {
				b.WriteString(l.key + "=" + l.value + "\n")
			}
		}
	}
	return b.Bytes()
}

func endsBlank(b []byte) bool { return len(b) == 0 || bytes.HasSuffix(b, []byte("\n\n")) }

// escape applies GLib's value escaping for the characters that need it.
func escape(s string) string {
	var b strings.Builder
	for i, c := range s {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == ' ' && i == 0:
			b.WriteString(`\s`)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
