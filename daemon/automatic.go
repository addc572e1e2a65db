package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/daemon/fleetlock"
	"github.com/osupdate/os-update/daemon/maintwindow"
	"github.com/osupdate/os-update/daemon/state"
)

// AutomaticConfig configures the apply policy: when and how the daemon
// reboots into an update it staged.
type AutomaticConfig struct {
	// Window is the maintenance window (maintwindow syntax); "" means any
	// time. A value set over D-Bus (kept in the state) wins.
	Window string
	// Location is the zone of windows that name none (default time.Local).
	Location *time.Location
	// RandomDelay: the reboot waits a random time below it once the window
	// is open, so a fleet does not reboot at the same second.
	RandomDelay time.Duration
	// FleetLock is the FleetLock server to take the reboot slot from; nil
	// means none (reboot without coordination).
	FleetLock *fleetlock.Client
	// LockRetry is the first wait after a refused lock; it doubles up to
	// LockRetryMax (defaults: 1 minute and 30 minutes).
	LockRetry, LockRetryMax time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// History kinds and polkit actions of automatic updates.
const (
	// KindAutomatic guards SetAutomaticUpdates (polkit action
	// org.osupdate.OSUpdate1.automatic).
	KindAutomatic = "automatic"
	// KindAutomaticReboot is the history entry of a reboot the apply
	// policy made.
	KindAutomaticReboot = "automatic-reboot"
	// KindFleetLockRelease is the history entry of a released reboot slot.
	KindFleetLockRelease = "fleetlock-release"
)

// State keys of the settings changed over D-Bus and of the held slot.
const (
	keyPolicy = "automatic-update-policy"
	keyWindow = "maintenance-window"
	keyHeld   = "fleetlock-held" // the checksum the machine rebooted into holding the slot
	// keyPlanned is the checksum the apply policy plans to reboot into,
	// so that a restarted daemon plans again.
	keyPlanned = "automatic-reboot-planned"
)

// automatic is the daemon's automatic-update state.
type automatic struct {
	mu         sync.Mutex
	policy     string
	windowSpec string
	window     *maintwindow.Schedule
	reboot     *api.ScheduledReboot // what the waiter is waiting for
	stop       context.CancelFunc   // of the waiter
	waiter     chan struct{}        // closed when the waiter returns
	wake       chan struct{}        // settings changed: the waiter plans again
	releasing  bool                 // a slot release is being retried
}

// emitSysroot sends a signal of the Sysroot interface.
func (d *Daemon) emitSysroot(name string, args ...any) {
	if err := d.conn.Emit(api.ObjectPath, api.SysrootIface+"."+name, args...); err != nil {
		d.logf("signal %s: %v", name, err)
	}
}

// verdictRecorded follows a boot verdict: a healthy boot gives the
// FleetLock reboot slot back; an unhealthy one keeps it, so that no other
// machine of the group reboots into the same update.
func (d *Daemon) verdictRecorded(ctx context.Context, v api.BootVerdict) {
	if v.Verdict == api.VerdictHealthy {
		d.releaseRebootSlot(ctx)
	}
}

func validPolicy(p string) bool {
	switch p {
	case api.PolicyNone, api.PolicyCheck, api.PolicyStage, api.PolicyApply:
		return true
	}
	return false
}

// initAutomatic sets the policy and window from the configuration, then
// from the state (what was set over D-Bus wins).
func (d *Daemon) initAutomatic() error {
	a := &d.auto
	a.wake = make(chan struct{}, 1)
	policy, spec := d.cfg.AutomaticUpdatePolicy, d.cfg.Automatic.Window
	if v, err := d.store.Get(keyPolicy); err == nil {
		policy = v
	} else if !errors.Is(err, state.ErrNotSet) {
		return err
	}
	if v, err := d.store.Get(keyWindow); err == nil {
		spec = v
	} else if !errors.Is(err, state.ErrNotSet) {
		return err
	}
	if !validPolicy(policy) {
		return fmt.Errorf("automatic update policy %q: want none, check, stage or apply", policy)
	}
	w, err := maintwindow.Parse(spec, d.location())
	if err != nil {
		return err
	}
	a.policy, a.windowSpec, a.window = policy, w.String(), w
	return nil
}

func (d *Daemon) location() *time.Location {
	if d.cfg.Automatic.Location != nil {
		return d.cfg.Automatic.Location
	}
	return time.Local
}

func (d *Daemon) now() time.Time {
	if d.cfg.Automatic.Now != nil {
		return d.cfg.Automatic.Now()
	}
	return time.Now()
}

func (d *Daemon) policy() string {
	d.auto.mu.Lock()
	defer d.auto.mu.Unlock()
	return d.auto.policy
}

func (d *Daemon) schedule() *maintwindow.Schedule {
	d.auto.mu.Lock()
	defer d.auto.mu.Unlock()
	return d.auto.window
}

// automaticBusy reports whether a reboot is waited for or a slot release
// retried: the daemon must not exit idle then.
func (d *Daemon) automaticBusy() bool {
	d.auto.mu.Lock()
	defer d.auto.mu.Unlock()
	return d.auto.waiter != nil && !isClosed(d.auto.waiter) || d.auto.releasing
}

// automaticStatus is the "automatic-updates" object of the status.
func (d *Daemon) automaticStatus() *api.AutomaticStatus {
	a := &d.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	now := d.now()
	s := &api.AutomaticStatus{Policy: a.policy, Window: a.windowSpec, WindowOpen: a.window.Open(now),
		RandomDelay: int64(d.cfg.Automatic.RandomDelay / time.Second)}
	if !s.WindowOpen {
		s.NextWindow = a.window.Next(now).Unix()
	}
	if fl := d.cfg.Automatic.FleetLock; fl != nil {
		s.FleetLockURL, s.FleetLockGroup = fl.URL(), fl.Group()
	}
	if _, err := d.store.Get(keyHeld); err == nil {
		s.FleetLockHeld = true
	}
	if a.reboot != nil {
		r := *a.reboot
		s.Reboot = &r
	}
	return s
}

// SetAutomaticUpdates is the D-Bus method: it changes the policy and the
// maintenance window (keys api.SettingPolicy, api.SettingWindow) and keeps
// them in the state.
func (d *Daemon) SetAutomaticUpdates(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) *dbus.Error {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return err
	}
	d.touch()
	set := map[string]string{}
	for k, v := range o {
		s, ok := v.Value().(string)
		switch {
		case k != api.SettingPolicy && k != api.SettingWindow:
			return dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("unknown setting %q (want %s or %s)", k, api.SettingPolicy, api.SettingWindow)})
		case !ok:
			return dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("setting %q must be a string, got %s", k, v.Signature())})
		}
		set[k] = s
	}
	if len(set) == 0 {
		return dbus.NewError(api.ErrInvalidArgs, []any{"no settings given"})
	}
	if p, ok := set[api.SettingPolicy]; ok && !validPolicy(p) {
		return dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("automatic update policy %q: want none, check, stage or apply", p)})
	}
	var w *maintwindow.Schedule
	if spec, ok := set[api.SettingWindow]; ok {
		var err error
		if w, err = maintwindow.Parse(spec, d.location()); err != nil {
			return dbus.NewError(api.ErrInvalidArgs, []any{err.Error()})
		}
		set[api.SettingWindow] = w.String()
	}
	uid, derr := d.authorize(sender, KindAutomatic)
	if derr != nil {
		return derr
	}
	if err := d.setAutomatic(set, w); err != nil {
		return dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	d.logf("automatic updates set by uid %d: %v", uid, set)
	return nil
}

