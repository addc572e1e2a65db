package daemon

import (
	"context"
	"encoding/json"
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

// sysrootSignals subscribes to the Sysroot interface's signals.
func sysrootSignals(t *testing.T, conn *dbus.Conn) chan *dbus.Signal {
	t.Helper()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(api.ObjectPath), dbus.WithMatchInterface(api.SysrootIface)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 100)
	conn.Signal(ch)
	return ch
}

// nextSignal returns the next Sysroot signal called name, skipping others.
func nextSignal(t *testing.T, ch chan *dbus.Signal, name string) *dbus.Signal {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.Path == api.ObjectPath && s.Name == api.SysrootIface+"."+name {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s signal within 20 s", name)
		}
	}
}

func getStatus(t *testing.T, conn *dbus.Conn) api.Status {
	t.Helper()
	var doc string
	if err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+".GetStatus", 0).Store(&doc); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func historyKinds(t *testing.T, f *fixture) string {
	t.Helper()
	h, err := f.d.store.History(0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range h {
		kinds = append(kinds, e.Kind+":"+e.Result)
	}
	return strings.Join(kinds, " ")
}

// trigger runs the automatic policy as the timer does and waits for the
// transaction's end.
func trigger(t *testing.T, f *fixture, conn *dbus.Conn, txns chan *dbus.Signal) {
	t.Helper()
	var enabled bool
	var path dbus.ObjectPath
	err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+".AutomaticUpdateTrigger", 0, map[string]dbus.Variant{}).Store(&enabled, &path)
	if err != nil || !enabled {
		t.Fatalf("trigger: enabled %v, %v", enabled, err)
	}
	for i := 0; i < 3; i++ {
		f.backend.step <- struct{}{}
	}
	if ok, msg, _ := waitFinished(t, txns, path); !ok {
		t.Fatalf("automatic transaction failed: %s", msg)
	}
}

