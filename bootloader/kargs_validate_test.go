package bootloader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateArg(t *testing.T) {
	for _, a := range []string{"quiet", "root=UUID=1234", `dyndbg="file x.c +p"`, `"a b"`, "console=ttyS0,115200n8", "x=é"} {
		if err := ValidateArg(a); err != nil {
			t.Errorf("%q: %v", a, err)
		}
	}
	for a, want := range map[string]string{
		"":                   "empty",
		"y=2\nlinux /evil":   "control character",
		"y=2\rlinux":         "control character",
		"a\tb":               "control character",
		"a\x00":              "control character",
		"a\x7f":              "control character",
		`x="unterminated`:    "unbalanced",
		"a b":                "space outside quotes",
		`x="a b" c`:          "space outside quotes",
		"init=/x\ninitrd /y": "control character",
	} {
		err := ValidateArg(a)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", a, err, want)
		}
	}
}

// Every writer refuses a value that would add a line, whoever built the
// entry: BLS entries (Prepare) and each native configuration.
func TestWritersRefuseInjectedLines(t *testing.T) {
	for _, field := range []string{"options", "title", "linux", "initrd", "devicetree"} {
		for _, bad := range []string{"x\nlinux /evil", "x\rinitrd /evil", "x\x0bz"} {
			entries := testEntries()
			e := entries[1]
			for i := range e.Lines {
				if e.Lines[i].Key == field {
					e.Lines[i].Value += bad
				}
			}
			if field == "devicetree" {
				e.Add("devicetree", bad)
			}
			for _, be := range []Backend{Grub2{Dir: "grub2"}, Syslinux{Dir: "syslinux", File: "syslinux.cfg"}, UBoot{}} {
				if _, err := be.Configs(entries); err == nil || !strings.Contains(err.Error(), "control character") {
					t.Errorf("%s: %s %q: got %v, want a refusal", be.Name(), field, bad, err)
				}
			}
			boot := t.TempDir()
			l := &Loader{BootDir: boot, NoSync: true}
			if err := l.Prepare(1, entries, BLS{}); err == nil || !strings.Contains(err.Error(), e.Name) {
				t.Errorf("Prepare: %s %q: got %v, want a refusal naming %s", field, bad, err, e.Name)
			}
			// Refused before anything was written.
			if _, err := os.Stat(filepath.Join(boot, "loader.1")); !os.IsNotExist(err) {
				t.Errorf("Prepare wrote loader.1 for a refused entry (%v)", err)
			}
		}
	}
	// A key with a space would also split the line.
	entries := testEntries()
	entries[0].Add("bad key", "v")
	if err := (&Loader{BootDir: t.TempDir(), NoSync: true}).Prepare(1, entries, BLS{}); err == nil {
		t.Error("Prepare accepted a key with a space")
	}
}
