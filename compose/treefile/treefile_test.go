package treefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadInclude(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "base.yaml", `
ref: base/ref
repos: [fixture]
packages: [sh, "a b"]
documentation: false
initramfs-modules: [virtio_pci]
postprocess:
  - "echo base"
`)
	p := write(t, dir, "main.yaml", `
include: base.yaml
ref: os/${releasever}/x86_64
releasever: "38"
packages: [c, a]
add-files:
  - [files/motd, /etc/motd]
recommends: false
automatic-version-prefix: "38"
postprocess: ["echo main"]
initramfs-modules: ["virtio_blk virtio_pci"]
`)
	tf, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tf.InitramfsModules, ","); got != "virtio_pci,virtio_blk" {
		t.Errorf("initramfs-modules %s", got)
	}
	if tf.Ref != "os/38/x86_64" {
		t.Errorf("ref %q", tf.Ref)
	}
	if got := strings.Join(tf.Packages, ","); got != "sh,a,b,c" {
		t.Errorf("packages %s", got)
	}
	if tf.Documentation || tf.Recommends {
		t.Error("booleans not merged")
	}
	if len(tf.Postprocess) != 2 || tf.Postprocess[0] != "echo base" {
		t.Errorf("postprocess %q", tf.Postprocess)
	}
	if tf.AddFiles[0].Src != filepath.Join(dir, "files/motd") || tf.AddFiles[0].Dest != "/etc/motd" {
		t.Errorf("add-files %+v", tf.AddFiles)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key":  "ref: x\npackages: [a]\nfrobnicate: true\n",
		"bad type":     "ref: x\npackages: 3\n",
		"no packages":  "ref: x\n",
		"no ref":       "packages: [a]\n",
		"not mapping":  "- a\n",
		"bad add-file": "ref: x\npackages: [a]\nadd-files: [[a]]\n",
		"cycle":        "include: t.yaml\nref: x\npackages: [a]\n",
		"missing inc":  "include: nope.yaml\nref: x\npackages: [a]\n",
		"dup key":      "ref: x\nref: y\npackages: [a]\n",
	}
	for name, body := range cases {
		p := write(t, dir, "t.yaml", body)
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "t.yaml") && name != "missing inc" {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	p := write(t, dir, "t.yaml", "ref: x\npackages: [a]\n\nfrobnicate: true\n")
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4:") || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("want file:line and key in error, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("ref: x\npackages: [a]\n"))
	f.Add([]byte("ref: x\nadd-files: [[a, /b]]\nremove-from-packages: [[p, /x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse("fuzz.yaml", data)
	})
}
