package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/progress"
)

// hostCommands talk to os-updated over D-Bus.
func hostCommands() map[string]command {
	return map[string]command{
		"status":       {"show deployments and the daemon's state", hostStatus},
		"upgrade":      {"update to the newest commit of the booted origin", hostUpgrade},
		"rollback":     {"make the previous deployment the default", hostRollback},
		"rebase":       {"switch to another remote:ref", hostRebase},
		"deploy":       {"deploy a given version or checksum of the current origin", hostDeploy},
		"kargs":        {"change kernel arguments of the default deployment", hostKargs},
		"cleanup":      {"remove deployments and cached data", hostCleanup},
		"cancel":       {"cancel the running transaction", hostCancel},
		"automatic":    {"run the automatic update policy now (what the timer runs)", hostAutomatic},
		"history":      {"list past transactions", hostHistory},
		"health-check": {"run the boot health checks; roll back an unhealthy new deployment (docs/health.md)", hostHealthCheck},
		"install":      {"layer packages on the base commit", hostInstall},
		"uninstall":    {"remove layered packages", hostUninstall},
		"override": {"change base packages", runGroup("override", map[string]command{
			"remove":  {"remove base packages", hostOverrideRemove},
			"replace": {"replace base packages with local .rpm files or NEVRAs from the repositories", hostOverrideReplace},
			"reset":   {"drop overrides of packages (--all: every override)", hostOverrideReset},
		})},
		"db": {"compare the packages of two commits (db diff)", runGroup("db", map[string]command{"diff": {"show packages added, removed and changed between two commits", hostDbDiff}})},
	}
}

// busFlag adds --bus-address (default $OS_UPDATE_BUS_ADDRESS, else the
// system bus) and returns a connector.
func busFlag(f *flagSet) func() (*dbus.Conn, error) {
	addr := f.String("bus-address", os.Getenv("OS_UPDATE_BUS_ADDRESS"), "D-Bus address of the bus os-updated serves on (default: the system bus)")
	return func() (*dbus.Conn, error) {
		var conn *dbus.Conn
		var err error
		if *addr == "" {
			conn, err = dbus.ConnectSystemBus()
		} else {
			conn, err = dbus.Connect(*addr)
		}
		if err != nil {
			return nil, fmt.Errorf("connect to the bus: %w", err)
		}
		return conn, nil
	}
}

func sysrootObject(conn *dbus.Conn) dbus.BusObject {
	return conn.Object(api.BusName, api.ObjectPath)
}

// dbusError turns a D-Bus error into a one-line reason.
func dbusError(err error) error {
	var de dbus.Error
	if errors.As(err, &de) {
		msg := strings.TrimPrefix(de.Name, "org.osupdate.OSUpdate1.Error.")
		if len(de.Body) > 0 {
			if s, ok := de.Body[0].(string); ok {
				msg = s
			}
		}
		return errors.New(msg)
	}
	return err
}

func hostStatus(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "status", "[--json] [-v]")
	connect := busFlag(f)
	asJSON := f.Bool("json", false, "print the status document as JSON (format: docs/daemon.md)")
	verbose := f.Bool("v", false, "more detail")
	if _, err := f.parse(args); err != nil {
		return err
	}
	conn, err := connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	var doc string
	if err := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+".GetStatus", 0).Store(&doc); err != nil {
		return dbusError(err)
	}
	if *asJSON {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		e.printf("%s\n", b)
		return nil
	}
	var st api.Status
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return fmt.Errorf("status document: %w", err)
	}
	printStatus(e, &st, *verbose)
	return nil
}

