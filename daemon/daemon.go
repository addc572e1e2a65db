// Package daemon is os-updated: it owns the sysroot, exports the
// org.osupdate.OSUpdate1 API on D-Bus, and runs one mutating transaction at
// a time with progress signals and cancellation. The work itself is done by
// a Backend; this package is the service around it: authorization, the
// transaction queue, history in bbolt, idle exit and crash repair.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/daemon/state"
)

// Config configures a daemon.
type Config struct {
	// BusAddress is the bus to serve on; "" means the system bus.
	BusAddress string
	// StatePath is the bbolt state file.
	StatePath string
	// IdleExit ends Run after this long without transactions or calls
	// (0: never); D-Bus activation starts the daemon again on demand.
	IdleExit time.Duration
	// RebootCommand overrides how the machine reboots (tests); empty means
	// logind's Reboot when logind is on the system bus, else systemctl.
	RebootCommand []string
	// AutomaticUpdatePolicy is what the timer's AutomaticUpdateTrigger
	// does ("none", "check", "stage", "apply"); a policy set over D-Bus
	// (kept in the state) wins.
	AutomaticUpdatePolicy string
	// OnBootVerdict, if set, is called with every boot verdict once it is
	// recorded, before a reboot the verdict asks for (the hook for what
	// must follow a healthy boot, such as releasing a reboot lock).
	OnBootVerdict func(ctx context.Context, v api.BootVerdict)
	// VerdictFile receives the last boot verdict as JSON (default:
	// boot-verdict.json beside StatePath), for readers without the bus.
	VerdictFile string
	// Automatic configures the apply policy (window, delay, FleetLock).
	Automatic AutomaticConfig
	Backend   Backend
	Log       io.Writer
}

// Daemon is a running service.
type Daemon struct {
	cfg     Config
	conn    *dbus.Conn
	store   *state.Store
	backend Backend
	props   *prop.Properties
	auto    automatic
	stopped chan struct{} // closed by Close: background retries end
	closing sync.Once

	mu           sync.Mutex
	nextPath     uint64
	active       *transaction
	tail         *transaction // last queued transaction
	lastActivity time.Time
}

const sysrootIntrospection = `
<interface name="` + api.SysrootIface + `">
  <method name="GetStatus"><arg name="json" type="s" direction="out"/></method>
  <method name="History"><arg name="limit" type="u" direction="in"/><arg name="json" type="s" direction="out"/></method>
  <method name="GetAuthorizations"><arg name="json" type="s" direction="out"/></method>
  <method name="DbDiff"><arg name="from" type="s" direction="in"/><arg name="to" type="s" direction="in"/><arg name="json" type="s" direction="out"/></method>
  <method name="AutomaticUpdateTrigger"><arg name="options" type="a{sv}" direction="in"/><arg name="enabled" type="b" direction="out"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="Upgrade"><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="Rollback"><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="Rebase"><arg name="refspec" type="s" direction="in"/><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="Deploy"><arg name="revision" type="s" direction="in"/><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="PkgChange"><arg name="install" type="as" direction="in"/><arg name="uninstall" type="as" direction="in"/><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="KernelArgs"><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="Cleanup"><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <method name="HealthCheck"><arg name="options" type="a{sv}" direction="in"/><arg name="transaction" type="o" direction="out"/></method>
  <signal name="` + api.SignalBootVerdict + `"><arg name="deployment" type="s"/><arg name="verdict" type="s"/><arg name="reason" type="s"/><arg name="action" type="s"/></signal>
  <method name="SetAutomaticUpdates"><arg name="settings" type="a{sv}" direction="in"/></method>
  <signal name="UpdateFound"><arg name="refspec" type="s"/><arg name="checksum" type="s"/><arg name="version" type="s"/></signal>
  <signal name="UpdateStaged"><arg name="checksum" type="s"/><arg name="version" type="s"/></signal>
  <signal name="RebootScheduled"><arg name="at" type="x"/><arg name="checksum" type="s"/><arg name="reason" type="s"/></signal>
  <property name="Booted" type="s" access="read"/>
  <property name="ActiveTransaction" type="o" access="read"/>
  <property name="AutomaticUpdatePolicy" type="s" access="read"/>
  <property name="MaintenanceWindow" type="s" access="read"/>
</interface>`

