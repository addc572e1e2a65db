package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

func newRepo(t *testing.T, mode Mode) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

func commitTree(t *testing.T, r *Repo, dir, branch string) object.Checksum {
	t.Helper()
	c, err := r.CommitDir(context.Background(), dir, CommitOptions{Branch: branch, Subject: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCommitCheckoutRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	testutil.MakeSampleTree(t, src)
	want := testutil.SnapshotTree(t, src, testutil.TreeOptions{Owners: true, Hardlinks: true})
	for _, mode := range []Mode{ModeBare, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			c := commitTree(t, r, src, "test/branch")
			dest := filepath.Join(t.TempDir(), "out")
			if err := r.Checkout(context.Background(), c, dest, CheckoutOptions{}); err != nil {
				t.Fatal(err)
			}
			got := testutil.SnapshotTree(t, dest, testutil.TreeOptions{Owners: true, Hardlinks: mode == ModeBare})
			if mode != ModeBare {
				// Copies carry no hardlinks; compare everything else.
				want := testutil.SnapshotTree(t, src, testutil.TreeOptions{Owners: true})
				testutil.CompareTrees(t, want, got)
			} else {
				testutil.CompareTrees(t, want, got)
			}
			rep, err := r.Fsck(context.Background(), FsckOptions{})
			if err != nil || len(rep.Problems) > 0 {
				t.Fatalf("fsck: %v %v", err, rep.Problems)
			}
			// Same tree committed again: same root, no new content.
			c2, err := r.CommitDir(context.Background(), src, CommitOptions{Subject: "again", Parent: c})
			if err != nil {
				t.Fatal(err)
			}
			a, _ := r.LoadCommit(c)
			b, _ := r.LoadCommit(c2)
			if a.RootTree != b.RootTree || a.RootMeta != b.RootMeta || b.Parent != c {
				t.Fatalf("recommit changed the tree or parent")
			}
		})
	}
}