func printStatus(e *env, st *api.Status, verbose bool) {
	state := "idle"
	if st.Transaction != "" {
		state = "busy (" + st.Transaction + ")"
	}
	e.printf("State: %s\n", state)
	e.printf("AutomaticUpdates: %s\n", st.AutomaticPolicy)
	if cu := st.CachedUpdate; cu != nil && cu.Available && !deployed(st, cu.Checksum) {
		e.printf("AvailableUpdate: %s %s (checked %s)\n", cu.Version, cu.Checksum, fmtTime(cu.CheckedAt))
	}
	for _, w := range st.Warnings {
		e.printf("Warning: %s\n", w)
	}
	e.printf("Deployments:\n")
	for _, d := range st.Deployments {
		mark := " "
		if d.Booted {
			mark = "●"
		}
		tags := []string{}
		if d.Staged {
			tags = append(tags, "staged")
		}
		// The roles are the daemon's (sysroot.Status). Offline nothing is
		// booted and the default is shown as such.
		switch {
		case anyBooted(st) && d.Pending:
			tags = append(tags, "pending")
		case !anyBooted(st) && d.Default:
			tags = append(tags, "default")
		}
		if d.Rollback {
			tags = append(tags, "rollback")
		}
		if d.Pinned {
			tags = append(tags, "pinned")
		}
		tag := ""
		if len(tags) > 0 {
			tag = " (" + strings.Join(tags, ", ") + ")"
		}
		e.printf("%s %s:%s%s\n", mark, d.OSName, d.Origin, tag)
		if d.Version != "" {
			e.printf("      Version: %s (%s)\n", d.Version, fmtTime(d.Timestamp))
		} else {
			e.printf("    Timestamp: %s\n", fmtTime(d.Timestamp))
		}
		if d.BaseChecksum != "" {
			e.printf("   BaseCommit: %s\n", d.BaseChecksum)
		}
		e.printf("       Commit: %s\n", d.Checksum)
		printVerdict(e, d.BootVerdict)
		if d.ContainerImageReference != "" {
			e.printf("        Image: %s\n", d.ContainerImageReference)
			e.printf("  ImageDigest: %s\n", d.ContainerImageDigest)
		}
		if len(d.Packages) > 0 {
			e.printf("LayeredPackages: %s\n", strings.Join(d.Packages, " "))
		}
		if len(d.Removed) > 0 {
			e.printf("RemovedBasePackages: %s\n", strings.Join(d.Removed, " "))
		}
		if len(d.Replaced) > 0 {
			var l []string
			for _, r := range d.Replaced {
				l = append(l, strings.Replace(r, " ", " -> ", 1))
			}
			e.printf("ReplacedBasePackages: %s\n", strings.Join(l, ", "))
		}
		if verbose && len(d.Layered) > 0 {
			e.printf("    Installed: %s\n", strings.Join(d.Layered, " "))
		}
		if verbose {
			e.printf("       Serial: %d\n", d.Serial)
			e.printf("        Kargs: %s\n", strings.Join(d.Kargs, " "))
			for _, s := range d.Signatures {
				e.printf("    Signature: %s\n", s)
			}
		}
	}
}

// deployed reports whether a commit is one of the deployments.
func deployed(st *api.Status, checksum string) bool {
	for _, d := range st.Deployments {
		if d.Checksum == checksum {
			return true
		}
	}
	return false
}

func anyBooted(st *api.Status) bool {
	for _, d := range st.Deployments {
		if d.Booted {
			return true
		}
	}
	return false
}

func fmtTime(unix int64) string {
	if unix == 0 {
		return "unknown"
	}
	return time.Unix(unix, 0).UTC().Format("2006-01-02T15:04:05Z")
}

func hostHistory(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "history", "[--json] [-n N]")
	connect := busFlag(f)
	asJSON := f.Bool("json", false, "print JSON (format: docs/daemon.md)")
	limit := f.Uint("n", 20, "at most N entries, newest first (0: all)")
	if _, err := f.parse(args); err != nil {
		return err
	}
	conn, err := connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	var doc string
	if err := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+".History", 0, uint32(*limit)).Store(&doc); err != nil {
		return dbusError(err)
	}
	if *asJSON {
		e.printf("%s\n", doc)
		return nil
	}
	var h []api.HistoryEntry
	if err := json.Unmarshal([]byte(doc), &h); err != nil {
		return err
	}
	for _, x := range h {
		e.printf("%4d %s %-9s uid=%-5d %-11s", x.ID, fmtTime(x.Start), x.Kind, x.CallerUID, x.Result)
		switch {
		case x.To != "":
			e.printf(" %s -> %s", shortSum(x.From), shortSum(x.To))
		case x.From != "":
			// Nothing was brought in (a check, a failure): only where
			// the system was.
			e.printf(" at %s", shortSum(x.From))
		}
		if x.Error != "" {
			e.printf(" (%s)", x.Error)
		}
		e.printf("\n")
	}
	return nil
}