// The apply policy reboots only while it holds the FleetLock slot: a
// refused lock is retried (no reboot command runs), a granted one leads
// to the reboot, and a healthy boot verdict releases the slot.
func TestApplyRebootsOnlyWithTheLock(t *testing.T) {
	srv := testutil.StartFleetLock(t, 1)
	srv.SetRefuse(true)
	fl, err := fleetlock.New(srv.URL, "workers", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "rebooted")
	addr := testutil.StartBus(t)
	f := &fixture{addr: addr, backend: newStepBackend(), done: make(chan error, 1), state: filepath.Join(t.TempDir(), "state.db"),
		configure: func(c *Config) {
			c.AutomaticUpdatePolicy = api.PolicyApply
			c.RebootCommand = []string{"sh", "-c", "echo reboot >> " + marker}
			c.Automatic = AutomaticConfig{FleetLock: fl, LockRetry: 50 * time.Millisecond, LockRetryMax: 100 * time.Millisecond}
		}}
	f.startDaemon(t, 0)
	conn, txns := f.client(t)
	sig := sysrootSignals(t, conn)

	trigger(t, f, conn, txns)
	if s := nextSignal(t, sig, api.SignalUpdateFound); s.Body[0] != "origin:testos" || s.Body[1] != "def" || s.Body[2] != "2" {
		t.Fatalf("UpdateFound %v", s.Body)
	}
	if s := nextSignal(t, sig, api.SignalUpdateStaged); s.Body[0] != "def" || s.Body[1] != "2" {
		t.Fatalf("UpdateStaged %v", s.Body)
	}
	// Refused: it keeps trying, and never reboots.
	for i := 0; i < 3; i++ {
		s := nextSignal(t, sig, api.SignalRebootScheduled)
		if i > 0 && (s.Body[1] != "def" || s.Body[2] != api.RebootReasonLock) {
			t.Fatalf("RebootScheduled while refused: %v", s.Body)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("rebooted without the lock")
	}
	st := getStatus(t, conn)
	if a := st.Automatic; a == nil || a.Policy != api.PolicyApply || a.Reboot == nil || a.Reboot.Checksum != "def" || a.Reboot.Reason != api.RebootReasonLock ||
		a.FleetLockURL != srv.URL || a.FleetLockGroup != "workers" || a.FleetLockHeld {
		t.Fatalf("status while waiting for the lock: %+v", st.Automatic)
	}
	if reqs := srv.Requests(); len(reqs) < 2 || reqs[0] != "pre-reboot node-1 workers -> Conflict" {
		t.Fatalf("server saw %v", reqs)
	}
	// Granted: the announcement, then the reboot command, once.
	srv.SetRefuse(false)
	for {
		if s := nextSignal(t, sig, api.SignalRebootScheduled); s.Body[2] == api.RebootReasonNow {
			break
		}
	}
	eventually(t, func() bool { return strings.Contains(historyKinds(t, f), KindAutomaticReboot) })
	if b, err := os.ReadFile(marker); err != nil || string(b) != "reboot\n" {
		t.Fatalf("reboot command: %q %v", b, err)
	}
	if h := srv.Holders("workers"); len(h) != 1 || h[0] != "node-1" {
		t.Fatalf("holders after reboot %v", h)
	}
	if got := historyKinds(t, f); got != "automatic-reboot:success automatic-apply:success" {
		t.Fatalf("history %s", got)
	}
	eventually(t, func() bool { return getStatus(t, conn).Automatic.Reboot == nil })
	if st = getStatus(t, conn); !st.Automatic.FleetLockHeld {
		t.Fatalf("status after the reboot: %+v", st.Automatic)
	}
	// An unhealthy boot keeps the slot; a healthy one releases it: the
	// boot health check (HealthCheck, what os-update health-check calls)
	// is the entry point.
	healthCheck := func(verdict string) {
		t.Helper()
		f.backend.mu.Lock()
		f.backend.verdict = verdict
		f.backend.mu.Unlock()
		p, err := call(conn, "HealthCheck", map[string]dbus.Variant{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			f.backend.step <- struct{}{}
		}
		waitFinished(t, txns, p)
		if s := nextSignal(t, sig, api.SignalBootVerdict); s.Body[0] != "testos/abc.0" || s.Body[1] != verdict {
			t.Fatalf("BootVerdict %v", s.Body)
		}
	}
	healthCheck(api.VerdictUnhealthy)
	if h := srv.Holders("workers"); len(h) != 1 {
		t.Fatalf("unhealthy boot released the slot: %v", h)
	}
	healthCheck(api.VerdictHealthy)
	if h := srv.Holders("workers"); len(h) != 0 {
		t.Fatalf("healthy boot kept the slot: %v", h)
	}
	if got := historyKinds(t, f); got != "fleetlock-release:success health-check:success health-check:failed automatic-reboot:success automatic-apply:success" {
		t.Fatalf("history %s", got)
	}
	if reqs := srv.Requests(); reqs[len(reqs)-1] != "steady-state node-1 workers -> OK" {
		t.Fatalf("last request %s", reqs[len(reqs)-1])
	}
	if st := getStatus(t, conn); st.Automatic.FleetLockHeld {
		t.Fatal("status still shows the slot held")
	}
	if b, _ := os.ReadFile(marker); string(b) != "reboot\n" {
		t.Fatalf("reboot command ran again: %q", b)
	}
}

// Outside the maintenance window the reboot waits for the next opening
// plus the random delay, and runs nothing.
func TestApplyWaitsForTheWindow(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Saturday 28 March 2026, 12:00 in Berlin: the weekday window opens on
	// Monday at 02:00 CEST (the clocks spring forward on Sunday).
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, berlin)
	opens := time.Date(2026, 3, 30, 2, 0, 0, 0, berlin)
	marker := filepath.Join(t.TempDir(), "rebooted")
	addr := testutil.StartBus(t)
	f := &fixture{addr: addr, backend: newStepBackend(), done: make(chan error, 1), state: filepath.Join(t.TempDir(), "state.db"),
		configure: func(c *Config) {
			c.AutomaticUpdatePolicy = api.PolicyApply
			c.RebootCommand = []string{"touch", marker}
			c.Automatic = AutomaticConfig{Window: "Mon..Fri 02:00-04:00 Europe/Berlin", RandomDelay: 10 * time.Minute,
				Now: func() time.Time { return now }}
		}}
	f.startDaemon(t, 0)
	conn, txns := f.client(t)
	sig := sysrootSignals(t, conn)
	trigger(t, f, conn, txns)
	s := nextSignal(t, sig, api.SignalRebootScheduled)
	at := time.Unix(s.Body[0].(int64), 0)
	if s.Body[1] != "def" || s.Body[2] != api.RebootReasonWindow || at.Before(opens) || !at.Before(opens.Add(10*time.Minute)) {
		t.Fatalf("RebootScheduled %v (at %s), want reason window within 10 min after %s", s.Body, at, opens)
	}
	st := getStatus(t, conn)
	if a := st.Automatic; a.Window != "Mon..Fri 02:00-04:00 Europe/Berlin" || a.WindowOpen || a.NextWindow != opens.Unix() || a.RandomDelay != 600 ||
		a.Reboot == nil || a.Reboot.At != at.Unix() {
		t.Fatalf("status %+v", a)
	}
	// A restarted daemon plans the reboot again.
	f.restart(t)
	s = nextSignal(t, sig, api.SignalRebootScheduled)
	if s.Body[1] != "def" || s.Body[2] != api.RebootReasonWindow {
		t.Fatalf("after a restart: RebootScheduled %v", s.Body)
	}
	// Leaving the apply policy cancels the planned reboot, also for the
	// next start.
	set(t, conn, map[string]dbus.Variant{api.SettingPolicy: dbus.MakeVariant(api.PolicyStage)})
	eventually(t, func() bool { return getStatus(t, conn).Automatic.Reboot == nil })
	set(t, conn, map[string]dbus.Variant{api.SettingPolicy: dbus.MakeVariant(api.PolicyApply)})
	f.restart(t)
	if a := getStatus(t, conn).Automatic; a.Policy != api.PolicyApply || a.Reboot != nil {
		t.Fatalf("a cancelled plan came back: %+v", a)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("rebooted outside the window")
	}
}

func set(t *testing.T, conn *dbus.Conn, settings map[string]dbus.Variant) {
	t.Helper()
	if err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+"."+api.MethodSetAutomaticUpdates, 0, settings).Err; err != nil {
		t.Fatalf("SetAutomaticUpdates %v: %v", settings, err)
	}
}

