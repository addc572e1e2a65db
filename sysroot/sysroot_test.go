package sysroot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/object"
)

func TestDeployLayout(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	c1 := commitTree(t, s.Repo(), "testos/stable", treeSpec{version: "1.0"})
	deploy(t, s, "testos/stable", func(o *DeployOptions) { o.Kargs = []string{"root=/dev/vda1", "quiet"} })
	if len(s.Deployments) != 1 || s.Deployments[0].Commit != c1 {
		t.Fatalf("deployments: %+v", s.Deployments)
	}
	d := s.Deployments[0]
	if s.BootVersion != 1 || s.SubBootVersion != 1 {
		t.Fatalf("first deploy: boot.%d.%d, want boot.1.1 like ostree", s.BootVersion, s.SubBootVersion)
	}
	entry, err := os.ReadFile(filepath.Join(dir, "boot/loader/entries/ostree-1-testos.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := "title Test OS 1.0 (ostree:0)\nversion 1\n" +
		"options root=/dev/vda1 quiet ostree=/ostree/boot.1/testos/" + d.BootCsum + "/0\n" +
		"linux /ostree/testos-" + d.BootCsum + "/vmlinuz-6.1.0-test\n" +
		"initrd /ostree/testos-" + d.BootCsum + "/initramfs-6.1.0-test.img\n"
	if string(entry) != want {
		t.Fatalf("entry:\n%s\nwant:\n%s", entry, want)
	}
	// bootcsum = SHA-256(vmlinuz || initramfs)
	if got := sha256hex("KERNEL 6.1.0-testINITRD 6.1.0-test"); got != d.BootCsum {
		t.Fatalf("bootcsum %s, want %s", d.BootCsum, got)
	}
	link, err := os.Readlink(filepath.Join(dir, "ostree/boot.1/testos", d.BootCsum, "0"))
	if err != nil || link != "../../../deploy/testos/deploy/"+c1.String()+".0" {
		t.Fatalf("bootlink %q %v", link, err)
	}
	origin, _ := os.ReadFile(filepath.Join(dir, d.RelDir()+".origin"))
	if string(origin) != "[origin]\nrefspec=testos/stable\n" {
		t.Fatalf("origin %q", origin)
	}
	// /etc is a copy, /usr/etc hardlinks into the repository.
	var st1, st2 = statIno(t, filepath.Join(dir, d.RelDir(), "etc/os-release")), statIno(t, filepath.Join(dir, d.RelDir(), "usr/etc/os-release"))
	if st1 == st2 {
		t.Fatal("/etc/os-release shares its inode with /usr/etc")
	}
	checkConsistent(t, s)

	// /var is the stateroot's, shared and never written by a deploy.
	stateVar := filepath.Join(dir, "ostree/deploy/testos/var")
	os.WriteFile(filepath.Join(stateVar, "lib/state"), []byte("keep"), 0o600)
	varBefore := listFiles(t, stateVar)

	// Second deploy inherits kargs; the first becomes the rollback.
	c2 := commitTree(t, s.Repo(), "testos/stable", treeSpec{version: "2.0"})
	deploy(t, s, "testos/stable")
	if len(s.Deployments) != 2 || s.Deployments[0].Commit != c2 || s.Deployments[1].Commit != c1 {
		t.Fatalf("order after second deploy: %v", names(s))
	}
	if got := s.Deployments[0].Kargs.String(); got != "root=/dev/vda1 quiet" {
		t.Fatalf("inherited kargs %q", got)
	}
	if got := listFiles(t, stateVar); strings.Join(got, ",") != strings.Join(varBefore, ",") {
		t.Fatalf("deploy changed the stateroot /var: %v, was %v", got, varBefore)
	}
	if b, _ := os.ReadFile(filepath.Join(stateVar, "lib/state")); string(b) != "keep" {
		t.Fatal("deploy changed /var content")
	}
	// Third: the oldest goes away, its kernel dir stays (shared bootcsum).
	c3 := commitTree(t, s.Repo(), "testos/stable", treeSpec{version: "3.0"})
	deploy(t, s, "testos/stable")
	if len(s.Deployments) != 2 || s.Deployments[0].Commit != c3 || s.Deployments[1].Commit != c2 {
		t.Fatalf("order after third deploy: %v", names(s))
	}
	if _, err := os.Stat(filepath.Join(dir, "ostree/deploy/testos/deploy", c1.String()+".0")); !os.IsNotExist(err) {
		t.Fatalf("first deployment not cleaned: %v", err)
	}
	if ok, _ := s.Repo().HasObject(c1, object.TypeCommit); ok {
		t.Fatal("commit of the removed deployment was not pruned")
	}
	checkConsistent(t, s)
	checkNoLeftovers(t, s)

	// The same commit again gets serial 1.
	deploy(t, s, c3.String())
	if s.Deployments[0].Serial != 1 || s.Deployments[0].Commit != c3 {
		t.Fatalf("redeploy: %v", names(s))
	}
	if s.Deployments[0].Refspec() != c3.String() {
		t.Fatalf("origin of a checksum deploy: %q", s.Deployments[0].Refspec())
	}
}

func TestRefuseBadCommits(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	commitTree(t, s.Repo(), "good", treeSpec{version: "1"})
	deploy(t, s, "good")
	cases := map[string]treeSpec{
		"nokernel":    {version: "2", kernels: []string{}},
		"twokernels":  {version: "3", kernels: []string{"6.1.0", "6.2.0"}},
		"unreadable":  {version: "4", files: map[string]string{"usr/etc/secret": "s3cret"}},
		"etcandusret": {version: "5", files: map[string]string{"etc/x": "x"}},
	}
	for name, spec := range cases {
		c := commitTree(t, s.Repo(), name, spec)
		if name == "unreadable" {
			// An object of /usr/etc goes missing.
			if err := os.Remove(s.Repo().ObjectPath(fileSum(t, s, c, "usr/etc/secret"), object.TypeFile)); err != nil {
				t.Fatal(err)
			}
		}
		before := listFiles(t, dir)
		_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: name})
		if err == nil {
			t.Fatalf("%s: deploy succeeded", name)
		}
		t.Logf("%s: %v", name, err)
		if after := listFiles(t, dir); strings.Join(before, "\n") != strings.Join(after, "\n") {
			t.Fatalf("%s: refused deploy changed the sysroot", name)
		}
	}
	checkConsistent(t, s)
}

