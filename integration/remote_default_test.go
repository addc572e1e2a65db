package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// Issue 15: a remote added the way libostree's documentation shows
// (`ostree remote add --no-gpg-verify NAME URL`) upgrades from a server
// that publishes no summary.sig, with a warning that the summary is
// unverified; a remote with a key keeps the stricter default and the
// error names the option to set.
func TestHostRemoteAddedByOstreeNoGPGVerify(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	h := newHost(t)
	repoDir := filepath.Join(h.sysroot, "ostree/repo")
	testutil.Run(t, ostree, "remote", "delete", "--repo="+repoDir, "origin")
	testutil.Run(t, ostree, "remote", "add", "--repo="+repoDir, "--no-gpg-verify", "origin", h.url)
	v2 := h.publish("2", nil)
	if err := os.Remove(filepath.Join(h.server.Path(), "summary.sig")); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := h.client("upgrade")
	if err != nil {
		t.Fatalf("upgrade with a remote added by ostree --no-gpg-verify: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, `remote "origin": the summary is not verified`) {
		t.Fatalf("no warning about the unverified summary:\n%s", out)
	}
	if st := h.status(); st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("not deployed: %+v", st.Deployments)
	}

	// With the publisher's key imported (and gpg-verify-summary still
	// unset) the summary must be signed.
	testutil.Run(t, ostree, "remote", "delete", "--repo="+repoDir, "origin")
	testutil.Run(t, ostree, "remote", "add", "--repo="+repoDir, "--gpg-import="+h.keyFile, "origin", h.url)
	h.publish("3", nil)
	os.Remove(filepath.Join(h.server.Path(), "summary.sig"))
	_, errOut, err = h.client("upgrade")
	if err == nil || !strings.Contains(errOut, "summary.sig is missing") || !strings.Contains(errOut, "gpg-verify-summary=false") {
		t.Fatalf("upgrade from a keyed remote without summary.sig: %v\n%s", err, errOut)
	}
}
