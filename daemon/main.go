package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/osupdate/os-update/sysroot"
)

// Main runs os-updated with command-line args (without the program name)
// and returns the exit status.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("os-updated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bus := fs.String("bus-address", "", "D-Bus address to serve on (default: the system bus)")
	root := fs.String("sysroot", "/", "physical root of the host (the directory holding ostree/ and boot/)")
	statePath := fs.String("state", "", "state database (default: <sysroot>/var/lib/os-update/state.db)")
	idle := fs.Duration("idle-exit", 60*time.Second, "exit after this long without work (0: never); D-Bus activation restarts the daemon")
	reboot := fs.String("reboot-command", "", "command to reboot with (default: logind, else systemctl reboot)")
	policy := fs.String("automatic-update-policy", "none", "reported automatic update policy: none, check or stage")
	bootloader := fs.String("bootloader", "", "force a bootloader backend (default: detect)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "os-updated: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *bus == "" {
		// Started by D-Bus activation on a bus other than the system bus.
		if addr := os.Getenv("DBUS_STARTER_ADDRESS"); addr != "" && os.Getenv("DBUS_STARTER_BUS_TYPE") != "system" {
			*bus = addr
		}
	}
	if *statePath == "" {
		*statePath = filepath.Join(*root, "var/lib/os-update/state.db")
	}
	if err := os.MkdirAll(filepath.Dir(*statePath), 0o700); err != nil {
		fmt.Fprintf(stderr, "os-updated: %v\n", err)
		return 1
	}
	cfg := Config{
		BusAddress: *bus, StatePath: *statePath, IdleExit: *idle, AutomaticUpdatePolicy: *policy, Log: stderr,
		Backend: NewHostBackend(HostConfig{Sysroot: *root, SysrootOptions: sysroot.Options{Bootloader: *bootloader}}),
	}
	if *reboot != "" {
		cfg.RebootCommand = strings.Fields(*reboot)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "os-updated: %v\n", err)
		return 1
	}
	defer d.Close()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "os-updated: %v\n", err)
		return 1
	}
	return 0
}
