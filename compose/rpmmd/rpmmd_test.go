package rpmmd

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const primaryXML = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>alpha</name><arch>noarch</arch>
  <version epoch="2" ver="1.0" rel="1"/>
  <checksum type="sha256" pkgid="YES">aaaa</checksum>
  <time file="1" build="1700000000"/>
  <size package="1234" installed="10" archive="20"/>
  <location href="Packages/alpha-1.0-1.noarch.rpm"/>
  <format>
    <rpm:provides><rpm:entry name="alpha" flags="EQ" epoch="2" ver="1.0" rel="1"/></rpm:provides>
    <rpm:requires><rpm:entry name="/bin/sh" pre="1"/><rpm:entry name="(beta &gt;= 1.0 or gamma)"/><rpm:entry name="lib" flags="GE" epoch="0" ver="3"/></rpm:requires>
    <rpm:obsoletes><rpm:entry name="oldalpha" flags="LT" epoch="0" ver="2"/></rpm:obsoletes>
    <file>/usr/bin/alpha</file>
  </format>
</package>
<package type="rpm">
  <name>beta</name><arch>x86_64</arch>
  <version epoch="0" ver="1.2" rel="3"/>
  <checksum type="sha256" pkgid="YES">bbbb</checksum>
  <location href="Packages/beta-1.2-3.x86_64.rpm"/>
  <format/>
</package>
</metadata>`

const filelistsXML = `<?xml version="1.0"?>
<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="2">
<package pkgid="aaaa" name="alpha" arch="noarch"><version epoch="2" ver="1.0" rel="1"/><file>/usr/bin/alpha</file><file>/etc/alpha.conf</file></package>
</filelists>`

func compress(t *testing.T, kind string, data []byte) []byte {
	var b bytes.Buffer
	switch kind {
	case ".gz":
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
	case ".xz":
		w, _ := xz.NewWriter(&b)
		w.Write(data)
		w.Close()
	case ".zst":
		w, _ := zstd.NewWriter(&b)
		w.Write(data)
		w.Close()
	default:
		return data
	}
	return b.Bytes()
}

// makeRepo writes repodata with primary and filelists compressed by ext.
func makeRepo(t *testing.T, dir, ext string, corrupt bool) {
	rd := filepath.Join(dir, "repodata")
	os.MkdirAll(rd, 0o755)
	var data strings.Builder
	data.WriteString(`<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>42</revision>`)
	for _, f := range []struct{ typ, body string }{{"primary", primaryXML}, {"filelists", filelistsXML}} {
		z := compress(t, ext, []byte(f.body))
		sum := fmt.Sprintf("%x", sha256.Sum256(z))
		name := sum + "-" + f.typ + ".xml" + ext
		if corrupt {
			z = append(z, 0)
		}
		os.WriteFile(filepath.Join(rd, name), z, 0o644)
		fmt.Fprintf(&data, `<data type="%s"><checksum type="sha256">%s</checksum><location href="repodata/%s"/></data>`, f.typ, sum, name)
	}
	data.WriteString(`</repomd>`)
	os.WriteFile(filepath.Join(rd, "repomd.xml"), []byte(data.String()), 0o644)
}

func TestLoadCompressions(t *testing.T) {
	for _, ext := range []string{".gz", ".xz", ".zst", ""} {
		for _, scheme := range []string{"file", "http"} {
			t.Run(scheme+ext, func(t *testing.T) {
				dir := t.TempDir()
				makeRepo(t, dir, ext, false)
				base := "file://" + dir
				if scheme == "http" {
					srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
					defer srv.Close()
					base = srv.URL
				}
				cache := t.TempDir()
				r, err := Load(context.Background(), &Fetcher{}, RepoConfig{ID: "t", BaseURL: base, Enabled: true}, cache)
				if err != nil {
					t.Fatal(err)
				}
				if r.Revision != "42" || len(r.Packages) != 2 {
					t.Fatalf("revision %q, %d packages", r.Revision, len(r.Packages))
				}
				a := r.Packages[0]
				if a.NEVRA() != "alpha-2:1.0-1.noarch" || a.URL() != base+"/Packages/alpha-1.0-1.noarch.rpm" {
					t.Errorf("alpha: %s %s", a.NEVRA(), a.URL())
				}
				if len(a.Requires) != 3 || !a.Requires[0].Pre || a.Requires[1].Name != "(beta >= 1.0 or gamma)" || a.Requires[2].String() != "lib >= 3" {
					t.Errorf("requires %+v", a.Requires)
				}
				if len(a.Files) != 2 || a.Files[1] != "/etc/alpha.conf" {
					t.Errorf("filelists not merged: %v", a.Files)
				}
				if a.Obsoletes[0].String() != "oldalpha < 2" {
					t.Errorf("obsoletes %v", a.Obsoletes)
				}
				// A second load reuses the cache (files named by checksum).
				ents, _ := os.ReadDir(filepath.Join(cache, "repodata"))
				if len(ents) != 2 {
					t.Errorf("cache has %d entries", len(ents))
				}
			})
		}
	}
}

func TestChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	makeRepo(t, dir, ".gz", true)
	cache := t.TempDir()
	_, err := Load(context.Background(), &Fetcher{}, RepoConfig{ID: "bad", BaseURL: "file://" + dir}, cache)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "repo bad") {
		t.Fatalf("want checksum mismatch, got %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "repodata"))
	if len(ents) != 0 {
		t.Errorf("bad download left in cache: %v", ents)
	}
}

func TestRepoFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.repo"), []byte(`
# comment
[fixture]
name=Fixture $releasever
baseurl=http://127.0.0.1/$basearch/ http://mirror/
enabled=1
gpgcheck=1
gpgkey=file:///k1.asc
  file:///k2.asc
metadata_expire=1d

[off]
baseurl=file:///x
enabled=0
`), 0o644)
	rs, err := FindRepos([]string{dir}, []string{"fixture", "off"}, Vars{"releasever": "38", "basearch": "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	f := rs[0]
	if f.Name != "Fixture 38" || f.BaseURL != "http://127.0.0.1/x86_64" || !f.GPGCheck || len(f.GPGKeys) != 2 || rs[1].Enabled {
		t.Errorf("%+v", rs)
	}
	if _, err := FindRepos([]string{dir}, []string{"missing"}, nil); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("missing repo: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "b.repo"), []byte("[x]\nbaseurl=file:///y\ngpgcheck=maybe\n"), 0o644)
	if _, err := FindRepos([]string{dir}, []string{"x"}, nil); err == nil || !strings.Contains(err.Error(), "b.repo:3") {
		t.Errorf("bad bool: %v", err)
	}
}

func FuzzParsePrimary(f *testing.F) {
	f.Add([]byte(primaryXML))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePrimary(bytes.NewReader(data))
		if err == nil {
			ParseFilelists(bytes.NewReader(data), pkgs)
		}
	})
}