// New connects to the bus, opens the state, repairs what a crash left and
// exports the API. Call Run to serve.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Backend == nil {
		return nil, errors.New("daemon: no backend")
	}
	if cfg.AutomaticUpdatePolicy == "" {
		cfg.AutomaticUpdatePolicy = "none"
	}
	d := &Daemon{cfg: cfg, backend: cfg.Backend, lastActivity: time.Now(), stopped: make(chan struct{})}
	var err error
	if d.store, err = state.Open(cfg.StatePath); err != nil {
		return nil, err
	}
	if err := d.initAutomatic(); err != nil {
		d.store.Close()
		return nil, err
	}
	if interrupted, err := d.store.Recover(time.Now()); err != nil {
		d.store.Close()
		return nil, err
	} else if len(interrupted) > 0 {
		d.logf("marked %d interrupted transaction(s) as failed", len(interrupted))
	}
	if err := d.backend.Repair(ctx); err != nil {
		d.store.Close()
		return nil, fmt.Errorf("repair after crash: %w", err)
	}
	if cfg.BusAddress == "" {
		d.conn, err = dbus.ConnectSystemBus()
	} else {
		d.conn, err = dbus.Connect(cfg.BusAddress)
	}
	if err != nil {
		d.store.Close()
		return nil, fmt.Errorf("connect to bus: %w", err)
	}
	if err := d.export(); err != nil {
		d.Close()
		return nil, err
	}
	reply, err := d.conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		d.Close()
		if err == nil {
			err = errors.New("another daemon owns it")
		}
		return nil, fmt.Errorf("request bus name %s: %w", api.BusName, err)
	}
	d.resumeReboot()
	return d, nil
}

func (d *Daemon) export() error {
	if err := d.conn.Export(d, api.ObjectPath, api.SysrootIface); err != nil {
		return err
	}
	booted := ""
	if st, err := d.backend.Status(context.Background()); err == nil {
		booted = bootedChecksum(st)
	}
	props, err := prop.Export(d.conn, api.ObjectPath, prop.Map{api.SysrootIface: {
		"Booted":                {Value: booted, Emit: prop.EmitTrue},
		"ActiveTransaction":     {Value: dbus.ObjectPath("/"), Emit: prop.EmitTrue},
		"AutomaticUpdatePolicy": {Value: d.policy(), Emit: prop.EmitTrue},
		"MaintenanceWindow":     {Value: d.schedule().String(), Emit: prop.EmitTrue},
	}})
	if err != nil {
		return err
	}
	d.props = props
	xml := "<node>" + sysrootIntrospection + introspect.IntrospectDataString + prop.IntrospectDataString + "</node>"
	return d.conn.Export(introspect.Introspectable(xml), api.ObjectPath, "org.freedesktop.DBus.Introspectable")
}

// Close releases the bus name and the state file.
func (d *Daemon) Close() error {
	d.closing.Do(func() { close(d.stopped) })
	d.stopAutomatic()
	if d.conn != nil {
		d.conn.Close()
	}
	return d.store.Close()
}

// Run serves until ctx ends or the daemon has been idle for IdleExit. It
// waits for a running transaction to finish before returning.
func (d *Daemon) Run(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stopAutomatic()
			d.drain()
			return nil
		case <-tick.C:
			if d.cfg.IdleExit > 0 && d.idleFor() > d.cfg.IdleExit {
				d.logf("idle for %s, exiting", d.cfg.IdleExit)
				d.conn.ReleaseName(api.BusName)
				d.drain()
				return nil
			}
		}
	}
}

func (d *Daemon) drain() {
	d.mu.Lock()
	tail := d.tail
	d.mu.Unlock()
	if tail != nil {
		<-tail.exited
	}
}

