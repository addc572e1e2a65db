package client

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// TestAdminStatusJSONGolden: `admin status --json` prints the one
// deployment schema (api.Deployment, docs/json.md) field for field;
// checksums, which depend on who runs the test (file owners), are
// replaced by names before the comparison.
func TestAdminStatusJSONGolden(t *testing.T) {
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := filepath.Join(t.TempDir(), "sysroot")
	runCLI(t, "admin", "init-fs", dir)
	runCLI(t, "admin", "os-init", "gold", "--sysroot", dir)
	commit := func(version string, when time.Time) object.Checksum {
		tree := t.TempDir()
		for p, c := range map[string]string{
			"usr/lib/modules/6.1.0/vmlinuz": "kernel", "usr/lib/modules/6.1.0/initramfs.img": "initramfs",
			"usr/lib/os-release": "ID=gold\n", "usr/etc/hostname": "gold\n", "usr/bin/v": version,
		} {
			os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644)
		}
		r, err := repo.Open(filepath.Join(dir, "ostree/repo"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var md object.Metadata
		md.Set("version", gvariant.NewVariant("s", version))
		c, err := r.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: "gold/stable", Subject: "Gold OS " + version,
			Metadata: md, Timestamp: when})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := commit("1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "gold", "--karg", "root=LABEL=root", "gold/stable")
	c2 := commit("2", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "gold", "--origin-refspec", "origin:gold/stable", "gold/stable", "--karg-append", "quiet")
	runCLI(t, "admin", "pin", "1", "--sysroot", dir)

	out := runCLI(t, "admin", "status", "--sysroot", dir, "--json")
	st := status(t, dir)
	names := strings.NewReplacer(c1.String(), "COMMIT-1", c2.String(), "COMMIT-2",
		st.Deployments[0].BootCsum, "BOOTCSUM") // one kernel: one boot checksum
	got := names.Replace(out)
	golden := filepath.Join("testdata", "admin-status.golden.json")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("admin status --json:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}
