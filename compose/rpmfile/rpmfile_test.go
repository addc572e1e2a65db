package rpmfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/rpmpack"

	"github.com/osupdate/os-update/compose/treefs"
	"github.com/osupdate/os-update/internal/rpmfixture"
	"github.com/osupdate/os-update/internal/testutil"
)

func keyring(t *testing.T, path string) openpgp.EntityList {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestSignatureAndUnpack(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	env := rpmfixture.NewEnv(t, filepath.Join(dir, "build"), true)
	other := rpmfixture.NewEnv(t, filepath.Join(dir, "other"), true)
	out := filepath.Join(dir, "rpms")
	var paths []string
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		paths = append(paths, env.Build(t, rpmfixture.Spec{
			Name: "pkg-" + comp, Version: "1.0", Epoch: 3, Compress: comp,
			Files:     map[string]string{"/etc/pkg.conf": "setting=1\n", "/usr/share/pkg/data": "data"},
			Exec:      map[string]string{"/usr/bin/pkg": "#!/bin/sh\necho pkg\n"},
			Config:    []string{"/etc/pkg.conf"},
			Dirs:      []string{"/var/lib/pkg"},
			Symlinks:  map[string]string{"/usr/bin/pkg-link": "pkg"},
			Hardlinks: map[string]string{"/usr/share/pkg/data2": "/usr/share/pkg/data"},
			Ghost:     []string{"/var/log/pkg.log"},
			Attr:      map[string]string{"/var/lib/pkg": "0750,pkguser,pkggroup", "/usr/share/pkg/data": "0640,pkguser,root", "/usr/share/pkg/data2": "0640,pkguser,root"},
			Pre:       "echo pre",
			Post:      "echo post",
		}, out))
	}
	env.Sign(t, paths[0])
	env.Sign(t, paths[1])
	kr := keyring(t, env.PubKey)

	for i, path := range paths {
		p, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if p.NEVRA() != "pkg-"+[]string{"gzip", "xz", "zstd"}[i]+"-3:1.0-1.noarch" {
			t.Errorf("NEVRA %s", p.NEVRA())
		}
		_, err = p.VerifySignature(kr)
		if i < 2 && err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if i == 2 && !errors.Is(err, ErrUnsigned) {
			t.Errorf("unsigned package: %v", err)
		}
		if i == 0 {
			if _, err := p.VerifySignature(keyring(t, other.PubKey)); err == nil {
				t.Error("signature accepted with the wrong key")
			}
			sc := p.Scripts()
			if len(sc) != 2 || sc[0].Kind != "pre" || !strings.Contains(sc[1].Body, "echo post") || sc[0].Prog[0] != "/bin/sh" {
				t.Errorf("scripts %+v", sc)
			}
		}

		tree := filepath.Join(dir, "tree", filepath.Base(path))
		os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
		os.WriteFile(filepath.Join(tree, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\npkguser:x:991:992::/:/sbin/nologin\n"), 0o644)
		os.WriteFile(filepath.Join(tree, "etc/group"), []byte("root:x:0:\npkggroup:x:993:\n"), 0o644)
		root, err := treefs.Open(tree)
		if err != nil {
			t.Fatal(err)
		}
		acct, err := LoadAccounts(root)
		if err != nil {
			t.Fatal(err)
		}
		files, err := p.Unpack(context.Background(), root, acct, UnpackOptions{})
		root.Close()
		if err != nil {
			t.Fatal(err)
		}
		var cfg int
		for _, f := range files {
			if f.Config() {
				cfg++
			}
			if f.Ghost() {
				t.Errorf("ghost %s unpacked", f.Path)
			}
		}
		if cfg != 1 {
			t.Errorf("%d config files", cfg)
		}
		st := func(p string) *syscall.Stat_t {
			fi, err := os.Lstat(filepath.Join(tree, p))
			if err != nil {
				t.Fatal(err)
			}
			return fi.Sys().(*syscall.Stat_t)
		}
		if s := st("var/lib/pkg"); s.Uid != 991 || s.Gid != 993 || s.Mode&0o7777 != 0o750 {
			t.Errorf("dir owner/mode %d:%d %o", s.Uid, s.Gid, s.Mode)
		}
		if s := st("usr/bin/pkg"); s.Mode&0o777 != 0o755 {
			t.Errorf("exec mode %o", s.Mode)
		}
		if a, b := st("usr/share/pkg/data"), st("usr/share/pkg/data2"); a.Ino != b.Ino || a.Uid != 991 || a.Mode&0o777 != 0o640 {
			t.Errorf("hardlink: ino %d/%d uid %d mode %o", a.Ino, b.Ino, a.Uid, a.Mode)
		}
		if l, _ := os.Readlink(filepath.Join(tree, "usr/bin/pkg-link")); l != "pkg" {
			t.Errorf("symlink -> %q", l)
		}
		if b, _ := os.ReadFile(filepath.Join(tree, "usr/share/pkg/data2")); string(b) != "data" {
			t.Errorf("hardlink content %q", b)
		}
		if _, err := os.Lstat(filepath.Join(tree, "var/log/pkg.log")); !os.IsNotExist(err) {
			t.Error("ghost file created")
		}
	}

	// A tampered header fails the signature.
	b, _ := os.ReadFile(paths[0])
	i := bytes.Index(b, []byte("fixture package"))
	b[i] ^= 1
	bad := filepath.Join(dir, "tampered.rpm")
	os.WriteFile(bad, b, 0o644)
	p, err := Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.VerifySignature(kr); err == nil {
		t.Error("tampered package verified")
	}
	// So does a payload altered under a valid header signature.
	b, _ = os.ReadFile(paths[0])
	b[len(b)-20] ^= 1
	os.WriteFile(bad, b, 0o644)
	if p, err = Open(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := p.VerifySignature(kr); err == nil || !strings.Contains(err.Error(), "payload digest mismatch") {
		t.Errorf("altered payload: %v", err)
	}
}

// A payload entry with ".." is refused and nothing is written outside.
func TestRejectEscape(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"/usr/../../../escape", "/../escape"} {
		r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: "evil", Version: "1", Release: "1", Arch: "noarch"})
		if err != nil {
			t.Fatal(err)
		}
		r.AddFile(rpmpack.RPMFile{Name: name, Body: []byte("x"), Mode: 0o100644, Owner: "root", Group: "root"})
		path := filepath.Join(dir, "evil.rpm")
		var buf bytes.Buffer
		if err := r.Write(&buf); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, buf.Bytes(), 0o644)
		p, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tree := filepath.Join(dir, "a", "b", "tree")
		os.MkdirAll(tree, 0o755)
		root, _ := treefs.Open(tree)
		acct, _ := LoadAccounts(root)
		_, err = p.Unpack(context.Background(), root, acct, UnpackOptions{})
		root.Close()
		if err == nil || !strings.Contains(err.Error(), "escapes the tree") {
			t.Errorf("%s: want escape error, got %v", name, err)
		}
		for _, d := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
			if _, err := os.Stat(filepath.Join(d, "escape")); err == nil {
				t.Fatalf("file written outside the tree at %s", d)
			}
		}
	}
}

