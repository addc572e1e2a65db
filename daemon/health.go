package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/health"
	"github.com/osupdate/os-update/internal/deployinfo"
	"github.com/osupdate/os-update/sysroot"
)

// HealthCheck is the D-Bus method: run the boot health checks of the
// booted deployment and act on the verdict (os-update health-check, run
// after boot by os-update-health-check.service). With the option reboot,
// a rollback reboots the machine.
func (d *Daemon) HealthCheck(sender dbus.Sender, msg dbus.Message, o map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	if err := checkSignature(msg, "a{sv}"); err != nil {
		return "/", err
	}
	opts := options(o)
	if err := opts.check(); err != nil {
		return "/", err
	}
	return d.submit(sender, Request{Kind: KindHealthCheck}, opts)
}

// recordVerdict keeps a verdict (state, verdict file), announces it on
// the bus and runs the hook. Failures are logged: the verdict is also in
// the transaction's history entry.
func (d *Daemon) recordVerdict(ctx context.Context, v api.BootVerdict) {
	if err := d.store.SetVerdict(v); err != nil {
		d.logf("%v", err)
	}
	if err := writeVerdictFile(d.verdictFile(), v); err != nil {
		d.logf("%v", err)
	}
	d.conn.Emit(api.ObjectPath, api.SysrootIface+"."+api.SignalBootVerdict, v.Deployment, v.Verdict, v.Reason, v.Action)
	d.verdictRecorded(ctx, v)
	if d.cfg.OnBootVerdict != nil {
		d.cfg.OnBootVerdict(ctx, v)
	}
}

func (d *Daemon) verdictFile() string {
	if d.cfg.VerdictFile != "" {
		return d.cfg.VerdictFile
	}
	return filepath.Join(filepath.Dir(d.cfg.StatePath), "boot-verdict.json")
}

// writeVerdictFile replaces the file atomically: a reader sees the old
// verdict or the new one, never a part.
func writeVerdictFile(path string, v api.BootVerdict) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".boot-verdict-*")
	if err != nil {
		return fmt.Errorf("write verdict file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write verdict file %s: %w", path, err)
	}
	return nil
}

// deploymentKey names a deployment in verdicts: OS/CHECKSUM.SERIAL.
func deploymentKey(osname, checksum string, serial int) string {
	return deployinfo.ID(osname, checksum, serial)
}

// attachVerdicts adds each deployment's last verdict to a status.
func (d *Daemon) attachVerdicts(st *api.Status) error {
	vs, err := d.store.Verdicts()
	if err != nil {
		return err
	}
	for i := range st.Deployments {
		dep := &st.Deployments[i]
		if v, ok := vs[deploymentKey(dep.OSName, dep.Checksum, dep.Serial)]; ok {
			dep.BootVerdict = &v
		}
	}
	return nil
}

// pruneVerdicts forgets verdicts of deployments that are gone, so that a
// deployment made later under the same name starts without a past (it
// must not count as good, nor as known bad).
func (d *Daemon) pruneVerdicts() {
	st, err := d.backend.Status(context.Background())
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, dep := range st.Deployments {
		keep[deploymentKey(dep.OSName, dep.Checksum, dep.Serial)] = true
	}
	if err := d.store.PruneVerdicts(keep); err != nil {
		d.logf("prune boot verdicts: %v", err)
	}
}

// decision is what to do with an unhealthy boot.
type decision struct {
	rollback bool
	detail   string // why not, when not
}

// decideUnhealthy applies the rollback rule to an unhealthy boot of
// booted (its previous record prior, if any), whose rollback deployment
// is target (its record targetPrior):
//
//   - a deployment that passed a check on an earlier boot is not rolled
//     back: a long-running host whose check fails later gets a report,
//     not a silent rollback;
//   - without a previous deployment there is nothing to go back to;
//   - a previous deployment that failed its own check and never passed
//     one is not gone back to: two bad deployments must not bounce the
//     machine between them forever;
//   - otherwise (a new deployment, on the boots until it passes once)
//     the previous deployment becomes the default.
func decideUnhealthy(booted string, prior *api.BootVerdict, target string, targetPrior *api.BootVerdict) decision {
	switch {
	case prior != nil && prior.Good:
		return decision{detail: fmt.Sprintf("not rolled back: %s passed its health check on an earlier boot (only a deployment that never passed is rolled back)", booted)}
	case target == "":
		return decision{detail: fmt.Sprintf("not rolled back: there is no previous deployment of %s to go back to", strings.Split(booted, "/")[0])}
	case targetPrior != nil && targetPrior.Verdict == api.VerdictUnhealthy && !targetPrior.Good:
		return decision{detail: fmt.Sprintf("not rolled back: the previous deployment %s failed its health check too (staying on %s rather than rebooting between two failing deployments)", target, booted)}
	}
	return decision{rollback: true}
}

