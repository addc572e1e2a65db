package daemon

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestMainCommandLine: os-updated --help is the full help with exit 0,
// --version names the build, a bad option or argument is a one-line usage
// error with exit 2, and the man page is written.
func TestMainCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"--help"}, &out, &errOut); code != 0 || errOut.Len() > 0 {
		t.Fatalf("--help: exit %d: %s", code, errOut.String())
	}
	path := filepath.Join("testdata", "os-updated-help.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, out.Bytes(), 0o644)
	} else if want, err := os.ReadFile(path); err != nil || string(want) != out.String() {
		t.Errorf("--help differs from %s (go test -update rewrites it): %v\n%s", path, err, out.String())
	}
	for _, f := range []string{"--bus-address", "--sysroot", "--state", "--idle-exit", "--reboot-command", "--automatic-update-policy", "--bootloader", "--version"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help lacks %s", f)
		}
	}
	out.Reset()
	if code := Main([]string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "os-updated ") || !strings.Contains(out.String(), "\ngo: go1.") {
		t.Errorf("--version: exit %d: %q", code, out.String())
	}
	for args, want := range map[string]string{
		"--bogus":   "os-updated: unknown flag: --bogus (see 'os-updated --help')\n",
		"extra":     "os-updated: unexpected argument \"extra\" (see 'os-updated --help')\n",
		"--sysroot": "os-updated: flag needs an argument: --sysroot (see 'os-updated --help')\n",
	} {
		errOut.Reset()
		if code := Main([]string{args}, &out, &errOut); code != 2 || errOut.String() != want {
			t.Errorf("%s: exit %d, %q; want 2, %q", args, code, errOut.String(), want)
		}
	}
	dir := t.TempDir()
	if code := Main([]string{"man", dir}, &out, &errOut); code != 0 {
		t.Fatalf("man: exit %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "os-updated.8")); err != nil || !strings.Contains(string(b), `\-\-idle\-exit`) {
		t.Errorf("man page: %v\n%s", err, b)
	}
}
