package ostreecli

import (
	"fmt"
	"strconv"
	"strings"
)

// option is one command line option, parsed the way GLib's GOptionContext
// parses them: --long=VAL, --long VAL, -sVAL, -s VAL, grouped short flags
// (-qR), repeats, and "--" ending the options.
type option struct {
	long  string
	short byte
	arg   string // the argument's name in help; "" for a flag
	help  string
	set   func(v string) error
}

// optionSet collects the options of one command.
type optionSet struct {
	opts []*option
}

func (s *optionSet) add(o *option) { s.opts = append(s.opts, o) }

// flag adds a boolean option.
func (s *optionSet) flag(long string, short byte, p *bool, help string) {
	s.add(&option{long: long, short: short, help: help, set: func(string) error { *p = true; return nil }})
}

// str adds an option with a string argument; a repeat replaces the value.
func (s *optionSet) str(long string, short byte, p *string, arg, help string) {
	s.add(&option{long: long, short: short, arg: arg, help: help, set: func(v string) error { *p = v; return nil }})
}

// strs adds a repeatable option collecting every argument.
func (s *optionSet) strs(long string, short byte, p *[]string, arg, help string) {
	s.add(&option{long: long, short: short, arg: arg, help: help, set: func(v string) error { *p = append(*p, v); return nil }})
}

// integer adds an option with an integer argument.
func (s *optionSet) integer(long string, short byte, p *int, arg, help string) {
	s.add(&option{long: long, short: short, arg: arg, help: help, set: func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("Cannot parse integer value “%s” for --%s", v, long)
		}
		*p = n
		return nil
	}})
}

func (s *optionSet) byLong(name string) *option {
	for _, o := range s.opts {
		if o.long == name {
			return o
		}
	}
	return nil
}

// byShort finds a short option; a command's own option wins over the
// common -v (summary -v is --view).
func (s *optionSet) byShort(c byte) *option {
	for i := len(s.opts) - 1; i >= 0; i-- {
		if o := s.opts[i]; o.short != 0 && o.short == c {
			return o
		}
	}
	return nil
}

// parse applies the options in args and returns the other arguments in
// order. Options may come anywhere, as with GOptionContext.
func (s *optionSet) parse(args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(pos, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o := s.byLong(name)
			if o == nil {
				return nil, fmt.Errorf("Unknown option %s", a)
			}
			if o.arg == "" {
				// GOptionContext sets a flag given as --flag=VALUE too
				// (scripts write --gpg-verify=true), ignoring VALUE.
				if err := o.set(""); err != nil {
					return nil, err
				}
				continue
			}
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("Missing argument for --%s", name)
				}
				i++
				val = args[i]
			}
			if err := o.set(val); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				o := s.byShort(a[j])
				if o == nil {
					return nil, fmt.Errorf("Unknown option -%c", a[j])
				}
				if o.arg == "" {
					if err := o.set(""); err != nil {
						return nil, err
					}
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("Missing argument for -%c", a[j])
					}
					i++
					val = args[i]
				}
				if err := o.set(val); err != nil {
					return nil, err
				}
				break
			}
		default:
			pos = append(pos, a)
		}
	}
	return pos, nil
}

// usage renders the option list the way GOptionContext --help does.
func (s *optionSet) usage(b *strings.Builder) {
	b.WriteString("Help Options:\n  -h, --help              Show help options\n\nApplication Options:\n")
	for _, o := range s.opts {
		name := "--" + o.long
		if o.short != 0 {
			name = "-" + string(o.short) + ", " + name
		}
		if o.arg != "" {
			name += "=" + o.arg
		}
		fmt.Fprintf(b, "  %-24s %s\n", name, o.help)
	}
}