func shortSum(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	if c == "" {
		return "-"
	}
	return c
}

// txnFlags are shared by mutating commands.
type txnFlags struct {
	connect func() (*dbus.Conn, error)
	reboot  *bool
	wait    *bool
}

func addTxnFlags(f *flagSet, reboot bool) txnFlags {
	t := txnFlags{connect: busFlag(f)}
	if reboot {
		t.reboot = f.Bool("reboot", false, "reboot when the change is in place")
	}
	t.wait = f.Bool("wait", false, "queue behind a running transaction instead of failing")
	return t
}

func (t txnFlags) options(extra map[string]any) map[string]dbus.Variant {
	o := map[string]dbus.Variant{}
	if t.reboot != nil && *t.reboot {
		o[api.OptReboot] = dbus.MakeVariant(true)
	}
	if *t.wait {
		o[api.OptWait] = dbus.MakeVariant(true)
	}
	for k, v := range extra {
		o[k] = dbus.MakeVariant(v)
	}
	return o
}

// runTransaction calls a mutating method and follows its transaction to
// the end, rendering progress. Interrupting the client cancels the
// transaction; the daemon finishes cleanly either way.
func runTransaction(ctx context.Context, e *env, t txnFlags, method string, args ...any) (string, error) {
	conn, err := t.connect()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// Subscribe before calling, so no signal of our transaction is missed.
	if err := conn.AddMatchSignal(dbus.WithMatchPathNamespace(api.TransactionPathPrefix)); err != nil {
		return "", fmt.Errorf("subscribe to transaction signals: %w", err)
	}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, api.BusName)); err != nil {
		return "", err
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	var path dbus.ObjectPath
	if err := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+"."+method, 0, args...).Store(&path); err != nil {
		return "", dbusError(err)
	}
	return follow(ctx, e, conn, signals, path)
}

// followTransaction follows a transaction started elsewhere; it reads the
// transaction's properties first, since signals may already have passed.
func followTransaction(ctx context.Context, e *env, t txnFlags, path dbus.ObjectPath) (string, error) {
	conn, err := t.connect()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(path)); err != nil {
		return "", err
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	obj := conn.Object(api.BusName, path)
	if v, err := obj.GetProperty(api.TransactionIface + ".Finished"); err == nil && v.Value().(bool) {
		ok, _ := obj.GetProperty(api.TransactionIface + ".Success")
		if ok.Value().(bool) {
			outcome := ""
			if v, err := obj.GetProperty(api.TransactionIface + ".Outcome"); err == nil {
				outcome, _ = v.Value().(string)
			}
			return outcome, nil
		}
		msg, _ := obj.GetProperty(api.TransactionIface + ".Error")
		return "", fmt.Errorf("%v", msg.Value())
	}
	return follow(ctx, e, conn, signals, path)
}

