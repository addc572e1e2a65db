package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
)

// mountPoints are the top-level directories a deployment needs to be the
// root of a bwrap sandbox (a deployment's top directory is immutable, so
// bwrap cannot create them).
var mountPoints = map[string]string{
	"bin/.keep": "", "lib/.keep": "", "lib64/.keep": "", "proc/.keep": "", "dev/.keep": "",
	"tmp/.keep": "", "sysroot/.keep": "", "run/.keep": "",
}

// startBootedDaemon replaces the host's daemon with one running "booted"
// into deployment dep: in a bwrap sandbox whose / is the deployment's
// directory (what prepare-root does at boot; the sysroot recognises the
// booted deployment by the inode of /), with the physical sysroot at
// /sysroot and the host's programs and libraries at /bin, /lib, /lib64.
// The health checks then run from the deployment's own /usr and /etc.
func (h *host) startBootedDaemon(dep api.Deployment) {
	t := h.t
	testutil.RequireTool(t, "bwrap")
	if h.daemon != nil {
		h.daemon.Process.Signal(syscall.SIGTERM)
		h.daemon.Wait()
		h.daemon = nil
	}
	depDir := filepath.Join(h.sysroot, "ostree/deploy", dep.OSName, "deploy", fmt.Sprintf("%s.%d", dep.Checksum, dep.Serial))
	tmp := os.TempDir()
	for _, p := range []string{h.dir, h.bus, osUpdated} {
		if !strings.HasPrefix(strings.TrimPrefix(p, "unix:path="), tmp+"/") {
			t.Fatalf("%s is not under %s, which the sandbox shares", p, tmp)
		}
	}
	h.daemonLog = &strings.Builder{}
	args := []string{"--bind", depDir, "/",
		"--ro-bind", "/usr/bin", "/bin", "--ro-bind", "/usr/lib", "/lib", "--ro-bind", "/usr/lib64", "/lib64",
		"--bind", h.sysroot, "/sysroot", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run",
		"--bind", tmp, tmp, "--setenv", "PATH", "/bin", "--die-with-parent",
		osUpdated, "--bus-address", h.bus, "--sysroot", "/sysroot", "--state", h.state, "--idle-exit", "0",
		"--reboot-command", filepath.Join(h.dir, "reboot.sh")}
	args = append(args, h.daemonArgs...)
	reboot := "#!/bin/sh\necho \"reboot $*\" >> " + filepath.Join(h.dir, "rebooted") + "\n"
	if err := os.WriteFile(filepath.Join(h.dir, "reboot.sh"), []byte(reboot), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bwrap", args...)
	cmd.Stderr = h.daemonLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.daemon = cmd
	t.Cleanup(func() {
		if h.daemon == cmd {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := h.client("status"); err == nil {
			if b := h.booted(); b == nil || b.Checksum != dep.Checksum {
				t.Fatalf("the sandboxed daemon does not see %s booted: %+v\n%s", dep.Checksum, b, h.daemonLog.String())
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sandboxed os-updated did not come up:\n%s", h.daemonLog.String())
}

func (h *host) booted() *api.Deployment {
	for _, d := range h.status().Deployments {
		if d.Booted {
			return &d
		}
	}
	return nil
}

func (h *host) reboots() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "rebooted"))
	return string(b)
}

// TestHealthCheckRollsBackNewDeployment: an update whose health check
// fails is booted; the check makes the previous deployment the default,
// records the reason (history, status, verdict file, a D-Bus signal) and
// runs the reboot command. Then the rule for a deployment that passed
// once: a later failure is reported, not rolled back.
func TestHealthCheckRollsBackNewDeployment(t *testing.T) {
	h := newHost(t)
	v1 := h.status().Deployments[0]
	files := map[string]string{
		// The OS ships a check that fails; the administrator's /etc adds
		// one that passes.
		"usr/lib/os-update/health.d/50-service": "#!/bin/sh\necho checking service\necho 'service osu-test is down' >&2\nexit 3\n",
		"usr/etc/os-update/health.d/10-ok":      "#!/bin/sh\necho fine\n",
	}
	for k, v := range mountPoints {
		files[k] = v
	}
	v2c := h.publish("2", files)
	h.mustClient("upgrade")
	v2 := h.status().Deployments[0]
	if v2.Checksum != v2c.String() {
		t.Fatalf("upgrade did not deploy v2: %+v", h.status().Deployments)
	}
	h.startBootedDaemon(v2)

	// Listen for the verdict signal before the check runs.
	conn, err := dbus.Connect(h.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(api.SysrootIface), dbus.WithMatchMember(api.SignalBootVerdict)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 8)
	conn.Signal(sigs)

	out, errOut, err := h.client("health-check")
	if exitCode(err) != 1 {
		t.Fatalf("health-check of a failing deployment: %v\n%s%s\ndaemon:\n%s", err, out, errOut, h.daemonLog.String())
	}
	wantReason := "50-service exited 3: checking service | service osu-test is down"
	if !strings.Contains(errOut, "unhealthy: "+wantReason) || !strings.Contains(errOut, "rolled back to 1 "+v1.OSName+"/"+v1.Checksum+".") {
		t.Fatalf("health-check error:\n%s", errOut)
	}
	if !strings.Contains(out, "ok   script 10-ok") || !strings.Contains(out, "FAIL script 50-service exited 3") {
		t.Fatalf("health-check output:\n%s", out)
	}
	// The previous deployment is the default; the failed one stays, as
	// the rollback deployment would.
	st := h.status()
	if st.Deployments[0].Checksum != v1.Checksum || !st.Deployments[0].Default || st.Deployments[1].Checksum != v2.Checksum {
		t.Fatalf("after the failed check: %+v", st.Deployments)
	}
	bv := st.Deployments[1].BootVerdict
	if bv == nil || bv.Verdict != api.VerdictUnhealthy || bv.Reason != wantReason || bv.Action != api.ActionRolledBack ||
		bv.Good || !strings.HasPrefix(bv.RolledBackTo, v1.OSName+"/"+v1.Checksum+".") {
		t.Fatalf("v2's verdict in status: %+v", bv)
	}
	text := h.mustClient("status")
	if !strings.Contains(text, "HealthCheck: unhealthy") || !strings.Contains(text, "Reason: "+wantReason) {
		t.Fatalf("status text:\n%s", text)
	}
	var hist []api.HistoryEntry
	json.Unmarshal([]byte(h.mustClient("history", "--json")), &hist)
	if len(hist) == 0 || hist[0].Kind != "health-check" || hist[0].Result != "failed" || !strings.Contains(hist[0].Error, wantReason) ||
		hist[0].From != v2.Checksum || hist[0].To != v1.Checksum {
		t.Fatalf("history: %+v", hist)
	}
	if text := h.mustClient("history"); !strings.Contains(text, "health-check") || !strings.Contains(text, wantReason) {
		t.Fatalf("history text:\n%s", text)
	}
	// The reboot command ran, after the verdict was recorded.
	waitFor(t, func() bool { return h.reboots() != "" })
	var file api.BootVerdict
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(h.state), "boot-verdict.json")); err != nil || json.Unmarshal(b, &file) != nil || file.Reason != wantReason {
		t.Fatalf("verdict file: %v %+v", err, file)
	}
	select {
	case s := <-sigs:
		if len(s.Body) != 4 || s.Body[0] != bv.Deployment || s.Body[1] != api.VerdictUnhealthy || s.Body[2] != wantReason || s.Body[3] != api.ActionRolledBack {
			t.Fatalf("BootVerdict signal: %v", s.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no BootVerdict signal")
	}

	// The administrator goes back to v2 and masks the failing check:
	// the boot is healthy, v2 is marked good.
	h.mustClient("rollback")
	if st := h.status(); st.Deployments[0].Checksum != v2.Checksum {
		t.Fatalf("manual rollback to v2: %+v", st.Deployments)
	}
	mask := filepath.Join(h.sysroot, "ostree/deploy", v2.OSName, "deploy", fmt.Sprintf("%s.%d", v2.Checksum, v2.Serial), "etc/os-update/health.d/50-service")
	if err := os.Symlink("/dev/null", mask); err != nil {
		t.Fatal(err)
	}
	out = h.mustClient("health-check")
	if !strings.Contains(out, "Healthy") || !strings.Contains(out, "skipped /etc/os-update/health.d/50-service (masked)") {
		t.Fatalf("masked check:\n%s", out)
	}
	if bv := h.status().Deployments[0].BootVerdict; bv == nil || bv.Verdict != api.VerdictHealthy || !bv.Good || bv.Action != api.ActionMarkedGood {
		t.Fatalf("healthy verdict: %+v", bv)
	}
	// Unmasked, the check fails again, but v2 passed once: it is
	// reported, not rolled back, and nothing reboots.
	os.Remove(mask)
	rebootsBefore := h.reboots()
	_, errOut, err = h.client("health-check")
	if exitCode(err) != 1 || !strings.Contains(errOut, "not rolled back: "+v2.OSName+"/"+v2.Checksum) {
		t.Fatalf("failure of a good deployment: %v %s", err, errOut)
	}
	st = h.status()
	if st.Deployments[0].Checksum != v2.Checksum || !st.Deployments[0].Default {
		t.Fatalf("a good deployment was rolled back: %+v", st.Deployments)
	}
	if bv := st.Deployments[0].BootVerdict; bv == nil || bv.Verdict != api.VerdictUnhealthy || bv.Action != api.ActionNone || !bv.Good {
		t.Fatalf("verdict of the good deployment's failure: %+v", bv)
	}
	time.Sleep(500 * time.Millisecond)
	if h.reboots() != rebootsBefore {
		t.Fatalf("rebooted without a rollback: %q", h.reboots())
	}
}

// TestHealthCheckOfflineRefused: with no booted deployment there is
// nothing to check, and nothing changes.
func TestHealthCheckOfflineRefused(t *testing.T) {
	h := newHost(t)
	_, errOut, err := h.client("health-check")
	if exitCode(err) != 1 || !strings.Contains(errOut, "not booted into a deployment") {
		t.Fatalf("offline health-check: %v %s", err, errOut)
	}
	if st := h.status(); st.Deployments[0].BootVerdict != nil {
		t.Fatalf("offline check recorded a verdict: %+v", st.Deployments[0].BootVerdict)
	}
}

// TestHealthCheckAfterBootLoaderFellBack: with grub2 counting, a new
// default that used up its tries makes grub boot the previous deployment;
// its healthy check marks it good, makes it the default again and records
// why the other one was abandoned. Nothing reboots.
func TestHealthCheckAfterBootLoaderFellBack(t *testing.T) {
	editenv := testutil.RequireTool(t, "grub-editenv")
	h := newHost(t)
	os.MkdirAll(filepath.Join(h.sysroot, "boot/grub"), 0o755)
	os.WriteFile(filepath.Join(h.sysroot, "boot/grub/grub.cfg"), []byte("# installer's\n"), 0o644)
	env := filepath.Join(h.sysroot, "boot/grub/grubenv")
	h.publish("2", mountPoints)
	h.mustClient("upgrade")
	v2 := h.status().Deployments[0]
	h.startBootedDaemon(v2)
	if out := h.mustClient("health-check"); !strings.Contains(out, "Healthy") {
		t.Fatalf("v2's check:\n%s", out)
	}
	files := map[string]string{"usr/bin/v3": "#!/bin/sh\n"}
	for k, v := range mountPoints {
		files[k] = v
	}
	h.publish("3", files)
	h.mustClient("upgrade")
	v3 := h.status().Deployments[0]
	if got := testutil.Run(t, editenv, env, "list"); !strings.Contains(got, "boot_counter=3") {
		t.Fatalf("the update is not counted: %q", got)
	}
	// grub tried v3 three times and fell back to v2 (index 1).
	testutil.Run(t, editenv, env, "set", "boot_counter=0")
	out := h.mustClient("health-check")
	if !strings.Contains(out, "used up its boot tries (grubenv)") {
		t.Fatalf("health-check after the fallback:\n%s", out)
	}
	st := h.status()
	if st.Deployments[0].Checksum != v2.Checksum || !st.Deployments[0].Booted || st.Deployments[1].Checksum != v3.Checksum {
		t.Fatalf("v2 is not the default again: %+v", st.Deployments)
	}
	bv := st.Deployments[1].BootVerdict
	if bv == nil || bv.Verdict != api.VerdictUnhealthy || bv.Action != api.ActionRolledBack ||
		!strings.Contains(bv.Reason, "the boot loader fell back to "+v2.OSName+"/"+v2.Checksum) {
		t.Fatalf("v3's verdict: %+v", bv)
	}
	if bv := st.Deployments[0].BootVerdict; bv == nil || bv.Verdict != api.VerdictHealthy || !bv.Good {
		t.Fatalf("v2's verdict: %+v", bv)
	}
	if got := testutil.Run(t, editenv, env, "list"); strings.Contains(got, "boot_counter") {
		t.Fatalf("grubenv still counts: %q", got)
	}
	if r := h.reboots(); r != "" {
		t.Fatalf("rebooted: %q", r)
	}
	// history keeps why the update was abandoned, not only "success".
	if hist := h.mustClient("history", "-n", "1"); !strings.Contains(hist, "health-check") ||
		!strings.Contains(hist, "used up its boot tries (grubenv)") {
		t.Fatalf("history after the fallback:\n%s", hist)
	}
}