// healthCheck runs the checks on the booted deployment and acts on the
// verdict: healthy marks the boot good; unhealthy rolls back as
// decideUnhealthy says. It returns an error for an unhealthy boot, with
// the reason and what was done, so that the history says why.
func (b *HostBackend) healthCheck(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter) (Result, error) {
	booted := st.Booted
	if booted == nil {
		return Result{}, fmt.Errorf("health check: not booted into a deployment of %s (no deployment is /): nothing to check", b.cfg.Sysroot)
	}
	key := deploymentKey(booted.OS, booted.Commit.String(), booted.Serial)
	res := Result{From: booted.Commit.String()}
	rep.Stage("health-check")
	cfg := health.ForRoot("/")
	if b.cfg.Health != nil {
		cfg = *b.cfg.Health
	}
	v := api.BootVerdict{Deployment: key, Checksum: booted.Commit.String(), Version: booted.Version,
		CheckedAt: time.Now().Unix(), BootID: bootID()}
	report, err := health.Run(ctx, cfg)
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err != nil:
		v.Verdict, v.Reason = api.VerdictUnhealthy, fmt.Sprintf("the health checks could not run: %v", err)
	case report.Healthy:
		v.Verdict = api.VerdictHealthy
	default:
		v.Verdict, v.Reason = api.VerdictUnhealthy, report.Reason
	}
	if report != nil {
		for _, c := range report.Checks {
			line := fmt.Sprintf("ok   %s %s (%s)", c.Kind, c.Name, c.Duration)
			if !c.OK {
				line = fmt.Sprintf("FAIL %s %s %s", c.Kind, c.Name, c.Problem)
				if c.Output != "" {
					line += ": " + strings.ReplaceAll(c.Output, "\n", " | ")
				}
			}
			rep.Message(line)
		}
		for _, sk := range report.Skipped {
			rep.Message("skipped " + sk)
		}
	}
	prior, hasPrior := req.Verdicts[key]
	if v.Verdict == api.VerdictHealthy {
		v.Good, v.Action = true, api.ActionMarkedGood
		res.Verdict = &v
		// The boot loader stops counting this deployment's boots (a no-op
		// for boot loaders that do not count).
		mg, err := s.MarkBootGood()
		if err != nil {
			v.ActionDetail = fmt.Sprintf("clearing the boot counter failed: %v", err)
			return res, fmt.Errorf("healthy, but marking the boot good failed: %w", err)
		}
		if mg.Changed {
			v.ActionDetail = "boot counter cleared (" + mg.State.Method + ")"
		}
		rep.Message(fmt.Sprintf("Healthy: %s %s is marked good", booted.Version, booted.Commit))
		if mg.FellBack && mg.State.Exhausted() {
			ab, err := b.abandonDefault(ctx, s, key, req, mg.State.Method, rep)
			res.Abandoned = ab
			if ab != nil {
				res.Note = fmt.Sprintf("%s %s %s; %s", ab.Version, ab.Deployment, ab.Reason, ab.ActionDetail)
			}
			if err != nil {
				return res, err
			}
		}
		return res, nil
	}
	v.Good = hasPrior && prior.Good
	var priorPtr, targetPrior *api.BootVerdict
	if hasPrior {
		priorPtr = &prior
	}
	target := ""
	if st.Rollback != nil {
		target = deploymentKey(st.Rollback.OS, st.Rollback.Commit.String(), st.Rollback.Serial)
		if tp, ok := req.Verdicts[target]; ok {
			targetPrior = &tp
		}
	}
	dec := decideUnhealthy(key, priorPtr, target, targetPrior)
	res.Verdict = &v
	if !dec.rollback {
		v.Action, v.ActionDetail = api.ActionNone, dec.detail
		return res, fmt.Errorf("unhealthy: %s; %s", v.Reason, dec.detail)
	}
	rep.Stage("deploy")
	to, err := s.Rollback(ctx)
	if err != nil {
		v.Action, v.ActionDetail = api.ActionNone, fmt.Sprintf("the rollback failed: %v", err)
		return res, fmt.Errorf("unhealthy: %s; %s", v.Reason, v.ActionDetail)
	}
	v.Action, v.RolledBackTo = api.ActionRolledBack, deploymentKey(to.OS, to.Commit.String(), to.Serial)
	v.ActionDetail = fmt.Sprintf("rolled back to %s %s", to.Version, v.RolledBackTo)
	if req.Reboot {
		v.ActionDetail += ", rebooting"
	}
	res.To, res.Deployed = to.Commit.String(), true
	rep.Message(fmt.Sprintf("Unhealthy: %s; %s", v.Reason, v.ActionDetail))
	return res, fmt.Errorf("unhealthy: %s; %s", v.Reason, v.ActionDetail)
}

// bootID is the kernel's id of this boot ("" if unknown).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// abandonDefault handles a boot loader that fell back: the default used
// up its tries without a healthy boot, and the healthy booted deployment
// (key) is made the default again, so that the failed one is not tried
// on every boot. The failed default gets an unhealthy verdict saying so.
func (b *HostBackend) abandonDefault(ctx context.Context, s *sysroot.Sysroot, key string, req Request, method string, rep Reporter) (*api.BootVerdict, error) {
	if len(s.Deployments) == 0 {
		return nil, nil
	}
	failed := s.Deployments[0]
	fkey := deploymentKey(failed.OS, failed.Commit.String(), failed.Serial)
	if fkey == key {
		return nil, nil
	}
	ab := &api.BootVerdict{Deployment: fkey, Checksum: failed.Commit.String(), Version: failed.Version,
		Verdict: api.VerdictUnhealthy, CheckedAt: time.Now().Unix(), BootID: bootID(),
		Reason: fmt.Sprintf("used up its boot tries (%s) without a healthy boot: the boot loader fell back to %s", method, key),
		Good:   req.Verdicts[fkey].Good}
	booted, err := s.MakeDefault(ctx, key)
	if err != nil {
		ab.Action, ab.ActionDetail = api.ActionNone, fmt.Sprintf("making %s the default failed: %v", key, err)
		return ab, fmt.Errorf("the boot loader fell back from %s, but %s", fkey, ab.ActionDetail)
	}
	ab.Action, ab.RolledBackTo = api.ActionRolledBack, key
	ab.ActionDetail = fmt.Sprintf("rolled back to %s %s", booted.Version, key)
	rep.Message(fmt.Sprintf("%s %s %s; %s", failed.Version, fkey, ab.Reason, ab.ActionDetail))
	return ab, nil
}
