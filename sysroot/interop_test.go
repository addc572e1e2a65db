package sysroot

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// ostreeStatus parses `ostree admin status`: deployment names in order and
// their origin refspecs.
func ostreeStatus(t *testing.T, dir string) (names, refspecs []string) {
	t.Helper()
	out := testutil.Run(t, "ostree", "admin", "status", "--sysroot", dir)
	dep := regexp.MustCompile(`^[* ] (\S+) ([0-9a-f]{64}\.[0-9]+)`)
	for _, line := range strings.Split(out, "\n") {
		if m := dep.FindStringSubmatch(line); m != nil {
			names = append(names, m[1]+" "+m[2])
		} else if r, ok := strings.CutPrefix(strings.TrimSpace(line), "origin refspec: "); ok {
			refspecs = append(refspecs, r)
		}
	}
	return names, refspecs
}

func ourStatus(s *Sysroot) (names, refspecs []string) {
	for _, d := range s.Deployments {
		names = append(names, d.OS+" "+d.Name())
		refspecs = append(refspecs, d.Refspec())
	}
	return names, refspecs
}

func TestOstreeReadsOurSysroot(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	clearImmutable(t, dir)
	if err := InitFS(dir); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InitOS("testos"); err != nil {
		t.Fatal(err)
	}
	commitTree(t, s.Repo(), "testos/stable", treeSpec{version: "1.0"})
	deploy(t, s, "testos/stable", func(o *DeployOptions) { o.Kargs = []string{"root=LABEL=root"} })
	c2 := commitTree(t, s.Repo(), "testos/next", treeSpec{version: "2.0"})
	deploy(t, s, c2.String(), func(o *DeployOptions) { o.OriginRefspec = "remote:testos/next" })
	names, refspecs := ostreeStatus(t, dir)
	wantNames, wantRefs := ourStatus(s)
	if strings.Join(names, ",") != strings.Join(wantNames, ",") || strings.Join(refspecs, ",") != strings.Join(wantRefs, ",") {
		t.Fatalf("ostree admin status:\n%v %v\nwant:\n%v %v", names, refspecs, wantNames, wantRefs)
	}
	if _, err := s.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	names, _ = ostreeStatus(t, dir)
	wantNames, _ = ourStatus(s)
	if strings.Join(names, ",") != strings.Join(wantNames, ",") {
		t.Fatalf("after rollback ostree says %v, want %v", names, wantNames)
	}
	testutil.Run(t, "ostree", "fsck", "--repo", dir+"/ostree/repo")
	// ostree can deploy on top of ours and keeps our deployments readable.
	cmd := []string{"admin", "deploy", "--sysroot", dir, "--os", "testos", "testos/stable"}
	testutil.Run(t, "ostree", cmd...)
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	names, _ = ostreeStatus(t, dir)
	wantNames, _ = ourStatus(s)
	if strings.Join(names, ",") != strings.Join(wantNames, ",") {
		t.Fatalf("after ostree deploy: ostree %v, ours %v", names, wantNames)
	}
}