// Policy transitions none -> check -> stage -> apply over D-Bus: each is
// what the timer then does, what status and the property show, and what a
// restarted daemon still has. Bad values are refused and change nothing.
func TestPolicyTransitionsPersist(t *testing.T) {
	f := start(t, 0)
	conn, txns := f.client(t)
	obj := conn.Object(api.BusName, api.ObjectPath)
	prop := func(name string) string {
		v, err := obj.GetProperty(api.SysrootIface + "." + name)
		if err != nil {
			t.Fatal(err)
		}
		return v.Value().(string)
	}
	if p := prop("AutomaticUpdatePolicy"); p != api.PolicyNone {
		t.Fatalf("initial policy %q", p)
	}
	for _, p := range []string{api.PolicyCheck, api.PolicyStage} {
		set(t, conn, map[string]dbus.Variant{api.SettingPolicy: dbus.MakeVariant(p)})
		if got := prop("AutomaticUpdatePolicy"); got != p {
			t.Fatalf("property after setting %s: %s", p, got)
		}
		trigger(t, f, conn, txns)
	}
	set(t, conn, map[string]dbus.Variant{api.SettingPolicy: dbus.MakeVariant(api.PolicyApply), api.SettingWindow: dbus.MakeVariant("sat,sun 22:00-06:00 UTC")})
	for _, bad := range []map[string]dbus.Variant{
		{api.SettingPolicy: dbus.MakeVariant("reboot-now")},
		{api.SettingWindow: dbus.MakeVariant("Sun 25:00-26:00")},
		{api.SettingPolicy: dbus.MakeVariant(true)},
		{"delay": dbus.MakeVariant("1h")},
		{},
	} {
		err := obj.Call(api.SysrootIface+"."+api.MethodSetAutomaticUpdates, 0, bad).Err
		if dbusErrName(err) != api.ErrInvalidArgs {
			t.Errorf("settings %v: %v, want InvalidArgs", bad, err)
		}
	}
	check := func(when string) {
		t.Helper()
		st := getStatus(t, conn)
		if st.AutomaticPolicy != api.PolicyApply || st.Automatic.Policy != api.PolicyApply || st.Automatic.Window != "Sat,Sun 22:00-06:00 UTC" ||
			prop("MaintenanceWindow") != "Sat,Sun 22:00-06:00 UTC" {
			t.Fatalf("%s: status %+v", when, st.Automatic)
		}
	}
	check("after setting")
	f.backend.mu.Lock()
	labels := []string{}
	for _, r := range f.backend.reqs {
		labels = append(labels, r.Label())
	}
	f.backend.mu.Unlock()
	if strings.Join(labels, " ") != "automatic-check automatic-stage" {
		t.Fatalf("timer runs: %v", labels)
	}
	// A restart (with a configured policy of none) keeps what was set.
	f.cancel()
	<-f.done
	f.d.Close()
	f.done <- nil // for the cleanup
	d, err := New(context.Background(), Config{BusAddress: f.addr, StatePath: f.state, Backend: f.backend, AutomaticUpdatePolicy: api.PolicyNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	check("after a restart")
}

// Only root or a polkit-authorized user may change the automatic update
// settings: a caller as nobody is refused.
func TestAutomaticSettingsRefusedForUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	busctl := testutil.RequireTool(t, "busctl")
	f := start(t, 0)
	asNobody := func(args ...string) (string, error) {
		all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", busctl, "--address=" + f.addr, "call",
			api.BusName, api.ObjectPath, api.SysrootIface}, args...)
		out, err := exec.Command(setpriv, all...).CombinedOutput()
		return string(out), err
	}
	out, err := asNobody(api.MethodSetAutomaticUpdates, "a{sv}", "1", api.SettingPolicy, "s", api.PolicyApply)
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Fatalf("SetAutomaticUpdates as nobody: %v %s", err, out)
	}
	// busctl shows AccessDenied as "Access denied"; the bus itself lets
	// everyone call, so the refusal is the daemon's. Reading is open.
	if out, err := asNobody("GetStatus"); err != nil || !strings.Contains(out, `automatic-updates`) {
		t.Fatalf("GetStatus as nobody: %v %s", err, out)
	}
	if p := f.d.policy(); p != api.PolicyNone {
		t.Fatalf("policy changed to %s", p)
	}
	if h, _ := f.d.store.History(0); len(h) != 0 {
		t.Fatalf("history %+v", h)
	}
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 20 s")
}