// setAutomatic stores and applies validated settings.
func (d *Daemon) setAutomatic(set map[string]string, w *maintwindow.Schedule) error {
	keys := map[string]string{}
	if p, ok := set[api.SettingPolicy]; ok {
		keys[keyPolicy] = p
	}
	if s, ok := set[api.SettingWindow]; ok {
		keys[keyWindow] = s
	}
	if err := d.store.SetAll(keys); err != nil {
		return err
	}
	a := &d.auto
	a.mu.Lock()
	if p, ok := set[api.SettingPolicy]; ok {
		a.policy = p
	}
	if w != nil {
		a.window, a.windowSpec = w, w.String()
	}
	policy, spec := a.policy, a.windowSpec
	stop := a.stop
	a.mu.Unlock()
	d.props.SetMust(api.SysrootIface, "AutomaticUpdatePolicy", policy)
	d.props.SetMust(api.SysrootIface, "MaintenanceWindow", spec)
	if policy != api.PolicyApply {
		if stop != nil {
			stop() // no reboot without the apply policy
		}
		d.forgetPlan()
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// transactionEnded sends the update signals of a finished transaction
// and, for the apply policy, schedules the reboot.
func (d *Daemon) transactionEnded(req Request, res Result, err error) {
	if err != nil || req.Kind != KindUpgrade {
		return
	}
	version := ""
	if c := res.Cached; c != nil {
		version = c.Version
		if c.Available {
			d.emitSysroot(api.SignalUpdateFound, c.Refspec, c.Checksum, c.Version)
		}
	}
	if res.Deployed {
		d.emitSysroot(api.SignalUpdateStaged, res.To, version)
	}
	if req.Apply {
		d.scheduleReboot()
	}
}

// nextBoot is the deployment a reboot would boot into when it is not the
// booted one: a staged deployment, else a pending one; "" if none.
func (d *Daemon) nextBoot(ctx context.Context) (string, error) {
	st, err := d.backend.Status(ctx)
	if err != nil {
		return "", err
	}
	for _, dep := range st.Deployments {
		if dep.Staged && !dep.Booted {
			return dep.Checksum, nil
		}
	}
	for _, dep := range st.Deployments {
		if dep.Pending && !dep.Booted {
			return dep.Checksum, nil
		}
	}
	return "", nil
}

// scheduleReboot starts waiting to reboot into the next boot's deployment,
// unless the daemon already waits for it.
func (d *Daemon) scheduleReboot() {
	target, err := d.nextBoot(context.Background())
	if err != nil {
		d.logf("automatic reboot: %v", err)
		return
	}
	if target == "" {
		return
	}
	a := &d.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.policy != api.PolicyApply {
		return
	}
	if a.waiter != nil && !isClosed(a.waiter) {
		if a.reboot != nil && a.reboot.Checksum == target {
			return
		}
		a.stop()
	}
	if err := d.store.Set(keyPlanned, target); err != nil {
		d.logf("automatic reboot: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.stop, a.waiter = stop, done
	a.reboot = &api.ScheduledReboot{Checksum: target}
	go func() {
		defer close(done)
		d.waitAndReboot(ctx, target)
		a.mu.Lock()
		if a.waiter == done {
			a.reboot = nil
		}
		a.mu.Unlock()
	}()
}

// resumeReboot plans again a reboot a stopped daemon had planned, if the
// policy is still apply and the deployment still boots next.
func (d *Daemon) resumeReboot() {
	planned, err := d.store.Get(keyPlanned)
	if err != nil {
		return
	}
	if next, err := d.nextBoot(context.Background()); err == nil && next == planned && d.policy() == api.PolicyApply {
		d.logf("resuming the planned reboot into %s", planned)
		d.scheduleReboot()
		return
	}
	d.forgetPlan()
}

func (d *Daemon) forgetPlan() {
	if err := d.store.Delete(keyPlanned); err != nil {
		d.logf("automatic reboot: %v", err)
	}
}

// stopAutomatic ends the reboot waiter (daemon exit); the plan stays in
// the state for resumeReboot.
func (d *Daemon) stopAutomatic() {
	d.auto.mu.Lock()
	stop, waiter := d.auto.stop, d.auto.waiter
	d.auto.mu.Unlock()
	if stop != nil {
		stop()
		<-waiter
	}
}

func (d *Daemon) announce(target string, at time.Time, reason string) {
	d.auto.mu.Lock()
	d.auto.reboot = &api.ScheduledReboot{Checksum: target, At: at.Unix(), Reason: reason}
	d.auto.mu.Unlock()
	d.emitSysroot(api.SignalRebootScheduled, at.Unix(), target, reason)
	d.logf("reboot into %s scheduled for %s (%s)", target, at.Format(time.RFC3339), reason)
}

// sleep waits until at on the daemon's clock; false when ctx ended, and
// woken early (true) when the settings change.
func (d *Daemon) sleep(ctx context.Context, at time.Time) (ok, woken bool) {
	t := time.NewTimer(at.Sub(d.now()))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-d.auto.wake:
		return true, true
	case <-t.C:
		return true, false
	}
}

// waitAndReboot reboots into target once the window is open, the random
// delay passed and the FleetLock slot (when configured) is held; never
// without the slot.
func (d *Daemon) waitAndReboot(ctx context.Context, target string) {
	ac := d.cfg.Automatic
	retry, retryMax := ac.LockRetry, ac.LockRetryMax
	if retry <= 0 {
		retry = time.Minute
	}
	if retryMax < retry {
		retryMax = max(retry, 30*time.Minute)
	}
plan:
	for {
		// Wait for the window, then the random delay.
		now := d.now()
		opens := d.schedule().Next(now)
		if opens.IsZero() {
			d.logf("automatic reboot: the maintenance window never opens")
			d.forgetPlan()
			return
		}
		var delay time.Duration
		if ac.RandomDelay > 0 {
			delay = rand.N(ac.RandomDelay)
		}
		at, reason := opens.Add(delay), api.RebootReasonDelay
		if opens.After(now) {
			reason = api.RebootReasonWindow
		}
		d.announce(target, at, reason)
		ok, woken := d.sleep(ctx, at)
		if !ok {
			return
		}
		if woken || !d.schedule().Open(d.now()) {
			continue // new settings, or the delay outlasted the window
		}
		// Take the reboot slot, retrying with backoff inside the window.
		wait := retry
		for fl := ac.FleetLock; fl != nil; {
			err := fl.Lock(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			d.logf("automatic reboot: %v; next try in %s", err, wait)
			d.announce(target, d.now().Add(wait), api.RebootReasonLock)
			ok, woken := d.sleep(ctx, d.now().Add(wait))
			if !ok {
				return
			}
			if woken || !d.schedule().Open(d.now()) {
				continue plan
			}
			wait = min(2*wait, retryMax)
		}
		break
	}
	if ac.FleetLock != nil {
		if err := d.store.Set(keyHeld, target); err != nil {
			d.logf("automatic reboot: %v", err)
		}
	}
	d.rebootInto(ctx, target)
}

// rebootInto runs the reboot once no transaction runs and target still
// boots next, and records it in the history.
func (d *Daemon) rebootInto(ctx context.Context, target string) {
	for d.busy() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	from := ""
	st, err := d.backend.Status(ctx)
	if err == nil {
		from = bootedChecksum(st)
	}
	d.forgetPlan() // whatever happens now, this plan is done
	next, err := d.nextBoot(ctx)
	if err == nil && next != target {
		err = fmt.Errorf("%s no longer boots next (now %q): not rebooting", target, next)
	}
	if err == nil {
		d.emitSysroot(api.SignalRebootScheduled, d.now().Unix(), target, api.RebootReasonNow)
		d.logf("rebooting into %s", target)
		err = d.reboot()
	}
	now := time.Now().Unix()
	e := api.HistoryEntry{Kind: KindAutomaticReboot, Start: now, End: now, From: from, To: target, Result: state.ResultSuccess}
	if err != nil {
		e.Result, e.Error = state.ResultFailed, err.Error()
		d.logf("automatic reboot: %v", err)
	}
	if _, herr := d.store.Record(e); herr != nil {
		d.logf("automatic reboot: %v", herr)
	}
	if err != nil && d.cfg.Automatic.FleetLock != nil {
		// No reboot: give the slot back so the fleet goes on.
		d.releaseRebootSlot(ctx)
	}
}

// busy reports whether a transaction runs or is queued.
func (d *Daemon) busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active != nil || d.tail != nil && !isClosed(d.tail.done)
}

// releaseRebootSlot gives the FleetLock slot back (steady-state). A failed
// release is retried in the background with backoff until it succeeds or
// the daemon stops; the error of the first try is returned.
func (d *Daemon) releaseRebootSlot(ctx context.Context) error {
	fl := d.cfg.Automatic.FleetLock
	if fl == nil {
		return nil
	}
	err := d.unlockOnce(ctx, fl)
	if err == nil {
		return nil
	}
	d.auto.mu.Lock()
	already := d.auto.releasing
	d.auto.releasing = true
	d.auto.mu.Unlock()
	if !already {
		go func() {
			wait := max(d.cfg.Automatic.LockRetry, time.Second)
			for {
				select {
				case <-d.stopped:
				case <-time.After(wait):
					if d.unlockOnce(context.Background(), fl) != nil {
						wait = min(2*wait, max(d.cfg.Automatic.LockRetryMax, wait))
						continue
					}
				}
				d.auto.mu.Lock()
				d.auto.releasing = false
				d.auto.mu.Unlock()
				return
			}
		}()
	}
	return err
}

func (d *Daemon) unlockOnce(ctx context.Context, fl *fleetlock.Client) error {
	held, _ := d.store.Get(keyHeld)
	start := time.Now().Unix()
	if err := fl.Unlock(ctx); err != nil {
		d.logf("release reboot slot: %v", err)
		return err
	}
	if held == "" {
		return nil // nothing this daemon took; released in case an older run did
	}
	if err := d.store.Delete(keyHeld); err != nil {
		d.logf("release reboot slot: %v", err)
	}
	e := api.HistoryEntry{Kind: KindFleetLockRelease, Start: start, End: time.Now().Unix(), From: held, To: held, Result: state.ResultSuccess}
	if _, err := d.store.Record(e); err != nil {
		d.logf("release reboot slot: %v", err)
	}
	return nil
}
