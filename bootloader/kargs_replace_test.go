package bootloader

import (
	"strings"
	"testing"
)

func TestReplaceValue(t *testing.T) {
	base := Kargs{"console=tty0", "console=ttyS0", "quiet", "root=UUID=abc", "rw"}
	for _, c := range []struct {
		arg, want, err string
	}{
		{arg: "root=UUID=def", want: "console=tty0 console=ttyS0 quiet root=UUID=def rw"},
		{arg: "root=UUID=abc=UUID=def", want: "console=tty0 console=ttyS0 quiet root=UUID=def rw"},
		{arg: "console=ttyS0=ttyS1", want: "console=tty0 console=ttyS1 quiet root=UUID=abc rw"},
		{arg: "quiet=1", want: "console=tty0 console=ttyS0 quiet=1 root=UUID=abc rw"},
		{arg: "rw", want: "console=tty0 console=ttyS0 quiet root=UUID=abc rw"},
		{arg: "console=ttyS1", err: "console has 2 values"},
		{arg: "console=tty9=ttyS1", err: "console has 2 values"},
		{arg: "absent=1", err: "absent is not set"},
		{arg: "absent", err: "absent is not set"},
		{arg: "=x", err: "no key"},
	} {
		got, err := base.ReplaceValue(c.arg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ReplaceValue(%q): %v, want error %q", c.arg, err, c.err)
			}
			if got.String() != base.String() {
				t.Errorf("ReplaceValue(%q) failed but changed the list: %q", c.arg, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("ReplaceValue(%q) = %q, %v; want %q", c.arg, got, err, c.want)
		}
	}
	if base.String() != "console=tty0 console=ttyS0 quiet root=UUID=abc rw" {
		t.Fatalf("ReplaceValue changed its receiver: %q", base)
	}
}
