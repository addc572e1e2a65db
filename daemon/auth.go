package daemon

import (
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
)

const polkitName = "org.freedesktop.PolicyKit1"

// actionID names the polkit action guarding an operation kind.
func actionID(kind string) string { return "org.osupdate.OSUpdate1." + kind }

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

// authorize lets uid 0 do anything, and others what polkit (when it runs
// on this bus) allows for the action; everyone else is refused.
func (d *Daemon) authorize(sender dbus.Sender, kind string) (uint32, *dbus.Error) {
	uid, err := d.callerUID(sender)
	if err != nil {
		return 0, dbus.NewError(api.ErrAccessDenied, []any{err.Error()})
	}
	if uid == 0 {
		return uid, nil
	}
	var hasPolkit bool
	if err := d.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, polkitName).Store(&hasPolkit); err == nil && hasPolkit {
		subject := struct {
			Kind    string
			Details map[string]dbus.Variant
		}{"system-bus-name", map[string]dbus.Variant{"name": dbus.MakeVariant(string(sender))}}
		var res struct {
			Authorized, Challenge bool
			Details               map[string]string
		}
		const allowUserInteraction = 1
		call := d.conn.Object(polkitName, "/org/freedesktop/PolicyKit1/Authority").Call(
			"org.freedesktop.PolicyKit1.Authority.CheckAuthorization", 0,
			subject, actionID(kind), map[string]string{}, uint32(allowUserInteraction), "")
		if call.Err == nil && call.Store(&res) == nil && res.Authorized {
			return uid, nil
		}
	}
	return uid, dbus.NewError(api.ErrAccessDenied, []any{
		fmt.Sprintf("uid %d may not %s: only root or a polkit-authorized user may change the system", uid, kind)})
}
