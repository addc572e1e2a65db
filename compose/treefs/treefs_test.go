package treefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanRejectsEscapes(t *testing.T) {
	for _, p := range []string{"../x", "./../x", "/usr/../../etc", "a/../../b", "x/.."} {
		if _, err := Clean(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	for in, want := range map[string]string{"./usr/bin/x": "usr/bin/x", "/etc//a": "etc/a", "usr/./x": "usr/x", "/": "", ".": "", ".hidden/x": ".hidden/x"} {
		got, err := Clean(in)
		if err != nil || got != want {
			t.Errorf("Clean(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// Symlinks in the tree, absolute or relative, never lead outside it.
func TestSymlinksStayInside(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(tree, 0o755)
	os.MkdirAll(outside, 0o755)
	r, err := Open(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Symlink(outside, "/etc", 0, 0); err != nil { // absolute, pointing at the host dir
		t.Fatal(err)
	}
	if err := r.Symlink("../../../../outside", "/up", 0, 0); err != nil {
		t.Fatal(err)
	}
	// A dangling directory link fails (as in rpm), and writes nothing outside.
	if err := r.WriteFile("/etc/passwd", strings.NewReader("x"), 0o644, 0, 0); err == nil {
		t.Fatal("write through a dangling link succeeded")
	}
	if err := r.Mkdir(outside, 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/etc/passwd", strings.NewReader("x"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Mkdir("/outside", 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/up/file", strings.NewReader("y"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the tree: %v", ents)
	}
	// Both landed inside, re-rooted.
	if b, err := os.ReadFile(filepath.Join(tree, outside, "passwd")); err != nil || string(b) != "x" {
		t.Errorf("re-rooted absolute link: %q %v", b, err)
	}
	if b, err := r.ReadFile("/up/file"); err != nil || string(b) != "y" {
		t.Errorf("re-rooted relative link: %q %v", b, err)
	}
	if err := r.Mkdir("/usr/lib/x", 0o750, 0, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(tree, "usr/lib/x")); st == nil || st.Mode().Perm() != 0o750 {
		t.Errorf("mkdir mode: %v", st)
	}
	if err := r.Link("/etc/passwd", "/usr/lib/x/hard"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("/usr"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tree, "usr")); !os.IsNotExist(err) {
		t.Errorf("RemoveAll left usr: %v", err)
	}
}