// follow renders a transaction's signals until it finishes.
func follow(ctx context.Context, e *env, conn *dbus.Conn, signals chan *dbus.Signal, path dbus.ObjectPath) (string, error) {
	bar := newRenderer(e.stdout, false)
	defer bar.Done()
	cancelled := false
	for {
		select {
		case <-ctx.Done():
			if !cancelled {
				cancelled = true
				bar.Clear()
				fmt.Fprintln(e.stderr, "Cancelling...")
				conn.Object(api.BusName, path).Call(api.TransactionIface+".Cancel", 0)
			}
			ctx = context.Background()
		case sig, ok := <-signals:
			if !ok {
				return "", errors.New("lost the connection to the bus")
			}
			if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
				if len(sig.Body) == 3 && sig.Body[2] == "" {
					bar.Clear()
					return "", errors.New("os-updated exited during the transaction; it will repair its state when it starts again")
				}
				continue
			}
			if sig.Path != path {
				continue
			}
			switch sig.Name {
			case api.TransactionIface + ".Message":
				if len(sig.Body) == 1 {
					bar.Message(fmt.Sprint(sig.Body[0]))
				}
			case api.TransactionIface + ".Progress":
				if p, ok := api.ParseProgress(sig.Body); ok {
					bar.Update(progress.Update{Stage: p.Stage, BytesDone: p.BytesDone, BytesTotal: p.BytesExpected,
						ObjectsDone: p.ObjectsDone, ObjectsTotal: p.ObjectsTotal, PartsDone: uint64(p.PartsDone), PartsTotal: uint64(p.PartsTotal),
						Rate: p.Rate, ETA: time.Duration(p.ETASeconds) * time.Second})
				}
			case api.TransactionIface + ".Finished":
				bar.Done()
				ok, msg := sig.Body[0].(bool), sig.Body[1].(string)
				if !ok {
					return "", errors.New(msg)
				}
				var outcome string
				if v, err := conn.Object(api.BusName, path).GetProperty(api.TransactionIface + ".Outcome"); err == nil {
					outcome, _ = v.Value().(string)
				}
				return outcome, nil
			}
		}
	}
}

func hostUpgrade(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "upgrade", "[--check | --preview | --download-only | --stage] [--allow-downgrade] [--reboot]")
	t := addTxnFlags(f, true)
	allowDowngrade := f.Bool("allow-downgrade", false, "accept a commit older than the current one")
	check := f.Bool("check", false, "only check for an update (exit 77 if none)")
	preview := f.Bool("preview", false, "check and show the package changes")
	download := f.Bool("download-only", false, "download the update, do not deploy it")
	stage := f.Bool("stage", false, "stage the update: it becomes the default when the system shuts down")
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("upgrade takes no arguments")
	}
	outcome, err := runTransaction(ctx, e, t, "Upgrade", t.options(map[string]any{
		api.OptCheckOnly: *check, api.OptPreview: *preview, api.OptDownloadOnly: *download, api.OptStage: *stage,
		api.OptAllowDowngrade: *allowDowngrade}))
	if err != nil {
		return err
	}
	if outcome == api.OutcomeNoUpdate {
		e.printf("No update available.\n")
		if *check || *preview {
			return exitError{code: ExitNoUpdate}
		}
	}
	return nil
}

func hostRollback(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "rollback", "[--reboot]")
	t := addTxnFlags(f, true)
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("rollback takes no arguments")
	}
	_, err := runTransaction(ctx, e, t, "Rollback", t.options(nil))
	return err
}

func hostRebase(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "rebase", "REMOTE:REF|ostree-unverified-image:IMAGE|ostree-unverified-registry:HOST/NAME:TAG|ostree-remote-image:REMOTE:IMAGE [--allow-downgrade] [--insecure] [--reboot]")
	t := addTxnFlags(f, true)
	allowDowngrade := f.Bool("allow-downgrade", false, "accept a commit older than the current one")
	insecure := f.Bool("insecure", false, "image registry over plain HTTP without TLS verification (loopback registries only)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want REMOTE:REF or an image reference")
	}
	opts := map[string]any{api.OptAllowDowngrade: *allowDowngrade}
	if *insecure {
		opts[api.OptInsecure] = true
	}
	_, err = runTransaction(ctx, e, t, "Rebase", pos[0], t.options(opts))
	return err
}

func hostDeploy(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "deploy", "VERSION|CHECKSUM [--reboot]")
	t := addTxnFlags(f, true)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want VERSION or CHECKSUM")
	}
	_, err = runTransaction(ctx, e, t, "Deploy", pos[0], t.options(nil))
	return err
}

