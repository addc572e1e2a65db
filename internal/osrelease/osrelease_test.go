package osrelease

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("NAME=\"Test OS\"\nPRETTY_NAME='Test \\\"OS\\\" 1'\n# c\nID=test\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range Parse(data) {
			if strings.ContainsAny(k, "\n") {
				t.Fatalf("key %q spans lines", k)
			}
		}
	})
}

func TestParse(t *testing.T) {
	m := Parse([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nX='a \"b\"'\nY=\"q\\\"q\"\n"))
	if m["PRETTY_NAME"] != "Debian GNU/Linux 12 (bookworm)" || m["ID"] != "debian" || m["X"] != `a "b"` || m["Y"] != `q"q` {
		t.Fatalf("%q", m)
	}
}

// The rules the daemon's old ID reader and the boot entry titles
// disagreed on, one case each.
func TestParseRules(t *testing.T) {
	for _, tc := range []struct {
		name, in, key, want string
	}{
		// The daemon took the first ID= line; a later assignment wins.
		{"last assignment wins", "ID=one\nID=two\n", "ID", "two"},
		// The daemon matched only lines starting with "ID=".
		{"surrounding white space", "  ID=fedora  \n", "ID", "fedora"},
		// The daemon trimmed quote characters instead of unquoting.
		{"escaped quote in double quotes", `ID="my\"os"`, "ID", `my"os`},
		{"backslash kept in double quotes", `NAME="a\nb"`, "NAME", `a\nb`},
		{"backslash escapes outside quotes", `NAME=a\ b`, "NAME", "a b"},
		{"single quotes literal", `NAME='a\"b'`, "NAME", `a\"b`},
		{"adjacent quoted parts", `NAME="a"'b'c`, "NAME", "abc"},
		{"comment line", "#ID=x\nID=y", "ID", "y"},
	} {
		if got := Parse([]byte(tc.in))[tc.key]; got != tc.want {
			t.Errorf("%s: %q -> %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
	if m := Parse([]byte("ID=\"unterminated\nNAME=ok\n")); m["NAME"] != "ok" {
		t.Errorf("a line after an unterminated quote: %q", m)
	} else if _, ok := m["ID"]; ok {
		t.Errorf("an unterminated quote is kept: %q", m)
	}
}

func TestReadOrder(t *testing.T) {
	files := map[string]string{
		"usr/lib/os-release": "NAME=lib\n",
		"etc/os-release":     "NAME=etc\nID=etc\n",
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	notExist := func(err error) bool { return errors.Is(err, fs.ErrNotExist) }
	m, err := Read(Paths, read, notExist)
	if err != nil {
		t.Fatal(err)
	}
	// usr/lib/os-release exists: etc/os-release is not read even for a
	// key the first lacks (the daemon's old reader fell through).
	if m["NAME"] != "lib" || m["ID"] != "" {
		t.Fatalf("read %q, want usr/lib/os-release only", m)
	}
	delete(files, "usr/lib/os-release")
	if m, err = Read(Paths, read, notExist); err != nil || m["ID"] != "etc" {
		t.Fatalf("fallback: %q, %v", m, err)
	}
	delete(files, "etc/os-release")
	if _, err := Read(Paths, read, notExist); !errors.Is(err, ErrNotFound) {
		t.Fatalf("none: %v", err)
	}
	if _, err := Read(Paths, func(string) ([]byte, error) { return nil, errors.New("io") }, notExist); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("a read error is not reported: %v", err)
	}
	if n, err := Name(map[string]string{"ID": "x"}); n != "x" || err != nil {
		t.Fatalf("Name falls back to ID: %q %v", n, err)
	}
	if _, err := Name(map[string]string{}); err == nil {
		t.Fatal("Name without PRETTY_NAME or ID")
	}
}
