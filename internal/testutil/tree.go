package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Entry describes one path of a tree for comparisons.
type Entry struct {
	Mode    os.FileMode
	UID     uint32
	GID     uint32
	Size    int64
	SHA256  string // regular files
	Target  string // symlinks
	Xattrs  string // user.* xattrs, sorted "name=value;"
	LinkSet int    // hardlink group id, 0 if the file has one link
}

// TreeOptions selects what SnapshotTree records.
type TreeOptions struct {
	Hardlinks bool // record hardlink groups (checkouts from bare repos)
	Owners    bool
}

// SnapshotTree records every path under root (relative, "/" for root).
func SnapshotTree(t testing.TB, root string, opts TreeOptions) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = "/" + strings.TrimPrefix(filepath.ToSlash(rel), ".")
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := Entry{Mode: fi.Mode()}
		if opts.Owners {
			e.UID, e.GID = st.Uid, st.Gid
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.SHA256 = hex.EncodeToString(sum[:])
			e.Size = int64(len(b))
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case fi.Mode()&os.ModeSymlink != 0:
			e.Target, _ = os.Readlink(p)
		}
		e.Xattrs = userXattrs(p)
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	if opts.Hardlinks {
		// Number hardlink groups by their first path, so two trees compare.
		var groups [][]string
		for _, paths := range inodes {
			if len(paths) > 1 {
				sort.Strings(paths)
				groups = append(groups, paths)
			}
		}
		sort.Slice(groups, func(i, j int) bool { return groups[i][0] < groups[j][0] })
		for i, g := range groups {
			for _, p := range g {
				e := out[p]
				e.LinkSet = i + 1
				out[p] = e
			}
		}
	}
	return out
}

func userXattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var parts []string
	for _, name := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		parts = append(parts, name+"="+string(v[:m])+";")
	}
	sort.Strings(parts)
	return strings.Join(parts, "")
}

// CompareTrees fails the test with every difference between two snapshots.
func CompareTrees(t testing.TB, want, got map[string]Entry) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			diffs = append(diffs, "missing "+p)
			continue
		}
		if w != g {
			diffs = append(diffs, fmt.Sprintf("%s: want %+v, got %+v", p, w, g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	if len(diffs) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

// MakeSampleTree writes a tree exercising what commits must preserve:
// nested and empty directories, empty and large files, unusual modes,
// symlinks (relative, absolute, dangling), hardlinks, user xattrs on files
// and directories, non-ASCII names, and (as root) foreign ownership.
func MakeSampleTree(t testing.TB, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 1<<20+17)
	rng.Read(big)
	must(os.MkdirAll(root, 0o755))
	write("usr/bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o755)
	write("usr/bin/suid", []byte("setuid program"), 0o4755|os.ModeSetuid)
	must(os.Chmod(filepath.Join(root, "usr/bin/suid"), 0o755|os.ModeSetuid))
	write("usr/share/data/big.bin", big, 0o644)
	write("usr/share/data/empty", nil, 0o644)
	write("usr/share/data/größe €.txt", []byte("unicode name\n"), 0o600)
	write("usr/share/data/with space", []byte("space\n"), 0o640)
	write("usr/lib/a.so", []byte("shared library bytes"), 0o755)
	must(os.Link(filepath.Join(root, "usr/lib/a.so"), filepath.Join(root, "usr/lib/a-hardlink.so")))
	must(os.Symlink("a.so", filepath.Join(root, "usr/lib/liba.so")))
	must(os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(root, "usr/lib/absolute-link")))
	must(os.Symlink("../../nonexistent", filepath.Join(root, "usr/lib/dangling")))
	must(os.MkdirAll(filepath.Join(root, "usr/share/empty-dir"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "var/lib/sticky"), 0o755))
	must(os.Chmod(filepath.Join(root, "var/lib/sticky"), 0o777|os.ModeSticky))
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	write("etc/config", []byte("key=value\n"), 0o644)
	must(unix.Setxattr(filepath.Join(root, "etc/config"), "user.test", []byte("file-xattr"), 0))
	must(unix.Setxattr(filepath.Join(root, "etc"), "user.dir", []byte("dir-xattr"), 0))
	for i := 0; i < 50; i++ {
		b := make([]byte, rng.Intn(3000))
		rng.Read(b)
		write(fmt.Sprintf("usr/share/many/f%03d", i), b, 0o644)
	}
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(root, "usr/share/data/with space"), 1000, 1001))
		must(os.Lchown(filepath.Join(root, "usr/lib/liba.so"), 1000, 1000))
		must(os.Chown(filepath.Join(root, "var/lib/sticky"), 1002, 1002))
	}
}
