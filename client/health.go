package client

import (
	"context"

	"github.com/godbus/dbus/v5"

	"github.com/osupdate/os-update/daemon/api"
)

// hostHealthCheck runs the boot health check through the daemon: what
// os-update-health-check.service runs after boot. Exit status 0 for a
// healthy boot, 1 for an unhealthy one (the daemon may have rolled back
// and started a reboot).
func hostHealthCheck(f *flagSet) runFunc {
	t := addTxnFlags(f, false)
	noReboot := f.Bool("no-reboot", false, "on a rollback, do not reboot (the previous deployment boots next time)")
	return func(ctx context.Context, e *env, pos []string) error {
		if len(pos) > 0 {
			return usagef("health-check takes no arguments")
		}
		// At boot another transaction (a timer's) may be running: queue.
		*t.wait = true
		opts := t.options(nil)
		if !*noReboot {
			opts[api.OptReboot] = dbus.MakeVariant(true)
		}
		_, err := runTransaction(ctx, e, t, "HealthCheck", opts)
		return err
	}
}

// printVerdict shows a deployment's last boot verdict in status.
func printVerdict(e *env, v *api.BootVerdict) {
	if v == nil {
		return
	}
	e.printf("  HealthCheck: %s (%s)\n", v.Verdict, fmtTime(v.CheckedAt))
	if v.Reason != "" {
		e.printf("       Reason: %s\n", v.Reason)
	}
	if v.ActionDetail != "" {
		e.printf("       Action: %s\n", v.ActionDetail)
	}
}
