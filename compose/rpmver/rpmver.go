// Package rpmver compares RPM versions the way rpm's rpmvercmp does, and
// parses and compares epoch:version-release triples (EVRs).
package rpmver

import (
	"fmt"
	"strconv"
	"strings"
)

func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// Compare compares two version (or release) strings with rpm's algorithm:
// segments of digits compare numerically, segments of letters compare
// bytewise, a numeric segment is newer than an alphabetic one, '~' sorts
// before everything (even the end of the string) and '^' sorts after the
// end of the string but before any other segment. It returns -1, 0 or 1.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	for len(a) > 0 || len(b) > 0 {
		// Skip separators (anything that is not alphanumeric, ~ or ^).
		for len(a) > 0 && !isAlnum(a[0]) && a[0] != '~' && a[0] != '^' {
			a = a[1:]
		}
		for len(b) > 0 && !isAlnum(b[0]) && b[0] != '~' && b[0] != '^' {
			b = b[1:]
		}
		// Tilde: a pre-release marker, older than anything else.
		if (len(a) > 0 && a[0] == '~') || (len(b) > 0 && b[0] == '~') {
			if len(a) == 0 || a[0] != '~' {
				return 1
			}
			if len(b) == 0 || b[0] != '~' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		// Caret: a post-release marker; newer than the end of the string,
		// older than any further segment.
		if (len(a) > 0 && a[0] == '^') || (len(b) > 0 && b[0] == '^') {
			if len(a) == 0 {
				return -1
			}
			if len(b) == 0 {
				return 1
			}
			if a[0] != '^' {
				return 1
			}
			if b[0] != '^' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		var sa, sb string
		numeric := isDigit(a[0])
		if numeric {
			sa, a = span(a, isDigit)
			sb, b = span(b, isDigit)
		} else {
			sa, a = span(a, isAlpha)
			sb, b = span(b, isAlpha)
		}
		// Segments of different kinds: numeric is newer.
		if sb == "" {
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			sa = strings.TrimLeft(sa, "0")
			sb = strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
	}
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	default:
		return 1
	}
}

func span(s string, f func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// EVR is an epoch, version and release. An empty Release (in a dependency
// such as "foo >= 1.0") matches any release.
type EVR struct {
	Epoch   int
	Version string
	Release string
}

// Parse parses "[epoch:]version[-release]".
func Parse(s string) (EVR, error) {
	var e EVR
	if i := strings.IndexByte(s, ':'); i >= 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return e, fmt.Errorf("invalid epoch in version %q", s)
		}
		e.Epoch = n
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		e.Release = s[i+1:]
		s = s[:i]
	}
	if s == "" {
		return e, fmt.Errorf("empty version")
	}
	e.Version = s
	return e, nil
}

// String formats the EVR, leaving out a zero epoch.
func (e EVR) String() string {
	s := e.Version
	if e.Epoch != 0 {
		s = strconv.Itoa(e.Epoch) + ":" + s
	}
	if e.Release != "" {
		s += "-" + e.Release
	}
	return s
}

// CompareEVR orders two EVRs: epoch first, then version, then release.
// When either release is empty the releases are not compared, which is how
// rpm matches a dependency that names no release.
func CompareEVR(a, b EVR) int {
	if a.Epoch != b.Epoch {
		if a.Epoch < b.Epoch {
			return -1
		}
		return 1
	}
	if c := Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if a.Release == "" || b.Release == "" {
		return 0
	}
	return Compare(a.Release, b.Release)
}

// Flags is the comparison of a versioned dependency.
type Flags uint8

// Comparison bits; combinations such as LT|EQ mean "<=".
const (
	LT Flags = 1 << iota
	GT
	EQ
)

// ParseFlags parses the operator spellings of rpm-md ("LT", "LE", "EQ",
// "GE", "GT") and of spec files ("<", "<=", "=", ">=", ">").
func ParseFlags(s string) (Flags, error) {
	switch s {
	case "":
		return 0, nil
	case "LT", "<":
		return LT, nil
	case "LE", "<=", "=<":
		return LT | EQ, nil
	case "EQ", "=", "==":
		return EQ, nil
	case "GE", ">=", "=>":
		return GT | EQ, nil
	case "GT", ">":
		return GT, nil
	}
	return 0, fmt.Errorf("unknown comparison %q", s)
}

func (f Flags) String() string {
	switch f {
	case LT:
		return "<"
	case LT | EQ:
		return "<="
	case EQ:
		return "="
	case GT | EQ:
		return ">="
	case GT:
		return ">"
	}
	return ""
}

// Satisfies reports whether a package (or provide) at version have
// satisfies the requirement "op want". A provide with no version
// (have == nil) satisfies every versioned requirement, as in rpm.
func Satisfies(have *EVR, op Flags, want EVR) bool {
	if op == 0 || have == nil {
		return true
	}
	c := CompareEVR(*have, want)
	return (c < 0 && op&LT != 0) || (c == 0 && op&EQ != 0) || (c > 0 && op&GT != 0)
}

// Overlap reports whether the ranges "pop pv" (a provide) and "rop rv" (a
// requirement) have a version in common, rpm's rule for matching a
// versioned provide against a versioned requirement.
func Overlap(pop Flags, pv EVR, rop Flags, rv EVR) bool {
	if pop == 0 || rop == 0 {
		return true
	}
	c := CompareEVR(pv, rv)
	switch {
	case c < 0:
		return pop&GT != 0 || rop&LT != 0
	case c > 0:
		return pop&LT != 0 || rop&GT != 0
	default:
		return (pop&EQ != 0 && rop&EQ != 0) || (pop&LT != 0 && rop&LT != 0) || (pop&GT != 0 && rop&GT != 0)
	}
}
