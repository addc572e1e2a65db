package bootloader

import (
	"fmt"
	"os"
	"strings"
)

// GrubEnv is grub's environment block (grubenv): a fixed-size file grub
// itself rewrites in place (save_env), so its size never changes. It
// starts with a signature line, holds "name=value" lines (a backslash
// escapes a backslash or a newline in a value) and is padded with '#'.
type GrubEnv struct {
	names  []string
	values map[string]string
}

// grubEnvSignature is the first line of every environment block.
const grubEnvSignature = "# GRUB Environment Block\n"

// GrubEnvSize is the size grub-editenv creates and grub expects.
const GrubEnvSize = 1024

// maxGrubEnv bounds what is read (grub accepts any size; ours are 1 KiB).
const maxGrubEnv = 64 << 10

// ReadGrubEnv reads an environment block.
func ReadGrubEnv(path string) (*GrubEnv, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env, err := ParseGrubEnv(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

// ParseGrubEnv parses the bytes of an environment block.
func ParseGrubEnv(b []byte) (*GrubEnv, error) {
	if len(b) > maxGrubEnv {
		return nil, fmt.Errorf("grub environment block of %d bytes is too large", len(b))
	}
	rest, ok := strings.CutPrefix(string(b), grubEnvSignature)
	if !ok {
		return nil, fmt.Errorf("not a grub environment block (no %q signature)", strings.TrimSpace(grubEnvSignature))
	}
	env := &GrubEnv{}
	for rest != "" {
		// One logical line: a backslash-newline continues it.
		var line strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '\n'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			line.WriteByte(rest[i])
		}
		raw := rest[:i]
		if i < len(rest) {
			i++
		}
		rest = rest[i:]
		if raw == "" || raw[0] == '#' {
			continue
		}
		// The name is never escaped; cut it from the raw line so an
		// escaped '=' in the value cannot move the split.
		name, _, ok := strings.Cut(raw, "=")
		if !ok {
			continue
		}
		env.Set(name, strings.TrimPrefix(line.String(), name+"="))
	}
	return env, nil
}

// Get returns a variable's value.
func (e *GrubEnv) Get(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

// Set sets a variable, keeping its place if it exists.
func (e *GrubEnv) Set(name, value string) {
	if e.values == nil {
		e.values = map[string]string{}
	}
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

// Delete removes a variable.
func (e *GrubEnv) Delete(name string) {
	if _, ok := e.values[name]; !ok {
		return
	}
	delete(e.values, name)
	for i, n := range e.names {
		if n == name {
			e.names = append(e.names[:i], e.names[i+1:]...)
			break
		}
	}
}

// Names lists the variables in file order.
func (e *GrubEnv) Names() []string { return append([]string(nil), e.names...) }

// Bytes renders the block at GrubEnvSize bytes; variables that do not
// fit are an error, as with grub-editenv.
func (e *GrubEnv) Bytes() ([]byte, error) {
	var b strings.Builder
	b.WriteString(grubEnvSignature)
	for _, n := range e.names {
		if n == "" || strings.ContainsAny(n, "=\n\\#") {
			return nil, fmt.Errorf("invalid grub environment variable name %q", n)
		}
		v := strings.NewReplacer(`\`, `\\`, "\n", "\\\n").Replace(e.values[n])
		b.WriteString(n + "=" + v + "\n")
	}
	if b.Len() > GrubEnvSize {
		return nil, fmt.Errorf("grub environment variables take %d bytes, more than the %d-byte block", b.Len(), GrubEnvSize)
	}
	return []byte(b.String() + strings.Repeat("#", GrubEnvSize-b.Len())), nil
}
