package repo

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

func TestTreeView(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	src := t.TempDir()
	for p, data := range map[string]string{
		"usr/lib/os-release":          "ID=test\n",
		"usr/lib/modules/6.1/vmlinuz": "kernel",
		"usr/etc/hosts":               "127.0.0.1 localhost\n",
		"a":                           "top",
	} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/lib/os-release", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, ModeArchive)
	c := commitTree(t, r, src, "t")
	v, err := r.ViewCommit(c)
	if err != nil {
		t.Fatal(err)
	}

	if data, err := v.ReadFile("/usr/lib/os-release", 1<<20); err != nil || string(data) != "ID=test\n" {
		t.Fatalf("ReadFile: %q %v", data, err)
	}
	if _, err := v.ReadFile("link", 1<<20); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("ReadFile follows a symlink: %v", err)
	}
	if _, err := v.ReadFile("usr/lib/os-release", 3); err == nil {
		t.Fatal("ReadFile ignores its size limit")
	}
	for _, missing := range []string{"nope", "usr/nope/x", "a/b"} {
		if _, err := v.Lookup(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lookup(%q): %v, want fs.ErrNotExist", missing, err)
		}
	}
	if e, err := v.Lookup("usr/etc/"); err != nil || !e.IsDir || e.Path != "/usr/etc" {
		t.Fatalf("Lookup dir: %+v %v", e, err)
	}
	if ok, err := v.IsRegular("link"); ok || err != nil {
		t.Fatalf("IsRegular(link) = %v %v", ok, err)
	}
	if ok, err := v.IsRegular("usr/lib/modules/6.1/vmlinuz"); !ok || err != nil {
		t.Fatalf("IsRegular(vmlinuz) = %v %v", ok, err)
	}

	// Walk lists what `ostree ls -R` lists, in the same order.
	var got []string
	if err := v.Walk("/", func(e TreeEntry) error { got = append(got, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(testutil.Run(t, ostree, "ls", "--repo", r.Path(), "-R", c.String())), "\n") {
		f := strings.Fields(line)
		p := f[4]
		want = append(want, p)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Walk:\n got %v\nwant %v", got, want)
	}
	// SkipDir leaves a directory's contents out.
	got = nil
	v.Walk("/", func(e TreeEntry) error {
		got = append(got, e.Path)
		if e.Path == "/usr" {
			return fs.SkipDir
		}
		return nil
	})
	for _, p := range got {
		if strings.HasPrefix(p, "/usr/") {
			t.Fatalf("SkipDir walked into %s", p)
		}
	}
	// AddObjects finds what the commit traversal finds below the root.
	set := Reachable{}
	if err := r.TraverseCommit(c, 0, set); err != nil {
		t.Fatal(err)
	}
	tree := Reachable{}
	if err := v.AddObjects("/", tree); err != nil {
		t.Fatal(err)
	}
	if len(set) != len(tree)+1 || !set.Has(object.Name{Checksum: c, Type: object.TypeCommit}) {
		t.Fatalf("AddObjects found %d objects, the commit has %d (+1 commit)", len(tree), len(set))
	}
}

func TestUpdateCommitsOrDiscards(t *testing.T) {
	r := newRepo(t, ModeArchive)
	write := func(tx *Transaction, s string) object.Checksum {
		t.Helper()
		c, err := tx.WriteContent(&object.FileHeader{Mode: 0o100644}, uint64(len(s)), strings.NewReader(s), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	has := func(c object.Checksum) bool {
		ok, err := r.HasObject(c, object.TypeFile)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	ctx := context.Background()
	var kept, failed, cancelled, panicked object.Checksum
	if err := r.Update(ctx, func(tx *Transaction) error { kept = write(tx, "kept"); return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := r.Update(ctx, func(tx *Transaction) error { failed = write(tx, "failed"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	if err := r.Update(cctx, func(tx *Transaction) error { cancelled = write(tx, "cancelled"); cancel(); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update after cancel returned %v", err)
	}
	func() {
		defer func() { recover() }()
		r.Update(ctx, func(tx *Transaction) error { panicked = write(tx, "panicked"); panic("fn") })
	}()
	if !has(kept) || has(failed) || has(cancelled) || has(panicked) {
		t.Fatalf("visible: kept %v failed %v cancelled %v panicked %v", has(kept), has(failed), has(cancelled), has(panicked))
	}
	if des, _ := os.ReadDir(filepath.Join(r.Path(), "tmp")); len(des) > 0 {
		for _, de := range des {
			if strings.HasPrefix(de.Name(), "staging-") {
				t.Fatalf("staging directory left: %s", de.Name())
			}
		}
	}
}

func TestReadRefNotFound(t *testing.T) {
	r := newRepo(t, ModeArchive)
	if _, err := r.ReadRef("", "missing/ref"); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "missing/ref") {
		t.Fatalf("ReadRef of a missing ref: %v", err)
	}
	if _, err := r.ReadRef("origin", "x"); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "origin:x") {
		t.Fatalf("ReadRef of a missing remote ref: %v", err)
	}
}

func TestFindInHistory(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := t.TempDir()
	var commits []object.Checksum
	for _, v := range []string{"1", "2", "3"} {
		os.WriteFile(filepath.Join(src, "v"), []byte(v), 0o644)
		var md object.Metadata
		md.Set("version", gvariant.NewVariant("s", v))
		c, err := r.CommitDir(context.Background(), src, CommitOptions{Branch: "b", Subject: v, Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	head := commits[2]
	if c, err := r.FindInHistory(head, "1"); err != nil || c != commits[0] {
		t.Fatalf("version 1: %s %v", c, err)
	}
	if c, err := r.FindInHistory(head, commits[1].String()[:8]); err != nil || c != commits[1] {
		t.Fatalf("prefix: %s %v", c, err)
	}
	if _, err := r.FindInHistory(head, commits[1].String()[:7]); err == nil {
		t.Fatal("a 7-digit prefix matched")
	}
	if _, err := r.FindInHistory(commits[1], "3"); err == nil || !strings.Contains(err.Error(), `"3"`) {
		t.Fatalf("a newer version is not in the history of an older commit: %v", err)
	}
}