func hostKargs(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "kargs", "[--append K=V]... [--delete K[=V]]... [--replace K=V|K=OLD=NEW]... [--reboot]")
	t := addTxnFlags(f, true)
	var app, del, rep stringList
	f.Var(&app, "append", "add a kernel argument (repeatable)")
	f.Var(&del, "delete", "remove a kernel argument (repeatable)")
	f.Var(&rep, "replace", "KEY=VALUE replaces the value of KEY (which must have exactly one); KEY=OLD=NEW replaces the value OLD (repeatable)")
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if len(app)+len(del)+len(rep) == 0 {
		// Without changes, print the default deployment's arguments.
		conn, err := t.connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		var doc string
		if err := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+".GetStatus", 0).Store(&doc); err != nil {
			return dbusError(err)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(doc), &st); err != nil {
			return err
		}
		for _, d := range st.Deployments {
			if d.Default {
				e.printf("%s\n", strings.Join(d.Kargs, " "))
			}
		}
		return nil
	}
	_, err := runTransaction(ctx, e, t, "KernelArgs", t.options(map[string]any{
		api.OptKargsAppend: []string(app), api.OptKargsDelete: []string(del), api.OptKargsReplace: []string(rep)}))
	return err
}

func hostCleanup(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "cleanup", "[--rollback] [--pending] [--cache] [--refs]")
	t := addTxnFlags(f, false)
	rb := f.Bool("rollback", false, "remove the rollback deployment")
	pending := f.Bool("pending", false, "remove the pending deployment")
	cache := f.Bool("cache", false, "remove cached update metadata and partial downloads")
	refs := f.Bool("refs", false, "remove remote refs no deployment follows (and what only they kept)")
	rpmCache := f.Bool("rpm-cache", false, "empty the package cache of layering (/var/cache/os-update)")
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	_, err := runTransaction(ctx, e, t, "Cleanup", t.options(map[string]any{
		api.OptCleanupRollback: *rb, api.OptCleanupPending: *pending, api.OptCleanupCache: *cache, api.OptCleanupRefs: *refs, api.OptCleanupRPMCache: *rpmCache}))
	return err
}

func hostPkgChange(ctx context.Context, e *env, args []string, install bool) error {
	name := "uninstall"
	if install {
		name = "install"
	}
	f := newFlags(e, name, "PKG...|./FILE.rpm... [--dry-run] [--reboot]")
	t := addTxnFlags(f, true)
	dry := f.Bool("dry-run", false, "solve and show what would change, change nothing")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("name at least one package")
	}
	var add, remove []string
	if install {
		if add, err = absRPMs(pos); err != nil {
			return err
		}
	} else {
		remove = pos
	}
	if add == nil {
		add = []string{}
	}
	if remove == nil {
		remove = []string{}
	}
	var extra map[string]any
	if *dry {
		extra = map[string]any{api.OptDryRun: true}
	}
	_, err = runTransaction(ctx, e, t, "PkgChange", add, remove, t.options(extra))
	return err
}

// absRPMs makes local package files absolute (the daemon reads them); other
// arguments are package names.
func absRPMs(args []string) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.HasSuffix(a, ".rpm") {
			p, err := filepath.Abs(a)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("package file: %w", err)
			}
			out[i] = p
		}
	}
	return out, nil
}

func hostOverride(ctx context.Context, e *env, args []string, name, usage string, opt func(pos []string, all bool) (map[string]any, error)) error {
	f := newFlags(e, "override "+name, usage)
	t := addTxnFlags(f, true)
	var all *bool
	if name == "reset" {
		all = f.Bool("all", false, "drop every override")
	}
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	extra, err := opt(pos, all != nil && *all)
	if err != nil {
		return err
	}
	_, err = runTransaction(ctx, e, t, "PkgChange", []string{}, []string{}, t.options(extra))
	return err
}

func hostOverrideRemove(ctx context.Context, e *env, args []string) error {
	return hostOverride(ctx, e, args, "remove", "PKG... [--reboot]", func(pos []string, _ bool) (map[string]any, error) {
		if len(pos) == 0 {
			return nil, usagef("name at least one base package")
		}
		return map[string]any{api.OptOverrideRemove: pos}, nil
	})
}

