package bootloader

import (
	"fmt"
	"strings"
)

// Kargs is an ordered kernel command line.
type Kargs []string

// ParseKargs splits a command line at whitespace, keeping double-quoted
// values (key="a b") together as the kernel does.
func ParseKargs(s string) Kargs {
	var out Kargs
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ValidateArg checks one kernel argument against the rules of the kernel
// command line: not empty, no control characters (a newline, tab or
// carriage return would end the "options" line of a boot entry and let
// the rest be read as new lines), double quotes balanced, and no space
// outside quotes (a value with spaces is written key="a b").
func ValidateArg(a string) error {
	if a == "" {
		return fmt.Errorf("kernel argument is empty")
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("kernel argument %q contains the control character %q at byte %d", a, c, i)
		}
	}
	if strings.Count(a, `"`)%2 != 0 {
		return fmt.Errorf("kernel argument %q has unbalanced double quotes", a)
	}
	if k := ParseKargs(a); len(k) != 1 || k[0] != a {
		return fmt.Errorf("kernel argument %q contains a space outside quotes (write a value with spaces as key=\"a b\")", a)
	}
	return nil
}

// ValidateArgs checks every argument with ValidateArg.
func ValidateArgs(args []string) error {
	for _, a := range args {
		if err := ValidateArg(a); err != nil {
			return err
		}
	}
	return nil
}

// String joins the arguments with single spaces.
func (k Kargs) String() string { return strings.Join(k, " ") }

func kargKey(a string) string {
	key, _, _ := strings.Cut(a, "=")
	return key
}

// Get returns the value of the first argument with key, and whether one
// exists ("" for a bare flag).
func (k Kargs) Get(key string) (string, bool) {
	for _, a := range k {
		if kargKey(a) == key {
			_, v, _ := strings.Cut(a, "=")
			return v, true
		}
	}
	return "", false
}

// Append adds an argument at the end, even if its key is present.
func (k Kargs) Append(arg string) Kargs { return append(k, arg) }

// Replace sets KEY=VALUE (or a bare KEY): the first argument with that key
// takes the new value in place and any others are dropped; an absent key
// is appended. This is the meaning of `ostree admin deploy --karg`.
func (k Kargs) Replace(arg string) Kargs {
	key := kargKey(arg)
	out := make(Kargs, 0, len(k)+1)
	done := false
	for _, a := range k {
		if kargKey(a) != key {
			out = append(out, a)
		} else if !done {
			out = append(out, arg)
			done = true
		}
	}
	if !done {
		out = append(out, arg)
	}
	return out
}

// Delete removes arguments: "KEY" removes every argument with that key,
// "KEY=VALUE" only that exact one. It fails if nothing matched.
func (k Kargs) Delete(arg string) (Kargs, error) {
	exact := strings.Contains(arg, "=")
	out := make(Kargs, 0, len(k))
	for _, a := range k {
		if exact && a == arg || !exact && kargKey(a) == arg {
			continue
		}
		out = append(out, a)
	}
	if len(out) == len(k) {
		return k, fmt.Errorf("kernel argument %q is not set", arg)
	}
	return out, nil
}

// Without returns the arguments whose key is not key.
func (k Kargs) Without(key string) Kargs {
	out := make(Kargs, 0, len(k))
	for _, a := range k {
		if kargKey(a) != key {
			out = append(out, a)
		}
	}
	return out
}

// Equal reports whether two lists are identical.
func (k Kargs) Equal(o Kargs) bool {
	if len(k) != len(o) {
		return false
	}
	for i := range k {
		if k[i] != o[i] {
			return false
		}
	}
	return true
}

// ReplaceValue edits the arguments the way rpm-ostree's `kargs --replace`
// does (libostree's replace semantics), never appending:
//
//   - KEY=OLD=NEW replaces the argument KEY=OLD by KEY=NEW;
//   - KEY=VALUE (or a bare KEY) replaces the one argument with that key,
//     and fails when the key is absent or has several values (name the
//     one to replace with KEY=OLD=NEW).
//
// Values may contain '=' (root=UUID=...): KEY=OLD=NEW is tried at every
// '=' after the key for an existing KEY=OLD before the whole rest is
// taken as the new value.
func (k Kargs) ReplaceValue(arg string) (Kargs, error) {
	key, rest, hasValue := strings.Cut(arg, "=")
	if key == "" {
		return k, fmt.Errorf("replace %q: no key", arg)
	}
	var idx []int
	for i, a := range k {
		if kargKey(a) == key {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return k, fmt.Errorf("replace %q: kernel argument %s is not set (use --append to add it)", arg, key)
	}
	out := append(Kargs{}, k...)
	if hasValue {
		for j := 0; j < len(rest); j++ {
			if rest[j] != '=' {
				continue
			}
			old := key + "=" + rest[:j]
			for _, i := range idx {
				if k[i] == old {
					out[i] = key + "=" + rest[j+1:]
					return out, nil
				}
			}
		}
	}
	if len(idx) > 1 {
		vals := make([]string, len(idx))
		for n, i := range idx {
			vals[n] = k[i]
		}
		return k, fmt.Errorf("replace %q: kernel argument %s has %d values (%s): name the one to replace as KEY=OLD=NEW", arg, key, len(idx), strings.Join(vals, " "))
	}
	out[idx[0]] = arg
	return out, nil
}
