// Package bootloader writes boot entries and makes them current with one
// atomic step.
//
// Boot Loader Specification entries (read by grub2's blscfg and by
// systemd-boot) are always written, in the layout libostree uses:
// /boot/loader.N/entries/*.conf behind the /boot/loader symlink. A native
// configuration for grub2, syslinux/extlinux or u-boot is written next to
// them in the same loader.N directory, so the single rename of the loader
// symlink switches every bootloader at once.
package bootloader

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Entry is one boot entry: ordered "key value" lines. Keys may repeat
// (a second initrd line is an overlay initrd).
type Entry struct {
	// Name is the file name under entries/, e.g. "ostree-2-debian.conf".
	Name  string
	Lines []KV
}

// KV is one key and its value.
type KV struct{ Key, Value string }

// Get returns the first value of key.
func (e *Entry) Get(key string) string {
	for _, kv := range e.Lines {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// GetAll returns every value of key, in order.
func (e *Entry) GetAll(key string) []string {
	var out []string
	for _, kv := range e.Lines {
		if kv.Key == key {
			out = append(out, kv.Value)
		}
	}
	return out
}

// Set replaces the first value of key, or appends the key.
func (e *Entry) Set(key, value string) {
	for i, kv := range e.Lines {
		if kv.Key == key {
			e.Lines[i].Value = value
			return
		}
	}
	e.Lines = append(e.Lines, KV{key, value})
}

// Add appends a line even if the key exists.
func (e *Entry) Add(key, value string) { e.Lines = append(e.Lines, KV{key, value}) }

// Validate checks that rendering the entry gives exactly one line per
// key: keys start with a letter and hold no whitespace or control
// characters, values hold no control characters but tabs. A value with a
// newline would add lines (a second "linux" or "initrd") to the entry.
func (e *Entry) Validate() error {
	for _, kv := range e.Lines {
		if kv.Key == "" || !isLetter(kv.Key[0]) {
			return fmt.Errorf("boot entry %s: invalid key %q", e.Name, kv.Key)
		}
		for i := 0; i < len(kv.Key); i++ {
			if c := kv.Key[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("boot entry %s: invalid key %q", e.Name, kv.Key)
			}
		}
		if err := checkValue(kv.Value); err != nil {
			return fmt.Errorf("boot entry %s: %s: %w", e.Name, kv.Key, err)
		}
	}
	return nil
}

// checkValue refuses control characters (but tab) in a value that is
// written on one line of a configuration file.
func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("value %q contains the control character %q, which would add a line", v, c)
		}
	}
	return nil
}

// Bytes renders the entry as a BLS file.
func (e *Entry) Bytes() []byte {
	var b bytes.Buffer
	for _, kv := range e.Lines {
		b.WriteString(kv.Key)
		b.WriteByte(' ')
		b.WriteString(kv.Value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// maxEntrySize bounds an entry file read from /boot.
const maxEntrySize = 1 << 20

// ParseEntry reads a BLS entry. As in libostree, only lines that start with
// a letter are parsed, and each is split at its first space or tab.
func ParseEntry(name string, data []byte) (*Entry, error) {
	if len(data) > maxEntrySize {
		return nil, fmt.Errorf("boot entry %s: %d bytes is too large", name, len(data))
	}
	e := &Entry{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxEntrySize)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || !isLetter(line[0]) {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimRight(line, "\r"), " ")
		if i := strings.IndexByte(k, '\t'); i >= 0 {
			k, v = line[:i], line[i+1:]
		}
		e.Lines = append(e.Lines, KV{k, strings.TrimLeft(v, " \t")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("boot entry %s: %w", name, err)
	}
	return e, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// CompareVersions orders two BLS "version" values like glibc's strverscmp
// does for the digit runs libostree compares: numerically where both are
// numbers, bytewise otherwise. It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			i, j := digitRun(a), digitRun(b)
			na, nb := strings.TrimLeft(a[:i], "0"), strings.TrimLeft(b[:j], "0")
			if len(na) != len(nb) {
				return sign(len(na) - len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return sign(int(a[0]) - int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return sign(len(a) - len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
