package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/daemon"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/sysroot"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("OSU_ROLES_CHILD"); mode != "" {
		os.Exit(rolesChild(mode))
	}
	os.Exit(m.Run())
}

// roles maps a role (booted, staged, pending, rollback) to the
// deployment that has it, as OS/CHECKSUM.SERIAL.
type roles map[string]string

type nopReporter struct{}

func (nopReporter) Stage(string)          {}
func (nopReporter) Progress(api.Progress) {}
func (nopReporter) Message(string)        {}

// rolesChild runs inside the booted view of the sysroot (see bootedView):
// it prints the roles as the sysroot, `admin status` and the daemon see
// them, or runs the daemon's rollback or cleanup.
func rolesChild(mode string) int {
	fail := func(err error) int { fmt.Println("child:", err); return 1 }
	opts := sysroot.Options{NoSync: true, MutableDeployments: true}
	b := daemon.NewHostBackend(daemon.HostConfig{Sysroot: "/sysroot", SysrootOptions: opts})
	ctx := context.Background()
	switch mode {
	case "status":
		s, err := sysroot.Open("/sysroot", opts)
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		out := map[string]roles{"sysroot": {}, "admin": {}, "daemon": {}}
		for _, d := range s.Status().Deployments {
			addRoles(out["sysroot"], d.OS+"/"+d.Name(), d.Booted, d.Staged, d.Pending, d.Rollback)
		}
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"admin", "status", "--sysroot", "/sysroot", "--json"}, &stdout, &stderr); code != 0 {
			return fail(fmt.Errorf("admin status: %s", stderr.String()))
		}
		var st statusJSON
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			return fail(err)
		}
		for _, d := range st.Deployments {
			addRoles(out["admin"], fmt.Sprintf("%s/%s.%d", d.OSName, d.Checksum, d.Serial), d.Booted, d.Staged, d.Pending, d.Rollback)
		}
		var ds api.Status
		if ds, err = b.Status(ctx); err != nil {
			return fail(err)
		}
		for _, d := range ds.Deployments {
			addRoles(out["daemon"], fmt.Sprintf("%s/%s.%d", d.OSName, d.Checksum, d.Serial), d.Booted, d.Staged, d.Pending, d.Rollback)
		}
		json.NewEncoder(os.Stdout).Encode(out)
	case "rollback":
		if _, err := b.Run(ctx, daemon.Request{Kind: daemon.KindRollback}, nopReporter{}); err != nil {
			return fail(err)
		}
	case "cleanup-pending":
		if _, err := b.Run(ctx, daemon.Request{Kind: daemon.KindCleanup, CleanupPending: true}, nopReporter{}); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown mode %q", mode))
	}
	return 0
}

func addRoles(r roles, name string, booted, staged, pending, rollback bool) {
	for role, has := range map[string]bool{"booted": booted, "staged": staged, "pending": pending, "rollback": rollback} {
		if has {
			if r[role] != "" {
				r[role] += " " + name // two deployments with one role: shows as a mismatch
			} else {
				r[role] = name
			}
		}
	}
}