func TestRollbackUndeployPinKargs(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	c1 := commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os", func(o *DeployOptions) { o.Kargs = []string{"console=ttyS0"} })
	c2 := commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os")
	ctx := context.Background()
	if _, err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Deployments[0].Commit != c1 || s.Deployments[1].Commit != c2 {
		t.Fatalf("after rollback: %v", names(s))
	}
	reopened := openSysroot(t, dir)
	if reopened.Deployments[0].Commit != c1 {
		t.Fatal("rollback not persistent")
	}
	checkConsistent(t, s)

	// Pin the rollback (c2), deploy twice: it survives.
	if err := s.SetPinned(1, true); err != nil {
		t.Fatal(err)
	}
	commitTree(t, s.Repo(), "os", treeSpec{version: "3"})
	deploy(t, s, "os")
	commitTree(t, s.Repo(), "os", treeSpec{version: "4"})
	deploy(t, s, "os")
	found := false
	for _, d := range s.Deployments {
		if d.Commit == c2 && d.Pinned() {
			found = true
		}
	}
	if !found || len(s.Deployments) != 3 {
		t.Fatalf("pinned deployment lost: %v", names(s))
	}

	// Kernel arguments per deployment.
	k, err := s.SetKargs(ctx, 0, KargsEdit{Append: []string{"foo=bar"}, Replace: []string{"console=tty0"}})
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != "console=tty0 foo=bar" {
		t.Fatalf("kargs %q", k)
	}
	entries, _ := s.loader().ReadEntries(s.BootVersion)
	if !strings.HasPrefix(entries[0].Get("options"), "console=tty0 foo=bar ostree=/ostree/boot.") {
		t.Fatalf("entry options %q", entries[0].Get("options"))
	}
	if _, err := s.SetKargs(ctx, 0, KargsEdit{Delete: []string{"missing"}}); err == nil {
		t.Fatal("deleting a missing karg succeeded")
	}
	if _, err := s.SetKargs(ctx, 0, KargsEdit{Append: []string{"ostree=/x"}}); err == nil {
		t.Fatal("setting ostree= succeeded")
	}

	// Undeploy the last; the pinned one can be undeployed explicitly too.
	n := len(s.Deployments)
	if _, err := s.Undeploy(ctx, s.Deployments[n-1].Name()); err != nil {
		t.Fatal(err)
	}
	if len(s.Deployments) != n-1 {
		t.Fatalf("undeploy: %v", names(s))
	}
	if _, err := s.Undeploy(ctx, "7"); err == nil || !strings.Contains(err.Error(), "no deployment 7") {
		t.Fatalf("undeploy of a missing name: %v", err)
	}
	checkConsistent(t, s)
	checkNoLeftovers(t, s)
}

