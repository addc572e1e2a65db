package benchutil

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	"github.com/google/rpmpack"
)

// RPMMeta is the metadata of a benchmark package: noarch, zstd payload,
// a fixed build time so that runs compose the same trees.
func RPMMeta(name, version string) rpmpack.RPMMetaData {
	return rpmpack.RPMMetaData{Name: name, Version: version, Release: "1", Arch: "noarch", Summary: name,
		Description: name, Licence: "MIT", Compressor: "zstd", BuildTime: time.Unix(1700000000, 0)}
}

// WriteRPM writes the package to path and returns its size.
func WriteRPM(p *rpmpack.RPM, path string) (int64, error) {
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return 0, err
	}
	return int64(buf.Len()), os.WriteFile(path, buf.Bytes(), 0o644)
}

// WriteShellRPM packages the host's dash, libc and the extra Debian
// tools (name in /usr/bin -> host path; binaries that need only libc)
// with usrmerge links, so %post scripts can run in a composed tree.
func WriteShellRPM(dir string, tools map[string]string) error {
	md := RPMMeta("shell", "1.0")
	md.Arch = "x86_64"
	md.Provides = rpmpack.Relations{{Name: "/bin/sh"}}
	p, err := rpmpack.NewRPM(md)
	if err != nil {
		return err
	}
	files := map[string]string{
		"/usr/bin/sh":                                    "/bin/dash",
		"/usr/lib/x86_64-linux-gnu/libc.so.6":            "/lib/x86_64-linux-gnu/libc.so.6",
		"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}
	for name, src := range tools {
		files["/usr/bin/"+name] = src
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		p.AddFile(rpmpack.RPMFile{Name: dst, Body: b, Mode: 0o100755, Owner: "root", Group: "root"})
	}
	for dst, target := range map[string]string{"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64",
		"/usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"} {
		p.AddFile(rpmpack.RPMFile{Name: dst, Body: []byte(target), Mode: 0o120777, Owner: "root", Group: "root"})
	}
	p.AddFile(rpmpack.RPMFile{Name: "/etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\n"), Mode: 0o100644, Owner: "root", Group: "root"})
	p.AddFile(rpmpack.RPMFile{Name: "/etc/group", Body: []byte("root:x:0:\n"), Mode: 0o100644, Owner: "root", Group: "root"})
	_, err = WriteRPM(p, filepath.Join(dir, "shell-1.0-1.x86_64.rpm"))
	return err
}