// bootedView runs a command with / being the deployment directory dep of
// the sysroot at dir, the sysroot at /sysroot, its /boot and run/ at /boot
// and /run (with ostree-booted): what a system booted into dep sees, and
// what libostree and os-update recognise as booted. Host tools come from
// the host's /usr.
func bootedView(t *testing.T, dir, dep string, cmd ...string) string {
	t.Helper()
	bwrap := testutil.RequireTool(t, "bwrap")
	if err := os.WriteFile(filepath.Join(dir, "run/ostree-booted"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--bind", dep, "/", "--bind", dir, "/sysroot", "--bind", dir + "/boot", "/boot",
		"--bind", dir + "/run", "/run", "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}
	for _, l := range [][2]string{{"usr/bin", "/bin"}, {"usr/sbin", "/sbin"}, {"usr/lib", "/lib"}, {"usr/lib64", "/lib64"}, {"sysroot/ostree", "/ostree"}} {
		if _, err := os.Lstat(filepath.Join(dep, l[1])); err != nil {
			args = append(args, "--symlink", l[0], l[1])
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, "--ro-bind", exe, "/client.test", "--")
	out, err := exec.Command(bwrap, append(args, cmd...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in the booted view: %v\n%s", strings.Join(cmd, " "), err, out)
	}
	return string(out)
}

// ostreeRoles parses `ostree admin status`: "*" marks the booted
// deployment, a "(staged)", "(pending)" or "(rollback)" tag the others.
func ostreeRoles(t *testing.T, out string) roles {
	t.Helper()
	r := roles{}
	for _, line := range strings.Split(out, "\n") {
		if len(line) < 2 || strings.HasPrefix(line, "    ") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line[2:])
		if len(f) < 2 {
			continue
		}
		name := f[0] + "/" + f[1]
		addRoles(r, name, line[0] == '*', strings.Contains(line, "(staged)"), strings.Contains(line, "(pending)"), strings.Contains(line, "(rollback)"))
	}
	return r
}

func childRoles(t *testing.T, dir, dep string) map[string]roles {
	t.Helper()
	out := bootedView(t, dir, dep, "/usr/bin/env", "OSU_ROLES_CHILD=status", "/client.test")
	var got map[string]roles
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	return got
}

// checkRoles compares every view with want, and ostree admin status with
// want where ostree shows it (a staged deployment is tagged only staged).
func checkRoles(t *testing.T, dir, dep string, want roles) {
	t.Helper()
	for view, got := range childRoles(t, dir, dep) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s roles:\n got %v\nwant %v", view, got, want)
		}
	}
	o := roles{}
	for k, v := range want {
		if k != "pending" || v != want["staged"] {
			o[k] = v
		}
	}
	got := ostreeRoles(t, bootedView(t, dir, dep, "ostree", "admin", "status"))
	if fmt.Sprint(got) != fmt.Sprint(o) {
		t.Errorf("ostree admin status roles:\n got %v\nwant %v", got, o)
	}
}

// With two stateroots and a staged deployment, booted into a deployment
// that is not the first, every view names the same rollback deployment
// (libostree's: the next of the booted stateroot), `rollback` makes that
// one the default, and cleanup of the pending deployment afterwards
// removes exactly the rolled-back-to one.
func TestRolesAgreeBootedTwoOSesStaged(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ostree")
	t.Setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
	dir := filepath.Join(t.TempDir(), "sysroot")
	runCLI(t, "admin", "init-fs", dir)
	for _, osname := range []string{"alpha", "beta"} {
		runCLI(t, "admin", "os-init", osname, "--sysroot", dir)
	}
	deployAs := func(osname, version string, extra ...string) string {
		c := commitOS(t, dir+"/ostree/repo", version)
		runCLI(t, append([]string{"admin", "deploy", "--sysroot", dir, "--os", osname, "cli/os"}, extra...)...)
		return osname + "/" + c.String() + ".0"
	}
	b1 := deployAs("beta", "1")
	a2 := deployAs("alpha", "2")
	a3 := deployAs("alpha", "3")
	b4 := deployAs("beta", "4")
	a5 := deployAs("alpha", "5", "--stage")
	depDir := func(name string) string {
		osname, base, _ := strings.Cut(name, "/")
		return filepath.Join(dir, "ostree/deploy", osname, "deploy", base)
	}
	order := func() []string {
		s, err := sysroot.Open(dir, sysroot.Options{NoSync: true, MutableDeployments: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []string
		if s.Staged != nil {
			out = append(out, "staged:"+s.Staged.OS+"/"+s.Staged.Name())
		}
		for _, d := range s.Deployments {
			out = append(out, d.OS+"/"+d.Name())
		}
		return out
	}
	if got, want := order(), []string{"staged:" + a5, b4, a3, a2, b1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("setup: %v, want %v", got, want)
	}

	// Booted into a3: b1 (another stateroot, after it) is no rollback.
	boot := depDir(a3)
	checkRoles(t, dir, boot, roles{"booted": a3, "staged": a5, "pending": a5, "rollback": a2})

	// rollback (the daemon's, which is sysroot.Rollback) makes a2 the
	// default and discards the staged deployment.
	bootedView(t, dir, boot, "/usr/bin/env", "OSU_ROLES_CHILD=rollback", "/client.test")
	if got, want := order(), []string{a2, b4, a3, b1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after rollback: %v, want %v", got, want)
	}
	checkRoles(t, dir, boot, roles{"booted": a3, "pending": a2})

	// Cleanup after the rollback: the pending deployment is a2; the other
	// stateroot's deployments and the booted one stay.
	bootedView(t, dir, boot, "/usr/bin/env", "OSU_ROLES_CHILD=cleanup-pending", "/client.test")
	if got, want := order(), []string{b4, a3, b1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cleanup --pending: %v, want %v", got, want)
	}
	if _, err := os.Stat(depDir(a2)); !os.IsNotExist(err) {
		t.Errorf("the removed deployment's directory: %v", err)
	}
	checkRoles(t, dir, boot, roles{"booted": a3})
	// b4, first in the boot order but of another stateroot, is not
	// pending: cleanup --pending leaves it alone.
	bootedView(t, dir, boot, "/usr/bin/env", "OSU_ROLES_CHILD=cleanup-pending", "/client.test")
	if got, want := order(), []string{b4, a3, b1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cleanup --pending with nothing pending: %v, want %v", got, want)
	}
}
