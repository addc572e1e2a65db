package rpmfixture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shellFiles are host programs (and the libraries they need) that make a
// tree able to run shell scriptlets: tree path → host path. Debian's
// binaries need only libc and the loader.
var shellFiles = map[string]string{
	"/usr/bin/sh":                         "/bin/dash",
	"/usr/bin/cat":                        "/bin/cat",
	"/usr/bin/rm":                         "/bin/rm",
	"/usr/bin/ln":                         "/bin/ln",
	"/usr/bin/touch":                      "/bin/touch",
	"/usr/bin/chmod":                      "/bin/chmod",
	"/usr/lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}

// usrmerge links, as Fedora's filesystem package has them.
var shellLinks = map[string]string{
	"/bin":                            "usr/bin",
	"/sbin":                           "usr/bin",
	"/lib":                            "usr/lib",
	"/lib64":                          "usr/lib64",
	"/usr/sbin":                       "bin",
	"/usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}

// ShellTree fills dir with a minimal tree that can run /bin/sh scripts.
func ShellTree(t testing.TB, dir string) {
	t.Helper()
	for dst, src := range shellFiles {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("shell fixture needs %s: %v", src, err)
		}
		p := filepath.Join(dir, dst)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for dst, target := range shellLinks {
		p := filepath.Join(dir, dst)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// ShellSpec is an x86_64 package that provides /bin/sh and a few tools
// (copied from the host) plus the usrmerge links, like a distribution's
// filesystem + bash + coreutils.
func ShellSpec(version string) Spec {
	var inst strings.Builder
	var files []string
	for _, dst := range sortedKeys(shellFiles) {
		fmt.Fprintf(&inst, "mkdir -p %%{buildroot}%s\ncp %s %%{buildroot}%s\n", filepath.Dir(dst), shellFiles[dst], dst)
		files = append(files, "%attr(0755,root,root) "+dst)
	}
	return Spec{
		Name: "shell", Version: version, Arch: "x86_64", NoAutoReqProv: true,
		Provides:     []string{"/bin/sh"},
		Symlinks:     shellLinks,
		ExtraInstall: inst.String(),
		ExtraFiles:   files,
		Files:        map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "/etc/group": "root:x:0:\n"},
		Config:       []string{"/etc/passwd", "/etc/group"},
	}
}
