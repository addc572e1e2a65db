package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/osupdate/os-update/daemon/fleetlock"
	"github.com/osupdate/os-update/internal/clihelp"
	"github.com/osupdate/os-update/internal/version"
	"github.com/osupdate/os-update/sysroot"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// DefaultConfigFile is read at start when it exists; its keys are the
// long flag names.
const DefaultConfigFile = "/etc/os-update/os-updated.conf"

// Main runs os-updated with command-line args (without the program name)
// and returns the exit status: 0, 1 on failure, 2 on a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := &cobra.Command{
		Use:   "os-updated",
		Short: "the os-update daemon: serves the host's sysroot on D-Bus",
		Long: `os-updated owns the sysroot of a host and serves the org.osupdate.OSUpdate1
D-Bus API on the system bus (or the bus given with --bus-address). It runs one
mutating transaction at a time, reports progress as signals and keeps its
history in a state database. The os-update host commands are its clients.

It is normally started by D-Bus activation (or its systemd unit) and exits
after --idle-exit without work. Settings can also come from a configuration
file (--config, default ` + DefaultConfigFile + `): KEY = VALUE lines whose
keys are the long option names; options on the command line win. See
docs/daemon.md.`,
		Version: version.String(),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (see 'os-updated --help')", args[0])}
			}
			return nil
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.CompletionOptions.DisableDefaultCmd = true
	clihelp.Install(cmd)
	cmd.AddCommand(&cobra.Command{
		Use: "man DIR", Short: "write the man page of os-updated into DIR", Hidden: true, Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return clihelp.WriteManPages(c.Root(), args[0], "8") },
	})
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see 'os-updated --help')", err)}
	})
	fs := cmd.Flags()
	configFile := fs.String("config", "", "configuration file of KEY = VALUE lines, keys are these options' names (default "+DefaultConfigFile+" when it exists); options win")
	bus := fs.String("bus-address", "", "D-Bus address to serve on (default: the system bus)")
	root := fs.String("sysroot", "/", "physical root of the host (the directory holding ostree/ and boot/)")
	statePath := fs.String("state", "", "state database (default: <sysroot>/var/lib/os-update/state.db)")
	idle := fs.Duration("idle-exit", 60*time.Second, "exit after this long without work (0: never); D-Bus activation restarts the daemon")
	reboot := fs.String("reboot-command", "", "command to reboot with (default: logind, else systemctl reboot)")
	policy := fs.String("automatic-update-policy", "none", "what the automatic update timer does: none, check, stage or apply")
	window := fs.String("maintenance-window", "", `when the apply policy may reboot, e.g. "Mon..Fri 02:00-04:00 Europe/Berlin" (default: any time)`)
	delay := fs.Duration("random-delay", 0, "the apply policy reboots after a random delay below this, once the window is open")
	flURL := fs.String("fleetlock-url", "", "FleetLock server to take a reboot slot from before rebooting (default: none)")
	flGroup := fs.String("fleetlock-group", fleetlock.DefaultGroup, "FleetLock reboot group")
	flID := fs.String("fleetlock-id", "", "FleetLock client id (default: derived from /etc/machine-id)")
	flRetry := fs.Duration("fleetlock-retry", time.Minute, "first wait after the FleetLock server refused a slot; doubles up to 30 minutes")
	bootloader := fs.String("bootloader", "", "force a bootloader backend (default: detect)")
	code := 0
	var serve func() int
	cmd.RunE = func(*cobra.Command, []string) error {
		code = serve()
		return nil
	}
	// serve runs the daemon until it is told to stop or idles out.
	serve = func() int {
		if err := applyConfigFile(fs, *configFile); err != nil {
			fmt.Fprintf(stderr, "os-updated: %v\n", err)
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
			Backend:   NewHostBackend(HostConfig{Sysroot: *root, SysrootOptions: sysroot.Options{Bootloader: *bootloader}}),
			Automatic: AutomaticConfig{Window: *window, RandomDelay: *delay, LockRetry: *flRetry},
		}
		if *delay < 0 || *flRetry <= 0 {
			fmt.Fprintf(stderr, "os-updated: --random-delay must not be negative and --fleetlock-retry must be positive\n")
			return 2
		}
		if *flURL != "" {
			id := *flID
			if id == "" {
				var err error
				if id, err = fleetlock.MachineIDFromFile("/etc/machine-id"); err != nil {
					fmt.Fprintf(stderr, "os-updated: %v (set --fleetlock-id)\n", err)
					return 1
				}
			}
			fl, err := fleetlock.New(*flURL, *flGroup, id)
			if err != nil {
				fmt.Fprintf(stderr, "os-updated: %v\n", err)
				return 2
			}
			cfg.Automatic.FleetLock = fl
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
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "os-updated: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			return 2
		}
		return 1
	}
	return code
}

// usageError is a bad command line (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// applyConfigFile sets the flags the command line left alone from a file
// of "KEY = VALUE" lines ('#' starts a comment; a value may be quoted with
// double quotes). path "" reads DefaultConfigFile if it exists.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	explicit := path != ""
	if !explicit {
		path = DefaultConfigFile
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	onCommandLine := map[string]bool{}
	fs.Visit(func(fl *pflag.Flag) { onCommandLine[fl.Name] = true })
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return fmt.Errorf("%s:%d: want KEY = VALUE, got %q", path, n, line)
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if fs.Lookup(key) == nil || key == "config" || key == "help" || key == "version" {
			return fmt.Errorf("%s:%d: unknown setting %q", path, n, key)
		}
		if onCommandLine[key] {
			continue
		}
		if err := fs.Set(key, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