func (d *Daemon) idleFor() time.Duration {
	if d.automaticBusy() {
		return 0 // a reboot is waited for, or a slot release retried
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active != nil || d.tail != nil && !isClosed(d.tail.done) {
		return 0
	}
	return time.Since(d.lastActivity)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (d *Daemon) touch() {
	d.mu.Lock()
	d.lastActivity = time.Now()
	d.mu.Unlock()
}

func (d *Daemon) logf(format string, args ...any) {
	if d.cfg.Log != nil {
		fmt.Fprintf(d.cfg.Log, "os-updated: "+format+"\n", args...)
	}
}

func (d *Daemon) setActive(t *transaction) {
	d.mu.Lock()
	d.active = t
	d.lastActivity = time.Now()
	d.mu.Unlock()
	path := dbus.ObjectPath("/")
	if t != nil {
		path = t.path
	}
	d.props.SetMust(api.SysrootIface, "ActiveTransaction", path)
}

func (d *Daemon) refreshProperties() {
	if st, err := d.backend.Status(context.Background()); err == nil {
		d.props.SetMust(api.SysrootIface, "Booted", bootedChecksum(st))
	}
}

// bootedChecksum is the Booted property: the booted deployment's commit.
func bootedChecksum(st api.Status) string {
	for _, dep := range st.Deployments {
		if dep.Booted {
			return dep.Checksum
		}
	}
	return ""
}

// updateInstalled reports whether the update a check found is deployed
// already for its origin, as what runs or boots next (booted, default,
// staged or pending; by its base commit when packages are layered on it),
// the way upgrade decides there is no update.
func updateInstalled(c *api.CachedUpdate, deps []api.Deployment) bool {
	for _, d := range deps {
		if !(d.Booted || d.Default || d.Staged || d.Pending) || d.Origin != c.Refspec {
			continue
		}
		if d.Checksum == c.Checksum || d.BaseChecksum == c.Checksum {
			return true
		}
	}
	return false
}

// GetStatus returns the status document (api.Status) as JSON.
func (d *Daemon) GetStatus() (string, *dbus.Error) {
	d.touch()
	st, err := d.backend.Status(context.Background())
	if err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	d.mu.Lock()
	if d.active != nil {
		st.Transaction = string(d.active.path)
	}
	d.mu.Unlock()
	if st.CachedUpdate, err = d.store.CachedUpdate(); err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	if c := st.CachedUpdate; c != nil && c.Available && updateInstalled(c, st.Deployments) {
		c.Available = false // deployed since the check found it
	}
	st.AutomaticPolicy = d.policy()
	st.Automatic = d.automaticStatus()
	if err := d.attachVerdicts(&st); err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	return string(b), nil
}

// History returns up to limit finished transactions, newest first, as JSON.
func (d *Daemon) History(limit uint32) (string, *dbus.Error) {
	d.touch()
	h, err := d.store.History(int(limit))
	if err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	if h == nil {
		h = []api.HistoryEntry{}
	}
	b, _ := json.Marshal(h)
	return string(b), nil
}

// DbDiff returns the package differences of two commits as JSON
// (api.PackageDiff).
func (d *Daemon) DbDiff(from, to string) (string, *dbus.Error) {
	d.touch()
	diff, err := d.backend.DbDiff(context.Background(), from, to)
	if err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	b, _ := json.Marshal(diff)
	return string(b), nil
}

// options decodes an a{sv} against the keys a method accepts.
type options map[string]dbus.Variant

func (o options) check(allowed ...string) *dbus.Error {
	ok := map[string]bool{api.OptWait: true, api.OptReboot: true}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range o {
		if !ok[k] {
			return dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("unknown option %q", k)})
		}
	}
	return nil
}

func (o options) bool(key string) (bool, *dbus.Error) {
	v, ok := o[key]
	if !ok {
		return false, nil
	}
	b, isBool := v.Value().(bool)
	if !isBool {
		return false, dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("option %q must be a boolean, got %s", key, v.Signature())})
	}
	return b, nil
}

func (o options) strings(key string) ([]string, *dbus.Error) {
	v, ok := o[key]
	if !ok {
		return nil, nil
	}
	s, isList := v.Value().([]string)
	if !isList {
		return nil, dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("option %q must be a string array, got %s", key, v.Signature())})
	}
	return s, nil
}