func TestCommitFromBareCheckoutReusesObjects(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	testutil.MakeSampleTree(t, src)
	r, err := Init(filepath.Join(base, "repo"), ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetFsync(false)
	c := commitTree(t, r, src, "a")
	co := filepath.Join(base, "co")
	if err := r.Checkout(context.Background(), c, co, CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every file of the checkout is a hardlink to an object: the commit
	// must take checksums from the inode index instead of reading files.
	tx, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	tree, err := tx.WriteDir(context.Background(), co, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tx.Stats().FilesReused == 0 || tx.Stats().FilesRead != 0 {
		t.Fatalf("stats %+v: want every file reused by device/inode", tx.Stats())
	}
	cm, _ := r.LoadCommit(c)
	if tree.DirTree != cm.RootTree {
		t.Fatalf("recommitted checkout has a different root")
	}
}

func TestCheckoutUnionAndSubpath(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/f"), []byte("new"), 0o644)
	os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o644)
	c := commitTree(t, r, src, "x")
	ctx := context.Background()

	dest := filepath.Join(t.TempDir(), "d")
	if err := r.Checkout(ctx, c, dest, CheckoutOptions{Subpath: "/a"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "b/f")); string(b) != "new" {
		t.Fatalf("subpath checkout: %q", b)
	}
	if err := r.Checkout(ctx, c, dest, CheckoutOptions{}); err == nil {
		t.Fatal("checkout into an existing directory without --union succeeded")
	}
	os.WriteFile(filepath.Join(dest, "top"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dest, "keep"), []byte("keep"), 0o644)
	if err := r.Checkout(ctx, c, dest, CheckoutOptions{Union: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "top")); string(b) != "top" {
		t.Fatalf("union did not overwrite: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dest, "keep")); err != nil {
		t.Fatal("union removed an unrelated file")
	}
	single := filepath.Join(t.TempDir(), "single")
	if err := r.Checkout(ctx, c, single, CheckoutOptions{Subpath: "a/b/f"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(single); string(b) != "new" {
		t.Fatalf("file subpath: %q", b)
	}
	if err := r.Checkout(ctx, c, filepath.Join(t.TempDir(), "n"), CheckoutOptions{Subpath: "nope"}); err == nil {
		t.Fatal("missing subpath accepted")
	}
}

// A union checkout over a destination whose directory is a symlink to
// elsewhere must replace the symlink, never write through it.
func TestCheckoutNeverEscapes(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/passwd"), []byte("owned"), 0o644)
	os.Symlink("/etc", filepath.Join(src, "evil-abs"))
	os.Symlink("../../../../..", filepath.Join(src, "evil-rel"))
	c := commitTree(t, r, src, "x")

	outside := t.TempDir()
	dest := filepath.Join(t.TempDir(), "d")
	os.MkdirAll(dest, 0o755)
	os.Symlink(outside, filepath.Join(dest, "etc")) // attacker-planted
	if err := r.Checkout(context.Background(), c, dest, CheckoutOptions{Union: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "passwd")); err == nil {
		t.Fatal("checkout wrote through a symlink outside its destination")
	}
	if fi, err := os.Lstat(filepath.Join(dest, "etc")); err != nil || !fi.IsDir() {
		t.Fatal("symlink in the way was not replaced by a directory")
	}
}

// writeRawMeta plants a metadata object as a hostile repository would.
func writeRawMeta(t *testing.T, r *Repo, typ object.Type, data []byte) object.Checksum {
	t.Helper()
	c := object.SumMeta(data)
	p := r.ObjectPath(c, typ)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHostileDirTreeNames(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	good := commitTree(t, r, src, "x")
	cm, _ := r.LoadCommit(good)
	gdt, _ := r.LoadDirTree(cm.RootTree)
	fileSum := gdt.Files[0].Checksum
	for _, name := range []string{"", ".", "..", "a/b", "../escape"} {
		raw, err := gvariant.Marshal(object.DirTreeType, []gvariant.Value{
			[]gvariant.Value{[]gvariant.Value{name, fileSum[:]}}, []gvariant.Value{}})
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := r.Begin()
		if _, err := tx.WriteMeta(object.TypeDirTree, raw, nil); err == nil {
			t.Errorf("name %q: WriteMeta accepted a hostile dirtree", name)
		}
		tx.Abort()
		tree := writeRawMeta(t, r, object.TypeDirTree, raw)
		bad := &object.Commit{Subject: "bad", RootTree: tree, RootMeta: cm.RootMeta}
		bb, _ := bad.Marshal()
		bc := writeRawMeta(t, r, object.TypeCommit, bb)
		dest := filepath.Join(t.TempDir(), "d")
		err = r.Checkout(context.Background(), bc, dest, CheckoutOptions{})
		if err == nil || !strings.Contains(err.Error(), tree.String()) {
			t.Errorf("name %q: checkout error %v does not name dirtree %s", name, err, tree)
		}
		rep, _ := r.Fsck(context.Background(), FsckOptions{})
		if len(rep.Problems) == 0 {
			t.Errorf("name %q: fsck found nothing", name)
		}
		r.DeleteObject(bc, object.TypeCommit)
		r.DeleteObject(tree, object.TypeDirTree)
	}
}

func TestFsckDetectsAndDeletesCorruption(t *testing.T) {
	for _, mode := range []Mode{ModeBare, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == ModeBare {
				testutil.RequireRoot(t)
			}
			r := newRepo(t, mode)
			src := filepath.Join(t.TempDir(), "src")
			os.MkdirAll(src, 0o755)
			os.WriteFile(filepath.Join(src, "victim"), []byte("original content"), 0o644)
			os.WriteFile(filepath.Join(src, "other"), []byte("other"), 0o644)
			c := commitTree(t, r, src, "x")
			cm, _ := r.LoadCommit(c)
			dt, _ := r.LoadDirTree(cm.RootTree)
			var victim object.Checksum
			for _, f := range dt.Files {
				if f.Name == "victim" {
					victim = f.Checksum
				}
			}
			p := r.ObjectPath(victim, object.TypeFile)
			if mode == ModeArchive {
				// Truncate the compressed stream.
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)-3], 0o644)
			} else {
				os.WriteFile(p, []byte("tampered content"), 0o644)
			}
			rep, err := r.Fsck(context.Background(), FsckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Object.Checksum != victim {
				t.Fatalf("problems %v, want exactly the victim %s", rep.Problems, victim)
			}
			rep, err = r.Fsck(context.Background(), FsckOptions{Delete: true})
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := r.HasObject(victim, object.TypeFile); ok {
				t.Fatal("--delete kept the corrupt object")
			}
			if !r.IsPartial(c) {
				t.Fatal("commit with a deleted object is not marked partial")
			}
			rep, _ = r.Fsck(context.Background(), FsckOptions{})
			if len(rep.Problems) != 0 {
				t.Fatalf("after --delete: %v", rep.Problems)
			}
		})
	}
}

func TestArchiveSizeMismatchNamed(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("hello\n"), 0o644)
	c := commitTree(t, r, src, "x")
	cm, _ := r.LoadCommit(c)
	dt, _ := r.LoadDirTree(cm.RootTree)
	sum := dt.Files[0].Checksum
	// Rewrite the .filez header to declare a larger size.
	p := r.ObjectPath(sum, object.TypeFile)
	b, _ := os.ReadFile(p)
	hdr, _ := (&object.FileHeader{Mode: 0o100644}).FilezHeader(6)
	bigger, _ := (&object.FileHeader{Mode: 0o100644}).FilezHeader(600)
	if string(b[8:16]) != string(hdr[8:16]) {
		t.Fatalf("unexpected .filez layout")
	}
	copy(b[8:16], bigger[8:16]) // the size field
	os.WriteFile(p, b, 0o644)
	err := r.Checkout(context.Background(), c, filepath.Join(t.TempDir(), "d"), CheckoutOptions{})
	if err == nil || !errors.Is(err, object.ErrSizeMismatch) || !strings.Contains(err.Error(), sum.String()) {
		t.Fatalf("checkout error %v: want a size mismatch naming %s", err, sum)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []string{
		"[core]\nrepo_version=1\nmode=weird\n",
		"[core]\nmode=bare\n",
		"[core]\nrepo_version=2\n",
		"not a keyfile",
	} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "objects"), 0o755)
		os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644)
		if _, err := Open(dir); err == nil {
			t.Errorf("config %q accepted", cfg)
		}
	}
}

