package repo

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/internal/testutil"
)

// The min-free-space options mean what they mean to libostree.
func TestMinFreeSpaceOptions(t *testing.T) {
	dir := testutil.MountTmpfs(t, "size=10m")
	r, err := Init(filepath.Join(dir, "repo"), ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const total = 10 << 20
	set := func(kv ...string) {
		r.Config().Delete("core", "min-free-space-size")
		r.Config().Delete("core", "min-free-space-percent")
		for i := 0; i < len(kv); i += 2 {
			r.Config().Set("core", kv[i], kv[i+1])
		}
	}
	for _, c := range []struct {
		kv     []string
		bytes  uint64
		option string
	}{
		{nil, total * 3 / 100, "min-free-space-percent=3"},
		{[]string{"min-free-space-percent", "10"}, total / 10, "min-free-space-percent=10"},
		{[]string{"min-free-space-percent", "0"}, 0, ""},
		{[]string{"min-free-space-size", "5MB"}, 5 << 20, "min-free-space-size=5MB"},
		{[]string{"min-free-space-size", "2GB"}, 2 << 30, "min-free-space-size=2GB"},
		{[]string{"min-free-space-size", "1TB"}, 1 << 40, "min-free-space-size=1TB"},
		// Size wins over percent when both are set and non-zero.
		{[]string{"min-free-space-percent", "50", "min-free-space-size", "1MB"}, 1 << 20, "min-free-space-size=1MB"},
		// A zero size alone turns the check off (no 3% default).
		{[]string{"min-free-space-size", "0MB"}, 0, ""},
		{[]string{"min-free-space-size", "0MB", "min-free-space-percent", "20"}, total / 5, "min-free-space-percent=20"},
	} {
		set(c.kv...)
		res, err := r.MinFreeSpace()
		if err != nil {
			t.Errorf("%v: %v", c.kv, err)
			continue
		}
		if res.Bytes != c.bytes || !strings.HasPrefix(res.Option, c.option) {
			t.Errorf("%v: got %d bytes (%q), want %d (%q)", c.kv, res.Bytes, res.Option, c.bytes, c.option)
		}
	}
	for _, kv := range [][]string{
		{"min-free-space-size", "5"}, {"min-free-space-size", "5KB"}, {"min-free-space-size", "5 MB"},
		{"min-free-space-size", "-1MB"}, {"min-free-space-size", "99999999999999999TB"},
		{"min-free-space-percent", "100"}, {"min-free-space-percent", "x"}, {"min-free-space-percent", "-3"},
	} {
		set(kv...)
		if _, err := r.MinFreeSpace(); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%v: got %v, want an error naming %s", kv, err, kv[0])
		}
	}

	// CheckSpace: need plus reserve against what is free.
	set("min-free-space-size", "4MB")
	if err := r.CheckSpace("test", 1<<20); err != nil {
		t.Errorf("1 MiB with a 4 MiB reserve on an empty 10 MiB tmpfs: %v", err)
	}
	err = r.CheckSpace("test", 7<<20)
	var ns *fsutil.NoSpaceError
	if !errors.As(err, &ns) || ns.Need != 7<<20 || ns.Reserve.Bytes != 4<<20 {
		t.Fatalf("7 MiB with a 4 MiB reserve: got %v", err)
	}
	for _, want := range []string{"test:", r.Path(), "7340032 bytes", "min-free-space-size=4MB", "free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
