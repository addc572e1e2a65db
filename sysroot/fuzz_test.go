package sysroot

import (
	"strings"
	"testing"
)

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("NAME=\"Test OS\"\nPRETTY_NAME='Test \\\"OS\\\" 1'\n# c\nID=test\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range parseOSRelease(data) {
			if strings.ContainsAny(k, "\n") {
				t.Fatalf("key %q spans lines", k)
			}
		}
	})
}

func TestParseOSRelease(t *testing.T) {
	m := parseOSRelease([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nX='a \"b\"'\nY=\"q\\\"q\"\n"))
	if m["PRETTY_NAME"] != "Debian GNU/Linux 12 (bookworm)" || m["ID"] != "debian" || m["X"] != `a "b"` || m["Y"] != `q"q` {
		t.Fatalf("%q", m)
	}
}
