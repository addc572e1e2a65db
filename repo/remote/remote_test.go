package remote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

func TestAddListDelete(t *testing.T) {
	dir := t.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := gpgtest.NewKey(t, "Remote Key", "never")
	s := &Store{Repo: r}
	if err := s.Add(&Remote{Name: "origin", URL: "http://127.0.0.1:1/repo", GPGVerify: true, GPGVerifySummary: true, Branches: []string{"os/x86_64"}}, AddOptions{GPGImport: []string{key.PublicFile}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&Remote{Name: "origin", URL: "http://x/"}, AddOptions{}); err == nil {
		t.Fatal("duplicate accepted")
	}
	if err := s.Add(&Remote{Name: "bad/name", URL: "http://x/"}, AddOptions{}); err == nil {
		t.Fatal("bad name accepted")
	}
	if err := s.Add(&Remote{Name: "ftp", URL: "ftp://x/"}, AddOptions{}); err == nil {
		t.Fatal("ftp accepted")
	}
	if err := s.Add(&Remote{Name: "filehost", URL: "file://host/repo"}, AddOptions{}); err == nil || !strings.Contains(err.Error(), "file:///PATH") {
		t.Fatalf("file URL with a host: %v", err)
	}
	if err := s.Add(&Remote{Name: "disk", URL: "file:///mnt/updates/repo"}, AddOptions{}); err != nil {
		t.Fatalf("file URL refused: %v", err)
	}
	if err := s.Delete("disk", false); err != nil {
		t.Fatal(err)
	}
	rd := filepath.Join(dir, "etc-remotes.d")
	s.ExtraDirs = []string{rd}
	if err := s.Add(&Remote{Name: "second", URL: "https://example.com/repo"}, AddOptions{Dir: rd}); err != nil {
		t.Fatal(err)
	}
	// A hand-written remotes.d file without verification keys: defaults on.
	os.MkdirAll(filepath.Join(r.Path(), "remotes.d"), 0o755)
	os.WriteFile(filepath.Join(r.Path(), "remotes.d", "third.conf"), []byte("[remote \"third\"]\nurl=http://127.0.0.1:2/\nsomething-else=1\n"), 0o644)

	// ostree sees the remote we wrote into the config.
	testutil.RequireTool(t, "ostree")
	out := testutil.Run(t, "ostree", "--repo="+r.Path(), "remote", "show-url", "origin")
	if strings.TrimSpace(out) != "http://127.0.0.1:1/repo" {
		t.Fatalf("ostree remote show-url: %q", out)
	}

	r2, err := repo.Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	s2 := &Store{Repo: r2, ExtraDirs: []string{rd}}
	all, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range all {
		names = append(names, x.Name)
	}
	if strings.Join(names, ",") != "origin,second,third" {
		t.Fatalf("names %v", names)
	}
	third, _ := s2.Get("third")
	if !third.GPGVerify || !third.GPGVerifySummary || third.UnknownOptions["something-else"] != "1" {
		t.Fatalf("third: %+v", third)
	}
	origin, _ := s2.Get("origin")
	if len(origin.Branches) != 1 || origin.Branches[0] != "os/x86_64" {
		t.Fatalf("origin: %+v", origin)
	}
	vs, err := s2.Verifiers(origin, false)
	if err != nil || len(vs) != 1 {
		t.Fatal(vs, err)
	}
	if kr := vs[0].(*sign.GPGVerifier).Keyring; len(kr) != 1 {
		t.Fatalf("imported keyring has %d keys", len(kr))
	}
	if err := s2.Delete("second", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rd, "second.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("remotes.d file left behind")
	}
	if err := s2.Delete("origin", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Path(), "origin.trustedkeys.gpg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("keyring left behind")
	}
	if _, err := s2.Get("origin"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := s2.Delete("origin", true); err != nil {
		t.Fatal(err)
	}
}