func TestRefsAndRevParse(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("1"), 0o644)
	c1 := commitTree(t, r, src, "os/stable")
	os.WriteFile(filepath.Join(src, "f"), []byte("2"), 0o644)
	c2 := commitTree(t, r, src, "os/stable")
	if got, err := r.ResolveRev("os/stable^"); err != nil || got != c1 {
		t.Fatalf("os/stable^ = %s, %v; want %s", got, err, c1)
	}
	if got, _ := r.ResolveRev(c2.String()[:10]); got != c2 {
		t.Fatalf("prefix resolve = %s", got)
	}
	// Too short a prefix says what a prefix needs, not "not found"; a ref
	// of that name still wins.
	if _, err := r.ResolveRev(c2.String()[:3]); err == nil || !strings.Contains(err.Error(), "at least 4 hex characters") {
		t.Errorf("3-character prefix: %v", err)
	}
	if err := r.SetRef("", "abc", c1); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ResolveRev("abc"); err != nil || got != c1 {
		t.Errorf("ref abc = %s, %v", got, err)
	}
	if err := r.SetRef("", "abc", object.Checksum{}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef("origin", "os/stable", c1); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.ResolveRev("origin:os/stable"); got != c1 {
		t.Fatal("remote ref not resolved")
	}
	refs, _ := r.ListRefs()
	if len(refs) != 2 || refs[0].Refspec() != "origin:os/stable" || refs[1].Refspec() != "os/stable" {
		t.Fatalf("refs %+v", refs)
	}
	for _, bad := range []string{"", "a//b", "-x", "a/.b", c1.String(), "a b"} {
		if err := ValidateRef(bad); err == nil {
			t.Errorf("ref %q accepted", bad)
		}
	}
	if _, err := r.ResolveRev("c1^^"); err == nil {
		t.Fatal("bogus rev resolved")
	}
}

