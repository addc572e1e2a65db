package sysroot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/testutil"
)

// TestBootCountingGrub2: a new default gets the configured tries in
// grubenv, a rewrite that keeps the default keeps its counter, marking
// the booted default good ends counting, a fallback boot does not.
func TestBootCountingGrub2(t *testing.T) {
	editenv := testutil.RequireTool(t, "grub-editenv")
	dir := t.TempDir()
	s := newSysroot(t, dir)
	os.MkdirAll(filepath.Join(dir, "boot/grub"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot/grub/grub.cfg"), []byte("# installer's\n"), 0o644)
	envPath := filepath.Join(dir, "boot/grub/grubenv")
	list := func() string { return testutil.Run(t, editenv, envPath, "list") }

	commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	// One deployment: nothing to fall back to.
	if st, err := s.BootCount(); err != nil || st.Method != "grubenv" || st.Counting {
		t.Fatalf("first deployment: %+v %v", st, err)
	}
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os")
	if got := list(); got != "boot_counter=3\nboot_success=0\n" {
		t.Fatalf("grubenv after the second deploy: %q", got)
	}
	// grub used two tries; changing the kernel arguments of the rollback
	// rewrites the configuration with the same default: the count stands.
	testutil.Run(t, editenv, envPath, "set", "boot_counter=1")
	if _, err := s.SetKargs(context.Background(), 1, KargsEdit{Append: []string{"x=1"}}); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "boot_counter=1\nboot_success=0\n" {
		t.Fatalf("grubenv after a rewrite with the same default: %q", got)
	}
	testutil.Run(t, editenv, envPath, "set", "boot_counter=0")
	st, err := s.BootCount()
	if err != nil || !st.Exhausted() {
		t.Fatalf("used up: %+v %v", st, err)
	}
	// Booted from the fallback: the failed default stays failed.
	res, err := s.markGood(s.Deployments[1])
	if err != nil || res.Changed || !res.FellBack || !res.State.Exhausted() {
		t.Fatalf("mark good after a fallback: %+v %v", res, err)
	}
	// The default booted fine.
	res, err = s.markGood(s.Deployments[0])
	if err != nil || !res.Changed || res.FellBack || res.State.Counting {
		t.Fatalf("mark good of the default: %+v %v", res, err)
	}
	if got := list(); got != "boot_success=1\n" {
		t.Fatalf("grubenv after mark good: %q", got)
	}
	// Offline there is no booted deployment to mark.
	if _, err := s.MarkBootGood(); err == nil || !strings.Contains(err.Error(), "not booted") {
		t.Fatalf("MarkBootGood offline: %v", err)
	}

	// Counting off, and a bad setting named.
	s.Repo().Config().Set("sysroot", BootTriesKey, "0")
	commitTree(t, s.Repo(), "os", treeSpec{version: "3"})
	deploy(t, s, "os")
	if got := list(); got != "boot_success=1\n" {
		t.Fatalf("grubenv with counting off: %q", got)
	}
	s.Repo().Config().Set("sysroot", BootTriesKey, "12")
	commitTree(t, s.Repo(), "os", treeSpec{version: "4"})
	if _, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: "os"}); err == nil || !strings.Contains(err.Error(), BootTriesKey) {
		t.Fatalf("tries 12: %v", err)
	}
	s.Repo().Config().Set("sysroot", BootTriesKey, "5")
	deploy(t, s, "os")
	if got := list(); got != "boot_counter=5\nboot_success=0\n" {
		t.Fatalf("grubenv with 5 tries: %q", got)
	}
}

// TestBootCountingSystemdBoot: the counter is in the default entry's file
// name, carried over while the default stays, dropped by mark good; the
// entries stay readable whatever the boot loader renamed them to.
func TestBootCountingSystemdBoot(t *testing.T) {
	dir := t.TempDir()
	InitFS(dir)
	s, err := Open(dir, Options{NoSync: true, MutableDeployments: true, Bootloader: "systemd-boot"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InitOS("testos"); err != nil {
		t.Fatal(err)
	}
	entryNames := func() []string {
		des, _ := os.ReadDir(filepath.Join(dir, "boot/loader/entries"))
		var out []string
		for _, de := range des {
			out = append(out, de.Name())
		}
		return out
	}
	commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os")
	if got := strings.Join(entryNames(), " "); got != "ostree-1-testos.conf ostree-2-testos+3.conf" {
		t.Fatalf("entries: %s", got)
	}
	// systemd-boot tried it once.
	e := filepath.Join(dir, "boot/loader/entries")
	os.Rename(filepath.Join(e, "ostree-2-testos+3.conf"), filepath.Join(e, "ostree-2-testos+2-1.conf"))
	if err := s.Load(); err != nil || len(s.Deployments) != 2 {
		t.Fatalf("load: %v %d", err, len(s.Deployments))
	}
	if st, _ := s.BootCount(); st.Method != "systemd-boot" || st.Left != 2 || st.Done != 1 {
		t.Fatalf("state %+v", st)
	}
	if _, err := s.SetKargs(context.Background(), 1, KargsEdit{Append: []string{"x=1"}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(entryNames(), " "); got != "ostree-1-testos.conf ostree-2-testos+2-1.conf" {
		t.Fatalf("entries after a rewrite: %s", got)
	}
	res, err := s.markGood(s.Deployments[0])
	if err != nil || !res.Changed {
		t.Fatalf("mark good: %+v %v", res, err)
	}
	if got := strings.Join(entryNames(), " "); got != "ostree-1-testos.conf ostree-2-testos.conf" {
		t.Fatalf("entries after mark good: %s", got)
	}
	if err := s.Load(); err != nil || len(s.Deployments) != 2 {
		t.Fatalf("load: %v", err)
	}
	if st, _ := s.BootCount(); st.Counting {
		t.Fatalf("state after mark good %+v", st)
	}
	var _ = bootloader.DefaultTries
}
