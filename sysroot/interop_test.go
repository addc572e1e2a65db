package sysroot

import (
	"context"
	"os"
	"regexp"
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
