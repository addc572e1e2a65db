// Package client implements the os-update command line: the host commands
// that talk to the daemon, and the offline subcommands (repo, compose,
// admin) that work on files directly.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/osupdate/os-update/internal/clihelp"
	"github.com/osupdate/os-update/internal/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitUsage    = 2
	ExitNoUpdate = 77
)

// runFunc runs a command with its positional arguments, its options
// already parsed.
type runFunc func(ctx context.Context, e *env, args []string) error

// command describes one command of the tree: a leaf defines its options
// on a flag set and returns what runs it; a group has subcommands.
type command struct {
	use    string // name and arguments, as in "rebase REF"
	short  string // one line, lower case, no full stop
	long   string // paragraphs shown by --help and in the man page
	group  string // section of the top-level help
	run    func(f *flagSet) runFunc
	sub    []command
	hidden bool
	// validArgs completes the arguments of a command that takes one of
	// a fixed set.
	validArgs []string
}

// env carries what every command writes to.
type env struct {
	stdout, stderr io.Writer
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// usageError makes the command exit with status 2.
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

// Top-level help sections.
const (
	groupHost    = "host"
	groupSysroot = "sysroot"
	groupBuild   = "build"
)

func topCommands() []command {
	cmds := []command{{
		use:   "repo",
		short: "work on an OSTree repository (init, commit, checkout, pull, deltas, ...)",
		long: `Work on an OSTree repository directly, without the daemon: create one,
commit trees, check them out, pull from and serve to other repositories,
sign, verify and generate static deltas. The on-disk format is libostree's,
so the ostree command and os-update can work on the same repository.

Every subcommand takes --repo DIR; its default is $OSTREE_REPO, as with ostree.`,
		group: groupBuild,
		sub:   repoCommands(),
	}}
	// Each feature area registers its top-level commands in its own file.
	cmds = append(cmds, hostCommands()...)
	cmds = append(cmds, sysrootCommands()...)
	cmds = append(cmds, composeCommands()...)
	cmds = append(cmds, maintenanceCommands()...)
	return cmds
}

// Main runs the os-update command with args (without the program name) and
// returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal a second one ends the process at once: the
	// first has already asked every running call to stop.
	go func() {
		<-ctx.Done()
		stop()
	}()
	e := &env{stdout: stdout, stderr: stderr}
	return report(e, run(ctx, e, args))
}

// run executes the command line args.
func run(ctx context.Context, e *env, args []string) error {
	root := newRoot(e)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// newRoot builds the command tree.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "os-update",
		Short: "update, inspect and build OSTree-based operating systems",
		Long: `os-update updates a host transactionally and builds what it boots.

The host commands (status, upgrade, rollback, ...) ask the os-updated daemon
over D-Bus to change the host; os-updated is started by D-Bus activation or by
its systemd unit. The offline commands (repo, compose, admin) work on files
directly. Repositories and deployments are compatible with libostree's.

Exit status: 0 on success, 1 on failure, 2 on a usage error, 77 when
"upgrade --check" or "--preview" finds no update.`,
		Version:       version.String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(flagError)
	clihelp.Install(root)
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "show the help of a command",
		Long:  "Show the help of the command named by the arguments (\"os-update help repo pull\"), or of os-update.",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no command %q (see 'os-update --help')", strings.Join(args, " "))
			}
			clihelp.Write(cmd.OutOrStdout(), target)
			return nil
		},
	})
	root.AddGroup(
		&cobra.Group{ID: groupHost, Title: "Host commands (through os-updated):"},
		&cobra.Group{ID: groupSysroot, Title: "Sysroot commands (offline, on a physical root):"},
		&cobra.Group{ID: groupBuild, Title: "Building and publishing:"},
	)
	root.CompletionOptions.DisableDefaultCmd = true // "completion" is ours (maint.go)
	for _, c := range topCommands() {
		root.AddCommand(build(e, c))
	}
	return root
}

// build turns a command description into a cobra command.
func build(e *env, c command) *cobra.Command {
	cc := &cobra.Command{
		Use:       c.use,
		Short:     c.short,
		Long:      c.long,
		GroupID:   c.group,
		Hidden:    c.hidden,
		ValidArgs: c.validArgs,
	}
	if c.long == "" {
		cc.Long = strings.ToUpper(c.short[:1]) + c.short[1:] + "."
	}
	if c.run == nil {
		cc.Args = cobra.ArbitraryArgs
		cc.RunE = groupRun
		for _, s := range c.sub {
			cc.AddCommand(build(e, s))
		}
		return cc
	}
	run := c.run(&flagSet{cc.Flags()})
	cc.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(context.WithValue(cmd.Context(), cmdKey{}, cmd), e, args)
		var u usageError
		if errors.As(err, &u) {
			return usageError{fmt.Sprintf("%s (see '%s --help')", u.msg, cmd.CommandPath())}
		}
		return err
	}
	return cc
}

// groupRun runs a command that only has subcommands: without one it
// prints the help, with an unknown one it fails with suggestions.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		clihelp.Write(cmd.ErrOrStderr(), cmd)
		return usageError{"no command given"}
	}
	msg := fmt.Sprintf("unknown command %q for '%s'", args[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Sprintf("%s (see '%s --help')", msg, cmd.CommandPath())}
}

// flagError makes a bad option a one-line usage error with a hint.
func flagError(cmd *cobra.Command, err error) error {
	return usageError{fmt.Sprintf("%v (see '%s --help')", err, cmd.CommandPath())}
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
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintf(e.stderr, "error: %s\n", u.msg)
		return ExitUsage
	}
	fmt.Fprintf(e.stderr, "error: %v\n", err)
	return ExitFailure
}

// flagSet is where a command defines its options: GNU style, long
// options with --, one-letter short forms with -, options anywhere among
// the arguments, "--" ending them.
type flagSet struct {
	*pflag.FlagSet
}

// stringList is a repeatable string option.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
func (s *stringList) Type() string       { return "stringArray" }

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