// submit authorizes, queues and starts a transaction.
func (d *Daemon) submit(sender dbus.Sender, req Request, opts options) (dbus.ObjectPath, *dbus.Error) {
	d.touch()
	uid, derr := d.authorize(sender, req.Kind)
	if derr != nil {
		return "/", derr
	}
	wait, derr := opts.bool(api.OptWait)
	if derr != nil {
		return "/", derr
	}
	if req.Reboot, derr = opts.bool(api.OptReboot); derr != nil {
		return "/", derr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	busy := d.tail != nil && !isClosed(d.tail.done)
	if busy && !wait {
		running := d.active
		if running == nil {
			running = d.tail
		}
		return "/", dbus.NewError(api.ErrBusy, []any{fmt.Sprintf(
			"transaction %s (%s, started by uid %d) is running; wait for it, cancel it, or pass the wait option to queue",
			running.path, running.req.Label(), running.uid)})
	}
	d.nextPath++
	ctx, cancel := context.WithCancel(context.Background())
	t := &transaction{d: d, req: req, uid: uid, ctx: ctx, cancel: cancel, done: make(chan struct{}), exited: make(chan struct{}),
		path: dbus.ObjectPath(fmt.Sprintf("%s/%d_%d", api.TransactionPathPrefix, time.Now().Unix(), d.nextPath))}
	after := make(chan struct{})
	if busy {
		t.after = d.tail.done
	} else {
		close(after)
		t.after = after
	}
	if err := t.export(); err != nil {
		cancel()
		return "/", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	d.tail = t
	go func() {
		t.run()
		// Keep the object a while so late clients can read the outcome.
		time.AfterFunc(time.Minute, t.unexport)
	}()
	return t.path, nil
}

// Upgrade is the D-Bus method.
func (d *Daemon) Upgrade(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptCheckOnly, api.OptPreview, api.OptDownloadOnly, api.OptAllowDowngrade, api.OptStage); err != nil {
		return "/", err
	}
	req := Request{Kind: KindUpgrade}
	var err *dbus.Error
	for key, dst := range map[string]*bool{api.OptCheckOnly: &req.Check, api.OptPreview: &req.Preview,
		api.OptDownloadOnly: &req.DownloadOnly, api.OptAllowDowngrade: &req.AllowDowngrade, api.OptStage: &req.Stage} {
		if *dst, err = opts.bool(key); err != nil {
			return "/", err
		}
	}
	return d.submit(sender, req, opts)
}

// AutomaticUpdateTrigger runs the automatic update policy now (the timer
// calls it): nothing for "none", an update check for "check", a staged
// upgrade for "stage", and for "apply" a staged upgrade after which the
// daemon reboots into it (see waitAndReboot). It returns whether a
// transaction was started.
func (d *Daemon) AutomaticUpdateTrigger(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (bool, dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return false, "/", err
	}
	opts := options(o)
	if err := opts.check(); err != nil {
		return false, "/", err
	}
	req := Request{Kind: KindUpgrade, Automatic: true}
	switch d.policy() {
	case api.PolicyCheck:
		req.Check = true
	case api.PolicyStage:
		req.Stage = true
	case api.PolicyApply:
		req.Stage, req.Apply = true, true
	default:
		d.touch()
		return false, "/", nil
	}
	p, err := d.submit(sender, req, opts)
	return err == nil, p, err
}

// Rollback is the D-Bus method.
func (d *Daemon) Rollback(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(); err != nil {
		return "/", err
	}
	return d.submit(sender, Request{Kind: KindRollback}, opts)
}

// Rebase is the D-Bus method.
func (d *Daemon) Rebase(sender dbus.Sender, msg dbus.Message, refspec string, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "sa{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptAllowDowngrade, api.OptInsecure); err != nil {
		return "/", err
	}
	if refspec == "" {
		return "/", dbus.NewError(api.ErrInvalidArgs, []any{"empty refspec"})
	}
	req := Request{Kind: KindRebase, Refspec: refspec}
	var err *dbus.Error
	if req.AllowDowngrade, err = opts.bool(api.OptAllowDowngrade); err != nil {
		return "/", err
	}
	if req.Insecure, err = opts.bool(api.OptInsecure); err != nil {
		return "/", err
	}
	return d.submit(sender, req, opts)
}

// Deploy is the D-Bus method.
func (d *Daemon) Deploy(sender dbus.Sender, msg dbus.Message, revision string, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "sa{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptAllowDowngrade); err != nil {
		return "/", err
	}
	if revision == "" {
		return "/", dbus.NewError(api.ErrInvalidArgs, []any{"empty revision"})
	}
	// deploy goes to the chosen revision, older ones included (that is
	// what it is for); the option is accepted for rpm-ostree clients.
	req := Request{Kind: KindDeploy, Revision: revision}
	var err *dbus.Error
	if req.AllowDowngrade, err = opts.bool(api.OptAllowDowngrade); err != nil {
		return "/", err
	}
	return d.submit(sender, req, opts)
}

