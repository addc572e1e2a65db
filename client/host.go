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
func hostCommands() []command {
	cmds := []command{
		{use: "status", short: "show deployments and the daemon's state", run: hostStatus, long: `Show the daemon's state (idle or the running transaction), the automatic
update policy, an update found by the last check, and every deployment: the
booted one marked with ●, then pending, staged, rollback and pinned ones,
with version, commit, layered packages and (with --verbose) kernel arguments
and signatures. --json prints the status document (format: docs/daemon.md).`},
		{use: "upgrade", short: "update to the newest commit of the booted origin", run: hostUpgrade, long: `Pull the booted deployment's origin (a remote ref or a container image),
verifying its signatures, and deploy it as the new default; the current
deployment stays as the rollback. Layered packages are applied to the new
base in the same transaction.

--check only fetches the signed commit and exits 77 when there is no update;
--preview also lists the package changes; --download-only fetches the update
without deploying it; --stage deploys it so that it becomes the default only
when the system shuts down.`},
		{use: "rollback", short: "make the previous deployment the default", run: hostRollback, long: `Swap the default and the rollback deployments, so that the next boot
starts the previous one. Nothing is deleted.`},
		{use: "rebase REMOTE:REF|IMAGE-REFERENCE", short: "switch to another remote:ref or container image", run: hostRebase, long: `Deploy the newest commit of another ref, and follow it from now on.
The target is REMOTE:REF, or a container image reference:
ostree-unverified-registry:HOST/NAME:TAG, ostree-unverified-image:TRANSPORT:NAME
or ostree-remote-image:REMOTE:TRANSPORT:NAME (signature checked with the
remote's keys).`},
		{use: "deploy VERSION|CHECKSUM", short: "deploy a given version or checksum of the current origin", run: hostDeploy, long: `Deploy a given commit of the booted deployment's origin, named by its
version or by its checksum (or a prefix of at least 4 hex characters), as
the new default. The origin keeps following its ref.`},
		{use: "kargs", short: "show or change kernel arguments of the default deployment", run: hostKargs, long: `Without options, print the kernel arguments of the default deployment.
With --append, --delete or --replace (each repeatable), write a new
deployment of the same commit with the changed arguments.`},
		{use: "cleanup", short: "remove deployments and cached data", run: hostCleanup, long: `Remove what is named: the rollback or pending deployment, cached update
metadata and partial downloads (--cache), remote refs that no deployment
follows (--refs), or the layering package cache (--rpm-cache).`},
		{use: "cancel", short: "cancel the running transaction", run: hostCancel, long: `Cancel the daemon's running transaction (its initiator or root may).
A cancelled download keeps what it verified for the next try.`},
		{use: "automatic", short: "run the automatic update policy now (what the timer runs), or change it", run: hostAutomatic, long: `Run the daemon's automatic update policy now, as the os-update-automatic
timer does: with policy "check", look for an update and record it; with
"stage", download and stage it; with "apply", stage it and let the daemon
reboot into it inside the maintenance window (see docs/daemon.md). Prints
the result, "No update available." when there is nothing new, or that
automatic updates are disabled (policy "none").

With --policy or --window, change the policy or the maintenance window
instead (root or polkit action org.osupdate.OSUpdate1.automatic); the
daemon keeps them across restarts. --window "" allows any time.`},
		{use: "history", short: "list past transactions", run: hostHistory, long: `List past transactions, newest first: id, start time, kind, the uid that
started it, the result, the commits before and after, and the error of a
failed one.`},
		{use: "health-check", short: "run the boot health checks; roll back an unhealthy new deployment", run: hostHealthCheck, long: `Run the boot health checks through the daemon, as
os-update-health-check.service does after boot (see docs/health.md). Exit
status 0 for a healthy boot, 1 for an unhealthy one: then the daemon rolls
back a new deployment that failed and, unless --no-reboot, reboots into the
previous one. A running transaction (a timer's) is waited for.`},
		{use: "install PKG...|FILE.rpm...", short: "layer packages on the base commit", run: hostPkgChange(true), long: `Layer packages on the base commit: from the configured repositories by
name, or local .rpm files. One transaction builds a derived commit and
deploys it; later upgrades apply the request to their new base.`},
		{use: "uninstall PKG...", short: "remove layered packages", run: hostPkgChange(false), long: `Remove layered packages (installed by "install") and deploy the result.
Removing the last one deploys the plain base again.`},
		{use: "override", short: "change base packages", long: `Remove base packages, replace them with other versions, or drop such
overrides again. Each subcommand is one transaction that deploys a new
derived commit.`, sub: []command{
			{use: "remove PKG...", short: "remove base packages", run: hostOverrideRemove, long: `Remove base packages (of the deployment's base commit) from a new derived
deployment. The request is recorded in the origin and applied again to
every new base by upgrade, rebase and deploy.`},
			{use: "replace FILE.rpm...|NAME-VERSION-RELEASE.ARCH...", short: "replace base packages with local .rpm files or NEVRAs from the repositories", run: hostOverrideReplace, long: `Replace base packages with other versions: local .rpm files, or
NAME-VERSION-RELEASE.ARCH from the configured repositories. The request is
recorded and applied again to every new base.`},
			{use: "reset PKG...|--all", short: "drop overrides of packages (--all: every override)", run: hostOverrideReset, long: `Drop the overrides (remove or replace) of the packages named, or of every
package with --all, and deploy the base packages again.`},
		}},
		{use: "db", short: "compare the packages of two commits", long: `Inspect the package database of deployments.`, sub: []command{
			{use: "diff [FROM [TO]]", short: "show packages added, removed and changed between two commits", run: hostDbDiff, long: `Compare the package lists of two commits, from the older to the newer:
without arguments from the current deployment to the pending or staged one
(when nothing is pending: from the rollback deployment to the current one).
With only FROM, TO is the deployment that boots next. FROM and TO are
versions or checksums (prefixes) of a deployment, versions in a
deployment's history, or refs.`},
		}},
	}
	for i := range cmds {
		cmds[i].group = groupHost
	}
	return cmds
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

func hostStatus(f *flagSet) runFunc {
	bus := busFlag(f)
	asJSON := f.Bool("json", false, "print the status document as JSON (format: docs/daemon.md)")
	verbose := f.BoolP("verbose", "v", false, "more detail: kernel arguments, serials, signatures, installed packages")
	return func(ctx context.Context, e *env, args []string) error {
		conn, err := bus.connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		var doc string
		if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+".GetStatus").Store(&doc); err != nil {
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
}

func printStatus(e *env, st *api.Status, verbose bool) {
	state := "idle"
	if st.Transaction != "" {
		state = "busy (" + st.Transaction + ")"
	}
	e.printf("State: %s\n", state)
	for _, l := range automaticLines(st.AutomaticPolicy, st.Automatic, time.Local) {
		e.printf("%s\n", l)
	}
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
		if bt := d.BootTries; bt != nil {
			if bt.Left > 0 {
				e.printf("    BootTries: %d left (%s)\n", bt.Left, bt.Method)
			} else {
				e.printf("    BootTries: used up (%s): the boot loader boots the next deployment\n", bt.Method)
			}
		}
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

func hostHistory(f *flagSet) runFunc {
	bus := busFlag(f)
	asJSON := f.Bool("json", false, "print JSON (format: docs/daemon.md)")
	limit := f.UintP("limit", "n", 20, "at most N entries, newest first (0: all)")
	return func(ctx context.Context, e *env, args []string) error {
		conn, err := bus.connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		var doc string
		if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+".History", uint32(*limit)).Store(&doc); err != nil {
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
			if x.Note != "" {
				e.printf(" (%s)", x.Note)
			}
			e.printf("\n")
		}
		return nil
	}
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
	bus    *busOptions
	reboot *bool
	wait   *bool
	quiet  *bool
}

func addTxnFlags(f *flagSet, reboot bool) txnFlags {
	t := txnFlags{bus: busFlag(f)}
	if reboot {
		t.reboot = f.Bool("reboot", false, "reboot when the change is in place")
	}
	t.wait = f.Bool("wait", false, "queue behind a running transaction instead of failing")
	t.quiet = f.Bool("quiet", false, "no progress output (messages and the result are still printed)")
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
// the end, rendering progress. Interrupting the client (SIGINT, SIGTERM)
// cancels the transaction; the daemon finishes cleanly either way.
func runTransaction(ctx context.Context, e *env, t txnFlags, method string, args ...any) (string, error) {
	conn, err := t.bus.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// Subscribe before calling, so no signal of our transaction is missed.
	if err := conn.addMatch(ctx, dbus.WithMatchPathNamespace(api.TransactionPathPrefix)); err != nil {
		return "", fmt.Errorf("subscribe to transaction signals: %w", err)
	}
	if err := conn.addMatch(ctx, dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, api.BusName)); err != nil {
		return "", fmt.Errorf("subscribe to transaction signals: %w", err)
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	// The call is not tied to ctx: interrupted while it is on its way, the
	// client still waits for the reply (at most --timeout; a second signal
	// ends the client at once) to cancel the transaction the call started.
	reply := make(chan *dbus.Call, 1)
	go func() { reply <- conn.call(context.Background(), api.ObjectPath, api.SysrootIface+"."+method, args...) }()
	var call *dbus.Call
	select {
	case call = <-reply:
	case <-ctx.Done():
		fmt.Fprintln(e.stderr, "Cancelling...")
		if call = <-reply; call.Err == nil {
			var path dbus.ObjectPath
			if call.Store(&path) == nil {
				return "", cancelTransaction(e, conn, signals, path)
			}
		}
		return "", errInterrupted
	}
	var path dbus.ObjectPath
	if err := call.Store(&path); err != nil {
		return "", dbusError(err)
	}
	return follow(ctx, e, conn, signals, path, *t.quiet)
}

// cancelTransaction cancels the transaction at path and waits (at most
// the timeout) until the daemon reports its end: the error is the
// daemon's ("cancelled"), nil when the transaction had already succeeded.
func cancelTransaction(e *env, conn *busConn, signals chan *dbus.Signal, path dbus.ObjectPath) error {
	if err := conn.call(context.Background(), path, api.TransactionIface+".Cancel").Err; err != nil {
		return fmt.Errorf("interrupted; cancelling transaction %s failed: %w", path, dbusError(err))
	}
	deadline := time.After(conn.timeout)
	for {
		select {
		case sig, ok := <-signals:
			if !ok {
				return errors.New("interrupted; lost the connection to the bus while cancelling")
			}
			if sig.Path == path && sig.Name == api.TransactionIface+".Finished" {
				if ok, _ := sig.Body[0].(bool); ok {
					return nil // it was done before the cancel arrived
				}
				msg, _ := sig.Body[1].(string)
				return errors.New(msg) // "cancelled"
			}
		case <-deadline:
			return fmt.Errorf("interrupted; os-updated did not confirm the cancel of %s within %s", path, conn.timeout)
		}
	}
}

// followTransaction follows a transaction started elsewhere; it reads the
// transaction's properties first, since signals may already have passed.
func followTransaction(ctx context.Context, e *env, t txnFlags, path dbus.ObjectPath) (string, error) {
	conn, err := t.bus.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.addMatch(ctx, dbus.WithMatchObjectPath(path)); err != nil {
		return "", err
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	prop := func(name string) any {
		v, err := conn.prop(ctx, path, api.TransactionIface+"."+name)
		if err != nil {
			return nil
		}
		return v.Value()
	}
	if finished, _ := prop("Finished").(bool); finished {
		if ok, _ := prop("Success").(bool); ok {
			outcome, _ := prop("Outcome").(string)
			return outcome, nil
		}
		return "", fmt.Errorf("%v", prop("Error"))
	}
	return follow(ctx, e, conn, signals, path, *t.quiet)
}

// follow renders a transaction's signals until it finishes. Interrupted,
// it cancels the transaction and waits for the daemon to confirm.
func follow(ctx context.Context, e *env, conn *busConn, signals chan *dbus.Signal, path dbus.ObjectPath, quiet bool) (string, error) {
	bar := newRenderer(e.stdout, quiet)
	defer bar.Done()
	for {
		select {
		case <-ctx.Done():
			bar.Clear()
			fmt.Fprintln(e.stderr, "Cancelling...")
			return "", cancelTransaction(e, conn, signals, path)
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
				if v, err := conn.prop(ctx, path, api.TransactionIface+".Outcome"); err == nil {
					outcome, _ = v.Value().(string)
				}
				return outcome, nil
			}
		}
	}
}

func hostUpgrade(f *flagSet) runFunc {
	t := addTxnFlags(f, true)
	allowDowngrade := f.Bool("allow-downgrade", false, "accept a commit older than the current one")
	check := f.Bool("check", false, "only check for an update (exit 77 if none)")
	preview := f.Bool("preview", false, "check and show the package changes")
	download := f.Bool("download-only", false, "download the update, do not deploy it")
	stage := f.Bool("stage", false, "stage the update: it becomes the default when the system shuts down")
	return func(ctx context.Context, e *env, args []string) error {
		if pos := args; len(pos) > 0 {
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
}

func hostRollback(f *flagSet) runFunc {
	t := addTxnFlags(f, true)
	return func(ctx context.Context, e *env, args []string) error {
		if pos := args; len(pos) > 0 {
			return usagef("rollback takes no arguments")
		}
		_, err := runTransaction(ctx, e, t, "Rollback", t.options(nil))
		return err
	}
}

func hostRebase(f *flagSet) runFunc {
	t := addTxnFlags(f, true)
	allowDowngrade := f.Bool("allow-downgrade", false, "accept a commit older than the current one")
	insecure := f.Bool("insecure", false, "image registry over plain HTTP without TLS verification (loopback registries only)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
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
}

func hostDeploy(f *flagSet) runFunc {
	t := addTxnFlags(f, true)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("want VERSION or CHECKSUM")
		}
		_, err = runTransaction(ctx, e, t, "Deploy", pos[0], t.options(nil))
		return err
	}
}

func hostKargs(f *flagSet) runFunc {
	t := addTxnFlags(f, true)
	var app, del, rep stringList
	f.Var(&app, "append", "add a kernel argument (repeatable)")
	f.Var(&del, "delete", "remove a kernel argument (repeatable)")
	f.Var(&rep, "replace", "KEY=VALUE replaces the value of KEY (which must have exactly one); KEY=OLD=NEW replaces the value OLD (repeatable)")
	return func(ctx context.Context, e *env, args []string) error {
		if pos := args; len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		if len(app)+len(del)+len(rep) == 0 {
			// Without changes, print the default deployment's arguments.
			conn, err := t.bus.connect(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			var doc string
			if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+".GetStatus").Store(&doc); err != nil {
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
}

func hostCleanup(f *flagSet) runFunc {
	t := addTxnFlags(f, false)
	rb := f.Bool("rollback", false, "remove the rollback deployment")
	pending := f.Bool("pending", false, "remove the pending deployment")
	cache := f.Bool("cache", false, "remove cached update metadata and partial downloads")
	refs := f.Bool("refs", false, "remove remote refs no deployment follows (and what only they kept)")
	rpmCache := f.Bool("rpm-cache", false, "empty the package cache of layering (/var/cache/os-update)")
	return func(ctx context.Context, e *env, args []string) error {
		if pos := args; len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		_, err := runTransaction(ctx, e, t, "Cleanup", t.options(map[string]any{
			api.OptCleanupRollback: *rb, api.OptCleanupPending: *pending, api.OptCleanupCache: *cache, api.OptCleanupRefs: *refs, api.OptCleanupRPMCache: *rpmCache}))
		return err
	}
}

func hostPkgChange(install bool) func(f *flagSet) runFunc {
	return func(f *flagSet) runFunc {
		t := addTxnFlags(f, true)
		dry := f.Bool("dry-run", false, "solve and show what would change, change nothing")
		return func(ctx context.Context, e *env, pos []string) error {
			if len(pos) == 0 {
				return usagef("name at least one package")
			}
			add, remove := []string{}, []string{}
			if install {
				var err error
				if add, err = absRPMs(pos); err != nil {
					return err
				}
			} else {
				remove = pos
			}
			var extra map[string]any
			if *dry {
				extra = map[string]any{api.OptDryRun: true}
			}
			_, err := runTransaction(ctx, e, t, "PkgChange", add, remove, t.options(extra))
			return err
		}
	}
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

// hostOverride is an override subcommand: opt turns its arguments (and
// --all, for reset) into the PkgChange options.
func hostOverride(reset bool, opt func(pos []string, all bool) (map[string]any, error)) func(f *flagSet) runFunc {
	return func(f *flagSet) runFunc {
		t := addTxnFlags(f, true)
		all := new(bool)
		if reset {
			all = f.Bool("all", false, "drop every override")
		}
		return func(ctx context.Context, e *env, pos []string) error {
			extra, err := opt(pos, *all)
			if err != nil {
				return err
			}
			_, err = runTransaction(ctx, e, t, "PkgChange", []string{}, []string{}, t.options(extra))
			return err
		}
	}
}

var hostOverrideRemove = hostOverride(false, func(pos []string, _ bool) (map[string]any, error) {
	if len(pos) == 0 {
		return nil, usagef("name at least one base package")
	}
	return map[string]any{api.OptOverrideRemove: pos}, nil
})

var hostOverrideReplace = hostOverride(false, func(pos []string, _ bool) (map[string]any, error) {
	if len(pos) == 0 {
		return nil, usagef("give at least one package")
	}
	files, err := absRPMs(pos)
	if err != nil {
		return nil, err
	}
	return map[string]any{api.OptOverrideReplace: files}, nil
})

var hostOverrideReset = hostOverride(true, func(pos []string, all bool) (map[string]any, error) {
	if all == (len(pos) > 0) {
		return nil, usagef("name packages or give --all")
	}
	if all {
		return map[string]any{api.OptOverrideResetAll: true}, nil
	}
	return map[string]any{api.OptOverrideReset: pos}, nil
})

func hostCancel(f *flagSet) runFunc {
	bus := busFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		conn, err := bus.connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		v, err := conn.prop(ctx, api.ObjectPath, api.SysrootIface+".ActiveTransaction")
		if err != nil {
			return dbusError(err)
		}
		path, _ := v.Value().(dbus.ObjectPath)
		if path == "" || path == "/" {
			e.printf("No transaction is running.\n")
			return nil
		}
		if err := conn.call(ctx, path, api.TransactionIface+".Cancel").Err; err != nil {
			return dbusError(err)
		}
		e.printf("Cancelled %s\n", path)
		return nil
	}
}

func hostDbDiff(f *flagSet) runFunc {
	bus := busFlag(f)
	asJSON := f.Bool("json", false, "print JSON (format: docs/daemon.md)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
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
		conn, err := bus.connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		var doc string
		if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+".DbDiff", from, to).Store(&doc); err != nil {
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
}

func hostAutomatic(f *flagSet) runFunc {
	t := addTxnFlags(f, false)
	f.String(api.SettingPolicy, "", "set the automatic update `POLICY` instead of running it: none, check, stage or apply")
	f.String(api.SettingWindow, "", "set the maintenance `WINDOW` of the apply policy, e.g. \"Mon..Fri 02:00-04:00 Europe/Berlin\" (\"\": any time)")
	return func(ctx context.Context, e *env, args []string) error {
		if pos := args; len(pos) > 0 {
			return usagef("automatic takes no arguments")
		}
		settings := map[string]string{}
		for _, name := range []string{api.SettingPolicy, api.SettingWindow} {
			if f.Changed(name) {
				settings[name], _ = f.GetString(name)
			}
		}
		conn, err := t.bus.connect(ctx)
		if err != nil {
			return err
		}
		if len(settings) > 0 {
			defer conn.Close()
			return setAutomatic(ctx, e, conn, settings)
		}
		var enabled bool
		var path dbus.ObjectPath
		call := conn.call(ctx, api.ObjectPath, api.SysrootIface+".AutomaticUpdateTrigger", t.options(nil))
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
}