func TestWeReadOstreeSysroot(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	clearImmutable(t, dir)
	testutil.Run(t, "ostree", "admin", "init-fs", dir)
	testutil.Run(t, "ostree", "admin", "os-init", "testos", "--sysroot", dir)
	tree := t.TempDir()
	writeTree(t, tree, treeSpec{version: "1.0"})
	repoDir := dir + "/ostree/repo"
	testutil.Run(t, "ostree", "--repo="+repoDir, "commit", "-b", "testos/stable", "--add-metadata-string=version=1.0", tree)
	testutil.Run(t, "ostree", "admin", "deploy", "--sysroot", dir, "--os", "testos", "--karg=root=/dev/vda2", "testos/stable")
	os.WriteFile(tree+"/usr/bin/tool", []byte("v2"), 0o755)
	testutil.Run(t, "ostree", "--repo="+repoDir, "commit", "-b", "testos/stable", "--add-metadata-string=version=2.0", tree)
	testutil.Run(t, "ostree", "admin", "deploy", "--sysroot", dir, "--os", "testos", "testos/stable")

	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names, refspecs := ostreeStatus(t, dir)
	ours, ourRefs := ourStatus(s)
	if strings.Join(names, ",") != strings.Join(ours, ",") || strings.Join(refspecs, ",") != strings.Join(ourRefs, ",") {
		t.Fatalf("we read %v %v, ostree says %v %v", ours, ourRefs, names, refspecs)
	}
	if s.Deployments[0].Version != "2.0" || s.Deployments[0].Kargs.String() != "root=/dev/vda2" {
		t.Fatalf("deployment 0: version %q kargs %q", s.Deployments[0].Version, s.Deployments[0].Kargs)
	}
	for _, d := range s.Deployments {
		if err := s.VerifyDeployment(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	oldest := s.Deployments[1]
	// Deploy on top: ostree's immutable rollback deployment is removed.
	os.WriteFile(tree+"/usr/bin/tool", []byte("v3"), 0o755)
	testutil.Run(t, "ostree", "--repo="+repoDir, "commit", "-b", "testos/stable", "--add-metadata-string=version=3.0", tree)
	deploy(t, s, "testos/stable")
	if _, err := os.Lstat(s.abs(oldest.RelDir())); !os.IsNotExist(err) {
		t.Fatalf("immutable ostree deployment not removed: %v", err)
	}
	names, _ = ostreeStatus(t, dir)
	ours, _ = ourStatus(s)
	if len(ours) != 2 || strings.Join(names, ",") != strings.Join(ours, ",") {
		t.Fatalf("after our deploy: ostree %v, ours %v", names, ours)
	}
	checkConsistent(t, s)
	checkNoLeftovers(t, s)
	testutil.Run(t, "ostree", "fsck", "--repo", repoDir)
}

// TestEntriesMatchOstree deploys the same trees with ostree and with
// os-update and compares the boot entries byte for byte.
func TestEntriesMatchOstree(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	variants := map[string]treeSpec{
		"plain": {version: "1.0"},
		"devicetree-no-initramfs": {version: "2.0", kernels: []string{}, files: map[string]string{
			"usr/lib/modules/5.4.0/vmlinuz": "KERNEL", "usr/lib/modules/5.4.0/devicetree": "DTB"}},
		"dtb-dir-hmac": {version: "3.0", kernels: []string{}, files: map[string]string{
			"usr/lib/modules/5.4.0/vmlinuz": "KERNEL", "usr/lib/modules/5.4.0/initramfs.img": "I",
			"usr/lib/modules/5.4.0/dtb/b/x.dtb": "X", "usr/lib/modules/5.4.0/dtb/a.dtb": "A",
			"usr/lib/modules/5.4.0/.vmlinuz.hmac": "H"}},
		"version-in-name": {version: "1.0", files: map[string]string{"usr/lib/os-release": "PRETTY_NAME=\"Test OS 1.0\"\n"}},
	}
	for name, spec := range variants {
		t.Run(name, func(t *testing.T) {
			theirs, ours := t.TempDir(), t.TempDir()
			clearImmutable(t, theirs)
			testutil.Run(t, "ostree", "admin", "init-fs", theirs)
			for _, osname := range []string{"testos", "other"} {
				testutil.Run(t, "ostree", "admin", "os-init", osname, "--sysroot", theirs)
			}
			tree := t.TempDir()
			writeTree(t, tree, spec)
			testutil.Run(t, "ostree", "--repo="+theirs+"/ostree/repo", "commit", "-b", "os", "--add-metadata-string=version="+spec.version, tree)
			testutil.Run(t, "ostree", "admin", "deploy", "--sysroot", theirs, "--os", "testos", "--karg=root=/dev/vda1", "os")
			testutil.Run(t, "ostree", "admin", "deploy", "--sysroot", theirs, "--os", "other", "--karg=root=/dev/vda1", "os")

			s := newSysroot(t, ours)
			if err := s.InitOS("other"); err != nil {
				t.Fatal(err)
			}
			commitTree(t, s.Repo(), "os", spec)
			deploy(t, s, "os", func(o *DeployOptions) { o.Kargs = []string{"root=/dev/vda1"} })
			deploy(t, s, "os", func(o *DeployOptions) { o.OS = "other"; o.Kargs = []string{"root=/dev/vda1"} })
			for _, e := range []string{"ostree-1-testos.conf", "ostree-2-other.conf"} {
				want, err := os.ReadFile(theirs + "/boot/loader/entries/" + e)
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(ours + "/boot/loader/entries/" + e)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Errorf("%s:\n%s\nostree wrote:\n%s", e, got, want)
				}
			}
			wantFiles := testutil.Run(t, "find", theirs+"/boot/ostree", "-printf", "%P %y %s\n")
			gotFiles := testutil.Run(t, "find", ours+"/boot/ostree", "-printf", "%P %y %s\n")
			if sortLines(wantFiles) != sortLines(gotFiles) {
				t.Errorf("boot/ostree:\n%s\nostree:\n%s", sortLines(gotFiles), sortLines(wantFiles))
			}
		})
	}
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestDeployIntoOstreeStateroot: `ostree admin os-init` creates only the
// stateroot's var/; its deploy/ directory appears with the first
// deployment. Our first deploy into such a stateroot must create it, as
// libostree does.
func TestDeployIntoOstreeStateroot(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	dir := t.TempDir()
	clearImmutable(t, dir)
	testutil.Run(t, "ostree", "admin", "init-fs", dir)
	testutil.Run(t, "ostree", "admin", "os-init", "testos", "--sysroot", dir)
	tree := t.TempDir()
	writeTree(t, tree, treeSpec{version: "1.0"})
	testutil.Run(t, "ostree", "--repo="+dir+"/ostree/repo", "commit", "-b", "testos/stable", "--add-metadata-string=version=1.0", tree)
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deploy(t, s, "testos/stable")
	names, _ := ostreeStatus(t, dir)
	ours, _ := ourStatus(s)
	if len(ours) != 1 || strings.Join(names, ",") != strings.Join(ours, ",") {
		t.Fatalf("after our first deploy: ostree %v, ours %v", names, ours)
	}
	checkConsistent(t, s)
}
