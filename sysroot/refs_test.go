package sysroot

import "testing"

// Writing the deployment refs replaces ostree/N/N/N refs only: the refs
// of imported container images (ostree/container/...) stay, or every
// deploy would make the next image import download all layers again.
func TestDeploymentRefsKeepContainerRefs(t *testing.T) {
	s := newSysroot(t, t.TempDir())
	c1 := commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	for _, ref := range []string{"ostree/container/blob/sha256_3A_00", "ostree/container/image/x", "ostree/9/9/9"} {
		if err := s.Repo().SetRef("", ref, c1); err != nil {
			t.Fatal(err)
		}
	}
	deploy(t, s, "os")
	for _, ref := range []string{"ostree/container/blob/sha256_3A_00", "ostree/container/image/x"} {
		if c, err := s.Repo().ReadRef("", ref); err != nil || c != c1 {
			t.Fatalf("ref %s after deploy: %v %v", ref, c, err)
		}
	}
	if _, err := s.Repo().ReadRef("", "ostree/9/9/9"); err == nil {
		t.Fatal("a stale deployment ref ostree/9/9/9 survived the deploy")
	}
	if c, err := s.Repo().ReadRef("", "ostree/0/1/0"); err != nil || c != c1 {
		// The boot version the first deploy writes.
		if c0, err0 := s.Repo().ReadRef("", "ostree/1/1/0"); err0 != nil || c0 != c1 {
			t.Fatalf("deployment ref: %v %v / %v %v", c, err, c0, err0)
		}
	}
}