func TestStageAndFinalize(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	c1 := commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	c2 := commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os", func(o *DeployOptions) { o.Stage = true })
	if s.Staged == nil || s.Staged.Commit != c2 || s.Deployments[0].Commit != c1 {
		t.Fatal("staging changed the boot configuration")
	}
	// A change to /etc after staging must be carried by finalize.
	if err := os.WriteFile(filepath.Join(dir, s.Deployments[0].RelDir(), "etc/late"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openSysroot(t, dir)
	if s2.Staged == nil || s2.Staged.Commit != c2 {
		t.Fatal("staged deployment not found after reopening")
	}
	// Cleanup keeps the staged deployment.
	if _, err := s2.Cleanup(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	// Locked: nothing happens.
	os.WriteFile(s2.stagedLockedPath(), nil, 0o644)
	if _, err := s2.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s2.Deployments[0].Commit != c1 {
		t.Fatal("locked staged deployment was finalized")
	}
	os.Remove(s2.stagedLockedPath())
	if _, err := s2.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s2.Deployments[0].Commit != c2 || s2.Deployments[1].Commit != c1 || s2.Staged != nil {
		t.Fatalf("after finalize: %v", names(s2))
	}
	if b, err := os.ReadFile(filepath.Join(dir, s2.Deployments[0].RelDir(), "etc/late")); err != nil || string(b) != "late\n" {
		t.Fatalf("late /etc change not merged: %q %v", b, err)
	}
	if _, err := s2.Finalize(context.Background()); err != ErrNothingStaged {
		t.Fatalf("second finalize: %v", err)
	}
	checkConsistent(t, s2)
	checkNoLeftovers(t, s2)
}

func TestKargs(t *testing.T) {
	k := bootloader.ParseKargs(`root=/dev/sda1  quiet foo="a b" quiet`)
	if len(k) != 4 || k[2] != `foo="a b"` {
		t.Fatalf("parse: %q", k)
	}
	k = k.Replace("quiet")
	if k.String() != `root=/dev/sda1 quiet foo="a b"` {
		t.Fatalf("replace: %q", k)
	}
}

func names(s *Sysroot) []string {
	var out []string
	for _, d := range s.Deployments {
		out = append(out, d.Name()+" "+d.Version)
	}
	return out
}

func TestDeployWritesDetectedBootloader(t *testing.T) {
	tool := testutil.RequireTool(t, "grub-script-check")
	dir := t.TempDir()
	s := newSysroot(t, dir)
	os.MkdirAll(filepath.Join(dir, "boot/grub"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot/grub/grub.cfg"), []byte("# installer's\n"), 0o644)
	commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os")
	if l, _ := os.Readlink(filepath.Join(dir, "boot/grub/grub.cfg")); l != "../loader/grub.cfg" {
		t.Fatalf("grub.cfg link %q", l)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "boot/grub/grub.cfg"))
	if err != nil || strings.Count(string(cfg), "menuentry ") != 2 {
		t.Fatalf("grub.cfg: %v\n%s", err, cfg)
	}
	testutil.Run(t, tool, filepath.Join(dir, "boot/grub/grub.cfg"))
}
