// Package client implements the os-update command line: the host commands
// that talk to the daemon, and the offline subcommands (repo, compose,
// admin) that work on files directly.
package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitUsage    = 2
	ExitNoUpdate = 77
)

// command is one subcommand; run receives the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// env carries what every command writes to.
type env struct {
	stdout, stderr io.Writer
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// usageError makes the command exit with status 2 and print its usage.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (x exitError) Error() string {
	if x.err == nil {
		return ""
	}
	return x.err.Error()
}

func topCommands() map[string]command {
	cmds := map[string]command{
		"repo": {"work on an OSTree repository (init, commit, checkout, fsck, ...)", runGroup("repo", repoCommands())},
	}
	// Each feature area registers its top-level commands in its own file.
	for _, more := range []map[string]command{hostCommands(), sysrootCommands(), composeCommands()} {
		for name, c := range more {
			cmds[name] = c
		}
	}
	return cmds
}

// Main runs the os-update command with args (without the program name) and
// returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: stdout, stderr: stderr}
	err := runGroup("", topCommands())(ctx, e, args)
	return report(e, err)
}

func report(e *env, err error) int {
	if err == nil {
		return ExitOK
	}
	var x exitError
	if errors.As(err, &x) {
		if x.err != nil {
			fmt.Fprintf(e.stderr, "error: %v\n", x.err)
		}
		return x.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintf(e.stderr, "error: %s\n", u.msg)
		return ExitUsage
	}
	fmt.Fprintf(e.stderr, "error: %v\n", err)
	return ExitFailure
}

// runGroup dispatches to a subcommand of a group.
func runGroup(name string, cmds map[string]command) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		prog := strings.TrimSpace("os-update " + name)
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprintf(e.stdout, "Usage: %s COMMAND [OPTIONS...]\n\nCommands:\n", prog)
			names := make([]string, 0, len(cmds))
			for n := range cmds {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(e.stdout, "  %-12s %s\n", n, cmds[n].summary)
			}
			fmt.Fprintf(e.stdout, "\nRun '%s COMMAND --help' for a command's options.\n", prog)
			if len(args) == 0 {
				return usageError{"no command given"}
			}
			return nil
		}
		c, ok := cmds[args[0]]
		if !ok {
			return usagef("%s: unknown command %q (see '%s --help')", prog, args[0], prog)
		}
		return c.run(ctx, e, args[1:])
	}
}

// flagSet is a flag.FlagSet that accepts options anywhere among the
// positional arguments, as the ostree command does.
type flagSet struct {
	*flag.FlagSet
	e     *env
	usage string
}

func newFlags(e *env, name, usage string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flagSet{FlagSet: fs, e: e, usage: usage}
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: os-update %s %s\n\nOptions:\n", name, usage)
		fs.PrintDefaults()
	}
	return f
}

// parse parses interspersed options and returns the positional arguments.
func (f *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// humanBytes renders a byte count with binary units ("1.5 MiB").
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
