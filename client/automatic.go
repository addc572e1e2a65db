package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
)

// setAutomatic changes the daemon's automatic update settings
// (api.SettingPolicy, api.SettingWindow) and prints what is in effect.
func setAutomatic(ctx context.Context, e *env, conn *busConn, settings map[string]string) error {
	v := map[string]dbus.Variant{}
	for k, s := range settings {
		v[k] = dbus.MakeVariant(s)
	}
	if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+"."+api.MethodSetAutomaticUpdates, v).Err; err != nil {
		return dbusError(err)
	}
	var doc string
	if err := conn.call(ctx, api.ObjectPath, api.SysrootIface+".GetStatus").Store(&doc); err != nil {
		return dbusError(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return fmt.Errorf("status document: %w", err)
	}
	for _, l := range automaticLines(st.AutomaticPolicy, st.Automatic, time.Local) {
		e.printf("%s\n", l)
	}
	return nil
}

// automaticLines describes the automatic update settings and a planned
// reboot for `os-update status` (times in loc).
func automaticLines(policy string, a *api.AutomaticStatus, loc *time.Location) []string {
	if a == nil {
		return []string{"AutomaticUpdates: " + policy}
	}
	line := "AutomaticUpdates: " + a.Policy
	if a.Policy == api.PolicyApply || a.Window != "" {
		switch {
		case a.Window == "":
			line += "; reboots at any time"
		case a.WindowOpen:
			line += "; window " + a.Window + " (open)"
		default:
			line += "; window " + a.Window + " (opens " + fmtAt(a.NextWindow, loc) + ")"
		}
		if a.RandomDelay > 0 {
			line += fmt.Sprintf(", random delay up to %s", time.Duration(a.RandomDelay)*time.Second)
		}
	}
	lines := []string{line}
	if a.FleetLockURL != "" {
		fl := fmt.Sprintf("FleetLock: %s group %s", a.FleetLockURL, a.FleetLockGroup)
		if a.FleetLockHeld {
			fl += " (reboot slot held until a healthy boot)"
		}
		lines = append(lines, fl)
	}
	if r := a.Reboot; r != nil && r.At != 0 {
		why := map[string]string{
			api.RebootReasonWindow: "when the window opens, plus the random delay",
			api.RebootReasonDelay:  "after the random delay",
			api.RebootReasonLock:   "next try for the FleetLock reboot slot",
			api.RebootReasonNow:    "now",
		}[r.Reason]
		if why == "" {
			why = r.Reason
		}
		lines = append(lines, fmt.Sprintf("RebootScheduled: %s into %s (%s)", fmtAt(r.At, loc), r.Checksum, why))
	}
	return lines
}

func fmtAt(unix int64, loc *time.Location) string {
	return time.Unix(unix, 0).In(loc).Format("2006-01-02 15:04 MST")
}
