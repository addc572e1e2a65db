package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
)

// defaultCallTimeout bounds every D-Bus call of the host commands. The
// daemon answers its methods at once (a transaction runs after the call
// returns and reports through signals), so a minute only passes when the
// daemon or the bus is stuck.
const defaultCallTimeout = time.Minute

// errInterrupted ends a command stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// busOptions are the options of the commands that talk to os-updated.
type busOptions struct {
	addr    *string
	timeout *time.Duration
}

// busFlag adds --bus-address (default $OS_UPDATE_BUS_ADDRESS, else the
// system bus) and --timeout.
func busFlag(f *flagSet) *busOptions {
	return &busOptions{
		addr:    f.String("bus-address", os.Getenv("OS_UPDATE_BUS_ADDRESS"), "D-Bus address of the bus os-updated serves on (default: $OS_UPDATE_BUS_ADDRESS, else the system bus)"),
		timeout: f.Duration("timeout", defaultCallTimeout, "give up when the bus or os-updated does not answer a call within this time (a running transaction is followed for as long as it takes)"),
	}
}

// busConn is a connection to os-updated's bus whose calls are bounded.
type busConn struct {
	*dbus.Conn
	where   string // "the system bus" or "the bus at ADDRESS"
	timeout time.Duration
	close   context.CancelFunc
}

// systemBusAddress is where the system bus listens, as libdbus finds it.
func systemBusAddress() (string, error) {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	for _, p := range []string{"/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"} {
		if _, err := os.Stat(p); err == nil {
			return "unix:path=" + p, nil
		}
	}
	return "", errors.New("no system bus socket (/run/dbus/system_bus_socket)")
}

// noDaemonHint says where os-updated should be and how to reach another one.
const noDaemonHint = "os-updated serves on the system bus and is started there by D-Bus activation " +
	"(dist/dbus/org.osupdate.OSUpdate1.service) or as os-updated.service; " +
	"to reach an os-updated on another bus, pass --bus-address ADDRESS or set OS_UPDATE_BUS_ADDRESS"

// connect connects to the bus within the timeout; SIGINT or SIGTERM (ctx)
// stops the attempt.
func (b *busOptions) connect(ctx context.Context) (*busConn, error) {
	addr, where := *b.addr, "the bus at "+*b.addr
	if addr == "" {
		where = "the system bus"
		var err error
		if addr, err = systemBusAddress(); err != nil {
			return nil, fmt.Errorf("cannot reach os-updated: %s: %v; %s", where, err, noDaemonHint)
		}
	}
	// The connection lives on its own context: an interrupted command
	// still needs it to cancel its transaction.
	connCtx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(*b.timeout, cancel)
	stop := context.AfterFunc(ctx, cancel)
	conn, err := dbus.Connect(addr, dbus.WithContext(connCtx))
	timedOut, interrupted := !timer.Stop(), !stop()
	if err != nil {
		cancel()
		switch {
		case interrupted:
			return nil, errInterrupted
		case timedOut:
			return nil, fmt.Errorf("cannot reach os-updated: %s accepted the connection but did not answer within %s (--timeout)", where, *b.timeout)
		}
		return nil, fmt.Errorf("cannot reach os-updated: connect to %s: %v; %s", where, err, noDaemonHint)
	}
	return &busConn{Conn: conn, where: where, timeout: *b.timeout, close: cancel}, nil
}

func (c *busConn) Close() error {
	defer c.close()
	return c.Conn.Close()
}

// call calls a method of os-updated, waiting at most the timeout.
func (c *busConn) call(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := c.Object(api.BusName, path).CallWithContext(cctx, method, 0, args...)
	if call.Err != nil {
		call.Err = c.explain(ctx, method, call.Err)
	}
	return call
}

// prop reads a property of an os-updated object.
func (c *busConn) prop(ctx context.Context, path dbus.ObjectPath, name string) (dbus.Variant, error) {
	iface, prop := splitMember(name)
	var v dbus.Variant
	err := c.call(ctx, path, "org.freedesktop.DBus.Properties.Get", iface, prop).Store(&v)
	return v, err
}

// splitMember splits "a.b.C" into "a.b" and "C".
func splitMember(name string) (string, string) {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}

// addMatch subscribes to signals, waiting at most the timeout.
func (c *busConn) addMatch(ctx context.Context, opts ...dbus.MatchOption) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.AddMatchSignalContext(cctx, opts...); err != nil {
		return c.explain(ctx, "AddMatch", err)
	}
	return nil
}

// explain turns a failed call into an error that says what to do.
func (c *busConn) explain(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer to %s from os-updated on %s within %s (--timeout): the daemon may be stuck, "+
			"or the bus policy may keep the call from it; see its log (journalctl -u os-updated)", member(method), c.where, c.timeout)
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
			return fmt.Errorf("os-updated is not running on %s and the bus cannot start it: %s", c.where, noDaemonHint)
		case "org.freedesktop.DBus.Error.AccessDenied":
			return fmt.Errorf("%s refused the call to os-updated (%s): %v", c.where, member(method), dbusError(err))
		}
	}
	return err
}

// member is the last part of a method name.
func member(method string) string {
	_, m := splitMember(method)
	return m
}