// Every action the daemon asks polkit about is declared in the policy
// file that is installed.
func TestPolkitPolicyDeclaresEveryAction(t *testing.T) {
	b, err := os.ReadFile("../dist/polkit/org.osupdate.OSUpdate1.policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindUpgrade, KindRollback, KindRebase, KindDeploy, KindPkgChange, KindKargs, KindCleanup, KindHealthCheck, "cancel", KindAutomatic} {
		if !strings.Contains(string(b), `<action id="`+actionID(kind)+`">`) {
			t.Errorf("no polkit action %s", actionID(kind))
		}
	}
}

// A daemon waiting to reboot does not exit idle; once the plan is
// cancelled, it does.
func TestPlannedRebootKeepsDaemonRunning(t *testing.T) {
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC) // a Saturday
	addr := testutil.StartBus(t)
	f := &fixture{addr: addr, backend: newStepBackend(), done: make(chan error, 1), state: filepath.Join(t.TempDir(), "state.db"),
		configure: func(c *Config) {
			c.AutomaticUpdatePolicy = api.PolicyApply
			c.RebootCommand = []string{"false"}
			c.Automatic = AutomaticConfig{Window: "Mon 02:00-03:00 UTC", Now: func() time.Time { return now }}
		}}
	f.startDaemon(t, 300*time.Millisecond)
	conn, txns := f.client(t)
	sig := sysrootSignals(t, conn)
	trigger(t, f, conn, txns)
	nextSignal(t, sig, api.SignalRebootScheduled)
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
		t.Fatal("the daemon exited idle with a reboot planned")
	case <-time.After(1500 * time.Millisecond):
	}
	set(t, conn, map[string]dbus.Variant{api.SettingPolicy: dbus.MakeVariant(api.PolicyCheck)})
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not exit idle after the plan was cancelled")
	}
}