func hostOverrideReplace(ctx context.Context, e *env, args []string) error {
	return hostOverride(ctx, e, args, "replace", "./PKG.rpm...|NAME-VERSION-RELEASE.ARCH... [--reboot]", func(pos []string, _ bool) (map[string]any, error) {
		if len(pos) == 0 {
			return nil, usagef("give at least one package")
		}
		files, err := absRPMs(pos)
		if err != nil {
			return nil, err
		}
		return map[string]any{api.OptOverrideReplace: files}, nil
	})
}

func hostOverrideReset(ctx context.Context, e *env, args []string) error {
	return hostOverride(ctx, e, args, "reset", "PKG...|--all [--reboot]", func(pos []string, all bool) (map[string]any, error) {
		if all == (len(pos) > 0) {
			return nil, usagef("name packages or give --all")
		}
		if all {
			return map[string]any{api.OptOverrideResetAll: true}, nil
		}
		return map[string]any{api.OptOverrideReset: pos}, nil
	})
}

func hostInstall(ctx context.Context, e *env, args []string) error {
	return hostPkgChange(ctx, e, args, true)
}

func hostUninstall(ctx context.Context, e *env, args []string) error {
	return hostPkgChange(ctx, e, args, false)
}

func hostCancel(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "cancel", "")
	connect := busFlag(f)
	if _, err := f.parse(args); err != nil {
		return err
	}
	conn, err := connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	v, err := sysrootObject(conn).GetProperty(api.SysrootIface + ".ActiveTransaction")
	if err != nil {
		return dbusError(err)
	}
	path, _ := v.Value().(dbus.ObjectPath)
	if path == "" || path == "/" {
		e.printf("No transaction is running.\n")
		return nil
	}
	if err := conn.Object(api.BusName, path).CallWithContext(ctx, api.TransactionIface+".Cancel", 0).Err; err != nil {
		return dbusError(err)
	}
	e.printf("Cancelled %s\n", path)
	return nil
}

func hostDbDiff(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "db diff", "[FROM [TO]] [--json]")
	connect := busFlag(f)
	asJSON := f.Bool("json", false, "print JSON (format: docs/daemon.md)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	var from, to string
	switch len(pos) {
	case 0:
	case 1:
		from = pos[0]
	case 2:
		from, to = pos[0], pos[1]
	default:
		return usagef("give at most FROM and TO (versions or checksums)")
	}
	conn, err := connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	var doc string
	if err := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+".DbDiff", 0, from, to).Store(&doc); err != nil {
		return dbusError(err)
	}
	if *asJSON {
		e.printf("%s\n", doc)
		return nil
	}
	var d api.PackageDiff
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return err
	}
	e.printf("ostree diff commit from: %s\nostree diff commit to:   %s\n", d.From, d.To)
	for _, c := range d.Upgraded {
		e.printf("Upgraded:   %s -> %s\n", c.From, c.To)
	}
	for _, c := range d.Downgraded {
		e.printf("Downgraded: %s -> %s\n", c.From, c.To)
	}
	for _, p := range d.Removed {
		e.printf("Removed:    %s\n", p)
	}
	for _, p := range d.Added {
		e.printf("Added:      %s\n", p)
	}
	return nil
}

func hostAutomatic(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "automatic", "")
	t := addTxnFlags(f, false)
	if pos, err := f.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("automatic takes no arguments")
	}
	conn, err := t.connect()
	if err != nil {
		return err
	}
	var enabled bool
	var path dbus.ObjectPath
	call := sysrootObject(conn).CallWithContext(ctx, api.SysrootIface+".AutomaticUpdateTrigger", 0, t.options(nil))
	err = call.Store(&enabled, &path)
	conn.Close()
	if err != nil {
		return dbusError(err)
	}
	if !enabled {
		e.printf("Automatic updates are disabled (policy none).\n")
		return nil
	}
	// Follow the transaction the daemon started.
	outcome, err := followTransaction(ctx, e, t, path)
	if err == nil && outcome == api.OutcomeNoUpdate {
		e.printf("No update available.\n")
	}
	return err
}
