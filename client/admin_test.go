package client

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Main(args, &out, &errOut); code != 0 {
		t.Fatalf("os-update %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	}
	return out.String()
}

func commitOS(t *testing.T, repoPath, version string) object.Checksum {
	t.Helper()
	tree := t.TempDir()
	for p, c := range map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz": "K", "usr/lib/modules/6.1.0/initramfs.img": "I",
		"usr/lib/os-release": "PRETTY_NAME=\"CLI OS\"\n", "usr/etc/hostname": "box\n", "usr/bin/v": version,
	} {
		os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644)
	}
	r, err := repo.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var md object.Metadata
	md.Set("version", gvariant.NewVariant("s", version))
	c, err := r.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: "cli/os", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type statusJSON struct {
	Deployments []api.Deployment `json:"deployments"`
}

func status(t *testing.T, dir string) statusJSON {
	t.Helper()
	var st statusJSON
	if err := json.Unmarshal([]byte(runCLI(t, "admin", "status", "--sysroot", dir, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdminCommands(t *testing.T) {
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := filepath.Join(t.TempDir(), "sysroot")
	runCLI(t, "admin", "init-fs", dir)
	runCLI(t, "admin", "os-init", "cli", "--sysroot", dir)
	c1 := commitOS(t, dir+"/ostree/repo", "1")
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "cli", "--karg", "root=/dev/sda2", "cli/os")
	c2 := commitOS(t, dir+"/ostree/repo", "2")
	runCLI(t, "admin", "deploy", "--sysroot", dir, "cli/os", "--karg-append", "debug")
	st := status(t, dir)
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != c2.String() || st.Deployments[1].Checksum != c1.String() ||
		!st.Deployments[1].Rollback || strings.Join(st.Deployments[0].Kargs, " ") != "root=/dev/sda2 debug" {
		t.Fatalf("status %+v", st)
	}
	// Offline the default is not tagged pending; the next one is the rollback.
	if out := runCLI(t, "admin", "status", "--sysroot", dir); !strings.Contains(out, "origin refspec: cli/os") ||
		strings.Contains(out, "(pending)") || !strings.Contains(out, c1.String()+".0 (rollback)") {
		t.Fatalf("text status:\n%s", out)
	}
	runCLI(t, "admin", "kargs", "--sysroot", dir, "--replace", "root=/dev/sda3", "--delete", "debug")
	if got := strings.TrimSpace(runCLI(t, "admin", "kargs", "--sysroot", dir)); got != "root=/dev/sda3" {
		t.Fatalf("kargs %q", got)
	}
	runCLI(t, "admin", "pin", "1", "--sysroot", dir)
	if !status(t, dir).Deployments[1].Pinned {
		t.Fatal("pin")
	}
	runCLI(t, "admin", "pin", "1", "--unpin", "--sysroot", dir)
	runCLI(t, "admin", "rollback", "--sysroot", dir)
	if status(t, dir).Deployments[0].Checksum != c1.String() {
		t.Fatal("rollback")
	}
	c3 := commitOS(t, dir+"/ostree/repo", "3")
	runCLI(t, "admin", "deploy", "--sysroot", dir, "--os", "cli", "--stage", "cli/os")
	st = status(t, dir)
	if !st.Deployments[0].Staged || st.Deployments[0].Checksum != c3.String() {
		t.Fatalf("staged status %+v", st)
	}
	runCLI(t, "finalize", "--sysroot", dir)
	st = status(t, dir)
	if st.Deployments[0].Staged || st.Deployments[0].Checksum != c3.String() || len(st.Deployments) != 2 {
		t.Fatalf("after finalize %+v", st)
	}
	runCLI(t, "admin", "undeploy", "1", "--sysroot", dir)
	runCLI(t, "admin", "cleanup", "--sysroot", dir)
	if st := status(t, dir); len(st.Deployments) != 1 {
		t.Fatalf("after undeploy %+v", st)
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"admin", "undeploy", "0", "--sysroot", dir}, &out, &errOut); code == 0 {
		t.Fatal("undeploying the only deployment succeeded")
	}
	if code := Main([]string{"admin", "deploy", "--sysroot", dir}, &out, &errOut); code != ExitUsage {
		t.Fatalf("deploy without REV: exit %d", code)
	}
}
