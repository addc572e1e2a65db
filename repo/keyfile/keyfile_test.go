package keyfile

import (
	"bytes"
	"testing"
)

func TestRoundTripKeepsLayout(t *testing.T) {
	in := "# comment\n[core]\nrepo_version=1\nmode=bare\n\n[remote \"origin\"]\nurl=http://example.com/repo\ngpg-verify=false\n"
	f, err := ParseBytes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Bytes()); got != in {
		t.Fatalf("round trip:\n%q\nwant\n%q", got, in)
	}
	if v, _ := f.Get("remote \"origin\"", "url"); v != "http://example.com/repo" {
		t.Fatalf("url %q", v)
	}
	if b, err := f.Bool("remote \"origin\"", "gpg-verify", true); err != nil || b {
		t.Fatalf("gpg-verify %v %v", b, err)
	}
	f.Set("core", "mode", "archive-z2")
	f.Set("core", "fsync", "false")
	f.SetList("remote \"origin\"", "branches", []string{"a", "b"})
	want := "# comment\n[core]\nrepo_version=1\nmode=archive-z2\nfsync=false\n\n[remote \"origin\"]\nurl=http://example.com/repo\ngpg-verify=false\nbranches=a;b;\n"
	if got := string(f.Bytes()); got != want {
		t.Fatalf("after set:\n%q\nwant\n%q", got, want)
	}
	if l := f.List("remote \"origin\"", "branches"); len(l) != 2 || l[1] != "b" {
		t.Fatalf("list %v", l)
	}
}

func TestEscapes(t *testing.T) {
	f := New()
	f.Set("g", "k", " leading space\nnewline\\slash")
	g, err := ParseBytes(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Get("g", "k"); v != " leading space\nnewline\\slash" {
		t.Fatalf("escaped value %q", v)
	}
}

func TestRejectsMalformed(t *testing.T) {
	for _, in := range []string{"key=outside\n", "[unterminated\n", "[g]\nnoequals\n", "[g]\n=v\n", "[g]\n[g]\n"} {
		if _, err := ParseBytes([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("[core]\nrepo_version=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := ParseBytes(data)
		if err != nil {
			return
		}
		again, err := ParseBytes(kf.Bytes())
		if err != nil {
			t.Fatalf("serialized key file does not parse: %v", err)
		}
		if !bytes.Equal(again.Bytes(), kf.Bytes()) {
			t.Fatalf("serialization is not stable")
		}
	})
}
