package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestWriteFileAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o640, true); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o644, false); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestFreezeThawFlushesJournal: after an fsync'ed rename, a reader of the
// raw disk that does not replay the journal (a boot loader; debugfs here)
// may still see the old name; after FreezeThaw it sees the new one.
func TestFreezeThawFlushesJournal(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "losetup", "debugfs"} {
		testutil.RequireTool(t, tool)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-O", "has_journal", img, "32M")
	dev := strings.TrimSpace(testutil.Run(t, "losetup", "--find", "--show", img))
	defer testutil.Run(t, "losetup", "--detach", dev)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, 0)
	if err := os.WriteFile(filepath.Join(mnt, "new.tmp"), []byte("config"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SyncFS(mnt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "new.tmp"), filepath.Join(mnt, "loader")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(mnt); err != nil {
		t.Fatal(err)
	}
	if err := FreezeThaw(mnt); err != nil {
		t.Fatal(err)
	}
	if got := testutil.Run(t, "debugfs", "-R", "cat /loader", img); got != "config" {
		t.Fatalf("the raw disk shows %q at /loader after FreezeThaw", got)
	}
	// The file system works normally afterwards (it was thawed).
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
