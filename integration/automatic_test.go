package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/daemon/fleetlock"
	"github.com/osupdate/os-update/internal/testutil"
)

// runTimer runs what os-update-automatic.service runs when its timer
// fires (its ExecStart line, with this run's binary and bus).
func (h *host) runTimer() string {
	h.t.Helper()
	b, err := os.ReadFile("../dist/systemd/os-update-automatic.service")
	if err != nil {
		h.t.Fatal(err)
	}
	var argv []string
	for _, line := range strings.Split(string(b), "\n") {
		if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
			argv = strings.Fields(cmd)
		}
	}
	if len(argv) == 0 || argv[0] != "/usr/bin/os-update" {
		h.t.Fatalf("os-update-automatic.service runs %v, want /usr/bin/os-update ...", argv)
	}
	cmd := exec.Command(osUpdate, append(argv[1:], "--bus-address", h.bus)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("%v: %v\n%s\ndaemon:\n%s", argv, err, out, h.daemonLog.String())
	}
	return string(out)
}

// sysrootSignals subscribes to the daemon's Sysroot signals.
func (h *host) sysrootSignals() chan *dbus.Signal {
	h.t.Helper()
	conn, err := dbus.Connect(h.bus)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(api.ObjectPath), dbus.WithMatchInterface(api.SysrootIface)); err != nil {
		h.t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 200)
	conn.Signal(ch)
	return ch
}

func expectSignal(t *testing.T, ch chan *dbus.Signal, name string, match func([]any) bool) []any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case s := <-ch:
			if s.Name == api.SysrootIface+"."+name && (match == nil || match(s.Body)) {
				return s.Body
			}
			seen = append(seen, strings.TrimPrefix(s.Name, api.SysrootIface+"."))
		case <-timeout:
			t.Fatalf("no matching %s signal within 60 s (saw %v)", name, seen)
		}
	}
}

// The timer's run under the check policy finds a published update: the
// UpdateFound signal names it, status caches it, nothing is deployed.
func TestTimerCheckFindsUpdate(t *testing.T) {
	h := newHost(t)
	h.restartDaemon("--automatic-update-policy", "check")
	sigs := h.sysrootSignals()
	if out := h.runTimer(); !strings.Contains(out, "No update available") {
		t.Fatalf("timer with nothing new: %s", out)
	}
	v2 := h.publish("2", nil)
	h.runTimer()
	body := expectSignal(t, sigs, api.SignalUpdateFound, nil)
	if body[0] != "origin:"+testRef || body[1] != v2.String() || body[2] != "2" {
		t.Fatalf("UpdateFound %v, want origin:%s %s 2", body, testRef, v2)
	}
	st := h.status()
	if st.CachedUpdate == nil || !st.CachedUpdate.Available || st.CachedUpdate.Checksum != v2.String() || len(st.Deployments) != 1 {
		t.Fatalf("after the timer: %+v", st)
	}
	if hist := h.history(); hist[0].Kind != "automatic-check" || hist[0].Result != "success" {
		t.Fatalf("history %+v", hist[0])
	}
}