func TestPrune(t *testing.T) {
	r := newRepo(t, ModeArchive)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	var commits []object.Checksum
	for i, content := range []string{"one", "two", "three"} {
		os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644)
		c, err := r.CommitDir(ctx, src, CommitOptions{Branch: "b", Timestamp: time.Unix(int64(1000*(i+1)), 0)})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	// An orphan object, as left by an interrupted transaction.
	tx, _ := r.Begin()
	orphan, _ := tx.WriteContent(&object.FileHeader{Mode: 0o100644}, 6, strings.NewReader("orphan"), nil)
	tx.Commit()

	res, err := r.Prune(ctx, PruneOptions{Depth: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pruned != 1 {
		t.Fatalf("default prune removed %d objects, want only the orphan", res.Pruned)
	}
	if ok, _ := r.HasObject(orphan, object.TypeFile); ok {
		t.Fatal("orphan survived")
	}
	res, err = r.Prune(ctx, PruneOptions{RefsOnly: true, Depth: 1, DryRun: true})
	if err != nil || res.Commits != 1 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if ok, _ := r.HasObject(commits[0], object.TypeCommit); !ok {
		t.Fatal("dry run deleted")
	}
	res, err = r.Prune(ctx, PruneOptions{RefsOnly: true, Depth: -1, KeepYoungerThan: time.Unix(2500, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true} {
		if ok, _ := r.HasObject(commits[i], object.TypeCommit); ok != want {
			t.Errorf("commit %d present=%v, want %v", i, ok, want)
		}
	}
	rep, _ := r.Fsck(ctx, FsckOptions{})
	if len(rep.Problems) != 0 {
		t.Fatalf("fsck after prune: %v", rep.Problems)
	}
	if _, err := r.Prune(ctx, PruneOptions{DeleteCommits: []object.Checksum{commits[2]}}); err == nil {
		t.Fatal("deleting a ref's commit was allowed")
	}
}

func TestUnsupportedFileTypeNamed(t *testing.T) {
	r := newRepo(t, ModeArchive)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	fifo := filepath.Join(src, "pipe")
	if err := mkfifo(fifo); err != nil {
		t.Skip("no mkfifo")
	}
	_, err := r.CommitDir(context.Background(), src, CommitOptions{Branch: "x"})
	if err == nil || !strings.Contains(err.Error(), fifo) {
		t.Fatalf("error %v does not name %s", err, fifo)
	}
	if _, err := r.ReadRef("", "x"); err == nil {
		t.Fatal("failed commit moved the ref")
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }

func TestBareUserOnlyStoresOnlyWhatItKeeps(t *testing.T) {
	r := newRepo(t, ModeBareUserOnly)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	if err := unix.Setxattr(filepath.Join(src, "f"), "user.x", []byte("y"), 0); err != nil {
		t.Skip("no user xattrs here")
	}
	commitTree(t, r, src, "x")
	if rep, err := r.Fsck(context.Background(), FsckOptions{}); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck after a commit with xattrs: %v %v", err, rep.Problems)
	}
	tx, _ := r.Begin()
	defer tx.Abort()
	h := &object.FileHeader{Mode: 0o100644, Xattrs: []object.Xattr{{Name: []byte("user.x\x00"), Value: []byte("y")}}}
	if _, err := tx.WriteContent(h, 1, strings.NewReader("z"), nil); err == nil {
		t.Fatal("an object with xattrs was stored in a bare-user-only repository")
	}
}
