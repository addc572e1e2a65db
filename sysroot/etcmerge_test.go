package sysroot

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestEtcMerge(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	v1 := map[string]string{
		"usr/etc/keep":       "keep\n",
		"usr/etc/mod":        "mod v1\n",
		"usr/etc/del":        "del\n",
		"usr/etc/perm":       "perm\n",
		"usr/etc/link":       "->a",
		"usr/etc/conf":       "conf v1\n",
		"usr/etc/newdef":     "newdef v1\n",
		"usr/etc/gone":       "gone v1\n",
		"usr/etc/swap":       "swap\n",
		"usr/etc/deldir/a":   "a\n",
		"usr/etc/deldir/b/c": "c\n",
	}
	commitTree(t, s.Repo(), "os", treeSpec{version: "1", files: v1})
	deploy(t, s, "os")
	etc := filepath.Join(dir, s.Deployments[0].RelDir(), "etc")
	write := func(p, c string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(etc, p)), 0o755)
		if err := os.WriteFile(filepath.Join(etc, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mod", "mod local\n")
	os.Remove(filepath.Join(etc, "del"))
	os.Chmod(filepath.Join(etc, "perm"), 0o600)
	os.Remove(filepath.Join(etc, "link"))
	os.Symlink("b", filepath.Join(etc, "link"))
	write("conf", "conf local\n")
	write("gone", "gone local\n")
	write("added.conf", "added\n")
	write("newdir/sub/file", "deep\n")
	os.Chmod(filepath.Join(etc, "newdir/sub"), 0o700)
	os.Remove(filepath.Join(etc, "swap"))
	write("swap/inside", "now a dir\n")
	os.RemoveAll(filepath.Join(etc, "deldir"))

	v2 := map[string]string{}
	for k, v := range v1 {
		v2[k] = v
	}
	v2["usr/etc/conf"] = "conf v2\n"
	v2["usr/etc/newdef"] = "newdef v2\n"
	v2["usr/etc/fresh"] = "fresh\n"
	delete(v2, "usr/etc/gone")
	commitTree(t, s.Repo(), "os", treeSpec{version: "2", files: v2})
	res := deploy(t, s, "os")
	etc2 := filepath.Join(dir, s.Deployments[0].RelDir(), "etc")
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(etc2, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for p, want := range map[string]string{
		"keep": "keep\n", "mod": "mod local\n", "perm": "perm\n", "conf": "conf local\n",
		"newdef": "newdef v2\n", "gone": "gone local\n", "added.conf": "added\n",
		"newdir/sub/file": "deep\n", "fresh": "fresh\n", "swap/inside": "now a dir\n",
	} {
		if got := read(p); got != want {
			t.Errorf("/etc/%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"del", "deldir"} {
		if _, err := os.Lstat(filepath.Join(etc2, p)); !os.IsNotExist(err) {
			t.Errorf("/etc/%s should be removed: %v", p, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(etc2, "perm")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("permission change lost: %v", fi)
	}
	if fi, _ := os.Stat(filepath.Join(etc2, "newdir/sub")); fi == nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("added directory mode lost: %v", fi)
	}
	if l, _ := os.Readlink(filepath.Join(etc2, "link")); l != "b" {
		t.Errorf("symlink change lost: %q", l)
	}
	var conflicts []string
	for _, c := range res.Etc.Conflicts {
		conflicts = append(conflicts, c.Path)
	}
	sort.Strings(conflicts)
	if len(conflicts) != 2 || conflicts[0] != "conf" || conflicts[1] != "gone" {
		t.Errorf("conflicts %v, want [conf gone]", res.Etc.Conflicts)
	}
	sort.Strings(res.Etc.Removed)
	if len(res.Etc.Removed) != 2 || res.Etc.Removed[0] != "del" || res.Etc.Removed[1] != "deldir" {
		t.Errorf("removed %v", res.Etc.Removed)
	}
	// The old deployment's /etc is untouched.
	if b, _ := os.ReadFile(filepath.Join(etc, "conf")); string(b) != "conf local\n" {
		t.Error("old /etc changed")
	}
	checkConsistent(t, s)
}