// The apply policy with a FleetLock server: the timer stages the update;
// while another machine holds the group's only slot, the daemon retries
// and never runs the reboot command; once the slot is free it takes it,
// announces the reboot and reboots; after the reboot into the update,
// the healthy boot verdict gives the slot back.
func TestApplyPolicyWithFleetLock(t *testing.T) {
	h := newHost(t)
	srv := testutil.StartFleetLock(t, 1)
	other, err := fleetlock.New(srv.URL, "workers", "other-node")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := other.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for k, v := range mountPoints {
		files[k] = v
	}
	v2 := h.publish("2", files)
	flags := []string{"--automatic-update-policy", "apply", "--fleetlock-url", srv.URL, "--fleetlock-group", "workers",
		"--fleetlock-id", "node-1", "--fleetlock-retry", "100ms"}
	h.restartDaemon(flags...)
	sigs := h.sysrootSignals()
	h.runTimer()
	st := h.status()
	if len(st.Deployments) != 2 || !st.Deployments[0].Staged || st.Deployments[0].Checksum != v2.String() {
		t.Fatalf("apply did not stage v2: %+v", st.Deployments)
	}
	expectSignal(t, sigs, api.SignalUpdateStaged, func(b []any) bool { return b[0] == v2.String() })
	expectSignal(t, sigs, api.SignalRebootScheduled, func(b []any) bool { return b[2] == api.RebootReasonLock && b[1] == v2.String() })
	waitFor(t, func() bool {
		return strings.Count(strings.Join(srv.Requests(), "\n"), "pre-reboot node-1 workers -> Conflict") >= 3
	})
	if _, err := os.Stat(filepath.Join(h.dir, "rebooted")); err == nil {
		t.Fatal("rebooted without the FleetLock slot")
	}
	if a := h.status().Automatic; a == nil || a.Reboot == nil || a.Reboot.Reason != api.RebootReasonLock || a.FleetLockURL != srv.URL {
		t.Fatalf("status while refused: %+v", a)
	}
	// The other machine is done: the slot is free.
	if err := other.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	expectSignal(t, sigs, api.SignalRebootScheduled, func(b []any) bool { return b[2] == api.RebootReasonNow })
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(h.dir, "rebooted")); return err == nil })
	waitFor(t, func() bool { return h.history()[0].Kind == "automatic-reboot" })
	if e := h.history()[0]; e.Result != "success" || e.To != v2.String() {
		t.Fatalf("reboot in history: %+v", e)
	}
	if got := srv.Holders("workers"); len(got) != 1 || got[0] != "node-1" {
		t.Fatalf("slot holders after the reboot: %v", got)
	}
	// The reboot: shutdown finalizes the staged deployment, the machine
	// boots it, and its health check passes.
	osu(t, "finalize", "--sysroot", h.sysroot)
	h.daemonArgs = flags
	h.startBootedDaemon(h.status().Deployments[0])
	if a := h.status().Automatic; !a.FleetLockHeld || a.Reboot != nil {
		t.Fatalf("status after the reboot: %+v", a)
	}
	h.mustClient("health-check")
	if got := srv.Holders("workers"); len(got) != 0 {
		t.Fatalf("slot still held after a healthy boot: %v", got)
	}
	if a := h.status().Automatic; a.FleetLockHeld {
		t.Fatalf("status after the release: %+v", a)
	}
	if e := h.history()[0]; e.Kind != "fleetlock-release" || e.To != v2.String() {
		t.Fatalf("release in history: %+v", e)
	}
}

// os-update automatic --policy/--window: none -> check -> stage -> apply,
// shown by status, kept across a daemon restart, refused for nobody and
// for a bad window.
func TestAutomaticSettingsFromTheCommandLine(t *testing.T) {
	setpriv := testutil.RequireTool(t, "setpriv")
	h := newHost(t)
	if st := h.status(); st.Automatic == nil || st.Automatic.Policy != "none" {
		t.Fatalf("initial: %+v", st.Automatic)
	}
	for _, p := range []string{"check", "stage"} {
		if out := h.mustClient("automatic", "--policy", p); !strings.HasPrefix(out, "AutomaticUpdates: "+p+"\n") {
			t.Fatalf("--policy %s printed %q", p, out)
		}
		if st := h.status(); st.AutomaticPolicy != p || st.Automatic.Policy != p {
			t.Fatalf("after --policy %s: %+v", p, st.Automatic)
		}
	}
	const window = "Mon..Fri 02:00-04:00 Europe/Berlin"
	out := h.mustClient("automatic", "--policy", "apply", "--window", "mon..FRI 2:00-04:00 Europe/Berlin")
	if !strings.HasPrefix(out, "AutomaticUpdates: apply; window "+window+" (") {
		t.Fatalf("--policy apply --window printed %q", out)
	}
	check := func(when string) {
		t.Helper()
		st := h.status()
		if st.AutomaticPolicy != "apply" || st.Automatic.Window != window {
			t.Fatalf("%s: %+v", when, st.Automatic)
		}
		if text := h.mustClient("status"); !strings.Contains(text, "AutomaticUpdates: apply; window "+window) {
			t.Fatalf("%s: status:\n%s", when, text)
		}
	}
	check("after setting")
	// The daemon's own option says none; what was set wins.
	h.restartDaemon("--automatic-update-policy", "none")
	check("after a restart")
	os.Chmod(filepath.Dir(osUpdate), 0o755)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", osUpdate, "automatic", "--policy", "none", "--bus-address", h.bus)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "uid 65534 may not automatic") {
		t.Fatalf("automatic --policy as nobody: %v %s", err, out)
	}
	_, errOut, err := h.client("automatic", "--window", "Mon 25:00-26:00")
	if exitCode(err) != 1 || !strings.Contains(errOut, `time "25:00"`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("bad window: %v %q", err, errOut)
	}
	check("after refused changes")
	// An empty window means any time.
	h.mustClient("automatic", "--window", "")
	if st := h.status(); st.Automatic.Window != "" || !st.Automatic.WindowOpen {
		t.Fatalf("after --window '': %+v", st.Automatic)
	}
}