// PkgChange is the D-Bus method.
func (d *Daemon) PkgChange(sender dbus.Sender, msg dbus.Message, install, uninstall []string, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "asasa{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptDryRun, api.OptOverrideRemove, api.OptOverrideReplace, api.OptOverrideReset, api.OptOverrideResetAll); err != nil {
		return "/", err
	}
	req := Request{Kind: KindPkgChange, Install: install, Uninstall: uninstall}
	var err *dbus.Error
	for key, dst := range map[string]*[]string{api.OptOverrideRemove: &req.OverrideRemove,
		api.OptOverrideReplace: &req.OverrideReplace, api.OptOverrideReset: &req.OverrideReset} {
		if *dst, err = opts.strings(key); err != nil {
			return "/", err
		}
	}
	if req.DryRun, err = opts.bool(api.OptDryRun); err != nil {
		return "/", err
	}
	if req.OverrideResetAll, err = opts.bool(api.OptOverrideResetAll); err != nil {
		return "/", err
	}
	if len(install)+len(uninstall)+len(req.OverrideRemove)+len(req.OverrideReplace)+len(req.OverrideReset) == 0 && !req.OverrideResetAll {
		return "/", dbus.NewError(api.ErrInvalidArgs, []any{"no packages to install or uninstall and no overrides"})
	}
	return d.submit(sender, req, opts)
}

// KernelArgs is the D-Bus method.
func (d *Daemon) KernelArgs(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptKargsAppend, api.OptKargsDelete, api.OptKargsReplace); err != nil {
		return "/", err
	}
	req := Request{Kind: KindKargs}
	var err *dbus.Error
	if req.KargsAppend, err = opts.strings(api.OptKargsAppend); err != nil {
		return "/", err
	}
	if req.KargsDelete, err = opts.strings(api.OptKargsDelete); err != nil {
		return "/", err
	}
	if req.KargsReplace, err = opts.strings(api.OptKargsReplace); err != nil {
		return "/", err
	}
	if len(req.KargsAppend)+len(req.KargsDelete)+len(req.KargsReplace) == 0 {
		return "/", dbus.NewError(api.ErrInvalidArgs, []any{"no kernel argument changes given"})
	}
	return d.submit(sender, req, opts)
}

// Cleanup is the D-Bus method.
func (d *Daemon) Cleanup(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(api.OptCleanupRollback, api.OptCleanupPending, api.OptCleanupCache, api.OptCleanupRefs, api.OptCleanupRPMCache); err != nil {
		return "/", err
	}
	req := Request{Kind: KindCleanup}
	var err *dbus.Error
	for key, dst := range map[string]*bool{api.OptCleanupRollback: &req.CleanupRollback,
		api.OptCleanupPending: &req.CleanupPending, api.OptCleanupCache: &req.CleanupCache, api.OptCleanupRefs: &req.CleanupRefs,
		api.OptCleanupRPMCache: &req.CleanupRPMCache} {
		if *dst, err = opts.bool(key); err != nil {
			return "/", err
		}
	}
	return d.submit(sender, req, opts)
}

// reboot restarts the machine after a successful deployment.
func (d *Daemon) reboot() error {
	if len(d.cfg.RebootCommand) > 0 {
		return exec.Command(d.cfg.RebootCommand[0], d.cfg.RebootCommand[1:]...).Run()
	}
	if sys, err := dbus.ConnectSystemBus(); err == nil {
		defer sys.Close()
		var has bool
		if sys.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.login1").Store(&has) == nil && has {
			return sys.Object("org.freedesktop.login1", "/org/freedesktop/login1").
				Call("org.freedesktop.login1.Manager.Reboot", 0, false).Err
		}
	}
	return exec.Command("systemctl", "reboot").Run()
}

// checkSignature refuses calls whose arguments have other D-Bus types than
// the method declares (the binding would otherwise convert some of them).
func checkSignature(msg dbus.Message, want string) *dbus.Error {
	got := ""
	if v, ok := msg.Headers[dbus.FieldSignature]; ok {
		if sig, ok := v.Value().(dbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != want {
		return dbus.NewError(api.ErrInvalidArgs, []any{fmt.Sprintf("arguments have type (%s), want (%s)", got, want)})
	}
	return nil
}
