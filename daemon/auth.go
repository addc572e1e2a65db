package daemon

import (
	"encoding/json"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
)

const polkitName = "org.freedesktop.PolicyKit1"

// actionID names the polkit action guarding an operation kind.
func actionID(kind string) string { return "org.osupdate.OSUpdate1." + kind }

// authorizedKinds are the operations GetAuthorizations reports on: every
// polkit action the daemon checks.
var authorizedKinds = []string{KindUpgrade, KindRollback, KindRebase, KindDeploy, KindPkgChange, KindKargs, KindCleanup, KindHealthCheck, KindAutomatic, "cancel"}

// callerUID asks the bus for the uid of a connection (the kernel's peer
// credentials as recorded by the bus daemon, not a claim of the caller).
func (d *Daemon) callerUID(sender dbus.Sender) (uint32, error) {
	var uid uint32
	err := d.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	if err != nil {
		return 0, fmt.Errorf("peer credentials of %s: %w", sender, err)
	}
	return uid, nil
}

// decide is the one authorization decision: uid 0 may do anything, others
// what polkit (when it runs on this bus) allows for the action. With
// interactive, polkit may ask the caller's agent to authenticate; without,
// an action that needs authentication is reported as api.AuthChallenge.
func (d *Daemon) decide(sender dbus.Sender, kind string, interactive bool) (uint32, string, error) {
	uid, err := d.callerUID(sender)
	if err != nil {
		return 0, api.AuthNo, err
	}
	if uid == 0 {
		return uid, api.AuthYes, nil
	}
	var hasPolkit bool
	if err := d.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, polkitName).Store(&hasPolkit); err != nil || !hasPolkit {
		return uid, api.AuthNo, nil
	}
	subject := struct {
		Kind    string
		Details map[string]dbus.Variant
	}{"system-bus-name", map[string]dbus.Variant{"name": dbus.MakeVariant(string(sender))}}
	var res struct {
		Authorized, Challenge bool
		Details               map[string]string
	}
	var flags uint32
	if interactive {
		flags = 1 // AllowUserInteraction
	}
	call := d.conn.Object(polkitName, "/org/freedesktop/PolicyKit1/Authority").Call(
		"org.freedesktop.PolicyKit1.Authority.CheckAuthorization", 0,
		subject, actionID(kind), map[string]string{}, flags, "")
	switch {
	case call.Err != nil || call.Store(&res) != nil:
		return uid, api.AuthNo, nil
	case res.Authorized:
		return uid, api.AuthYes, nil
	case res.Challenge:
		return uid, api.AuthChallenge, nil
	}
	return uid, api.AuthNo, nil
}

// denied is the reason a caller is refused an operation.
func denied(uid uint32, kind string) string {
	return fmt.Sprintf("uid %d may not %s: only root or a polkit-authorized user may change the system", uid, kind)
}

// authorize lets uid 0 do anything, and others what polkit (when it runs
// on this bus) allows for the action; everyone else is refused.
func (d *Daemon) authorize(sender dbus.Sender, kind string) (uint32, *dbus.Error) {
	uid, verdict, err := d.decide(sender, kind, true)
	if err != nil {
		return 0, dbus.NewError(api.ErrAccessDenied, []any{err.Error()})
	}
	if verdict != api.AuthYes {
		return uid, dbus.NewError(api.ErrAccessDenied, []any{denied(uid, kind)})
	}
	return uid, nil
}

// GetAuthorizations tells the caller what the daemon would decide now, for
// each operation, without asking it to authenticate: the JSON document
// api.Authorizations. Clients (the Cockpit page) enable their controls
// from it instead of guessing.
func (d *Daemon) GetAuthorizations(sender dbus.Sender) (string, *dbus.Error) {
	d.touch()
	a := api.Authorizations{Actions: map[string]string{}}
	for _, kind := range authorizedKinds {
		uid, verdict, err := d.decide(sender, kind, false)
		if err != nil {
			return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
		}
		a.CallerUID, a.Actions[kind] = uid, verdict
		switch {
		case a.Reason != "":
		case verdict == api.AuthNo:
			a.Reason = fmt.Sprintf("uid %d is not authorized to change the system: only root or a polkit-authorized user may", uid)
		case verdict == api.AuthChallenge:
			a.Reason = fmt.Sprintf("uid %d may change the system only after authenticating as an administrator (polkit)", uid)
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		return "", dbus.NewError(api.ErrFailed, []any{err.Error()})
	}
	return string(b), nil
}