func FuzzOpen(f *testing.F) {
	r, _ := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: "f", Version: "1", Release: "1", Arch: "noarch"})
	r.AddFile(rpmpack.RPMFile{Name: "/a", Body: []byte("x"), Mode: 0o100644})
	var buf bytes.Buffer
	r.Write(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.rpm")
		os.WriteFile(path, data, 0o644)
		p, err := Open(path)
		if err != nil {
			return
		}
		p.FileList()
		p.Scripts()
		p.VerifySignature(openpgp.EntityList{})
		tree := t.TempDir()
		root, err := treefs.Open(tree)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		p.Unpack(context.Background(), root, &Accounts{Users: map[string]int{}, Groups: map[string]int{}}, UnpackOptions{})
	})
}

// NoSymlinkPaths: an entry going through an absolute symlink already in
// the tree, or through a symlink the same payload created, is refused
// naming the package and the link; relative links of the tree (usrmerge)
// are followed.
func TestNoSymlinkPaths(t *testing.T) {
	dir := t.TempDir()
	build := func(name string, files ...rpmpack.RPMFile) *Package {
		r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: name, Version: "1", Release: "1", Arch: "noarch"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			f.Owner, f.Group = "root", "root"
			r.AddFile(f)
		}
		var buf bytes.Buffer
		if err := r.Write(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".rpm")
		os.WriteFile(path, buf.Bytes(), 0o644)
		p, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := func(name string) rpmpack.RPMFile {
		return rpmpack.RPMFile{Name: name, Body: []byte("x"), Mode: 0o100644}
	}
	for _, c := range []struct {
		name    string
		pkg     *Package
		want    string // "" = success
		written string
	}{
		{"tree absolute link", build("abs", file("/usr/lib/tolink/x")), "abs-1-1.noarch: payload entry /usr/lib/tolink/x goes through /usr/lib/tolink, an absolute symlink to /etc", ""},
		{"own link", build("own", rpmpack.RPMFile{Name: "/usr/share/mylink", Body: []byte("../lib"), Mode: 0o120777}, file("/usr/share/mylink/y")),
			"own-1-1.noarch: payload entry /usr/share/mylink/y goes through /usr/share/mylink, a symlink created by the same package", ""},
		{"relative tree link", build("rel", file("/bin/tool")), "", "usr/bin/tool"},
	} {
		tree := filepath.Join(dir, "tree-"+c.pkg.Name())
		os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
		os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
		os.Symlink("/etc", filepath.Join(tree, "usr/lib/tolink"))
		os.Symlink("usr/bin", filepath.Join(tree, "bin"))
		root, _ := treefs.Open(tree)
		acct, _ := LoadAccounts(root)
		_, err := c.pkg.Unpack(context.Background(), root, acct, UnpackOptions{NoSymlinkPaths: true})
		root.Close()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if _, err := os.Stat(filepath.Join(tree, c.written)); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
