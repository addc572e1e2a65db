// Package ostreecli is os-update's `ostree` personality: invoked through a
// symlink named ostree, os-update accepts libostree's command line for the
// commands it implements, with the same options, output and exit codes, so
// scripts written for ostree run unchanged. The work is done by the
// library packages (repo, repo/pull, repo/summary, repo/delta, sysroot);
// this package only parses and prints.
package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Version is the libostree release whose command line this mimics.
const Version = "2022.7"

// IsOstree reports whether the program was invoked under the name ostree.
func IsOstree(argv0 string) bool { return filepath.Base(argv0) == "ostree" }

// command is one (sub)command. run gets the arguments after the command
// name, options still included.
type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what a command writes to, plus its name for messages.
type env struct {
	stdout, stderr io.Writer
	prog           string
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// exitCode makes Main return a specific status without printing "error:".
type exitCode int

func (x exitCode) Error() string { return fmt.Sprintf("exit status %d", int(x)) }

// notImplemented is the error of every libostree command os-update lacks.
// Its --help still answers, so that scripts probing for help work.
func notImplemented(name string) func(context.Context, *env, []string) error {
	return func(_ context.Context, e *env, args []string) error {
		for _, a := range args {
			if a == "-h" || a == "--help" {
				e.printf("Usage:\n  ostree %s [OPTION…]\n\nNot implemented by os-update\n\n", name)
				return nil
			}
		}
		return fmt.Errorf("ostree %s: not implemented by os-update", name)
	}
}

// topCommands are libostree's builtin commands, in its help order.
func topCommands() []namedCommand {
	return []namedCommand{
		{"admin", command{"Commands for managing a host system booted with ostree", runAdmin}},
		{"cat", command{"Concatenate contents of files", runCat}},
		{"checkout", command{"Check out a commit into a filesystem tree", runCheckout}},
		{"checksum", command{"Checksum a file or directory", notImplemented("checksum")}},
		{"commit", command{"Commit a new revision", runCommit}},
		{"config", command{"Change repo configuration settings", runConfig}},
		{"diff", command{"Compare directory TARGETDIR against revision REV", notImplemented("diff")}},
		{"export", command{"Stream COMMIT to stdout in tar format", notImplemented("export")}},
		{"find-remotes", command{"Find remotes to serve the given refs", notImplemented("find-remotes")}},
		{"create-usb", command{"Copy the refs to a USB stick", notImplemented("create-usb")}},
		{"fsck", command{"Check the repository for consistency", runFsck}},
		{"gpg-sign", command{"Sign a commit", runGPGSign}},
		{"init", command{"Initialize a new empty repository", runInit}},
		{"log", command{"Show log starting at commit or ref", runLog}},
		{"ls", command{"List file paths", runLs}},
		{"prune", command{"Search for unreachable objects", runPrune}},
		{"pull-local", command{"Copy data from SRC_REPO", runPullLocal}},
		{"pull", command{"Download data from remote repository", runPull}},
		{"refs", command{"List refs", runRefs}},
		{"remote", command{"Remote commands that may involve internet access", runRemote}},
		{"reset", command{"Reset a REF to a previous COMMIT", runReset}},
		{"rev-parse", command{"Output the target of a rev", runRevParse}},
		{"sign", command{"Sign a commit", notImplemented("sign")}},
		{"show", command{"Output a metadata object", runShow}},
		{"static-delta", command{"Static delta related commands", runStaticDelta}},
		{"summary", command{"Manage summary metadata", runSummary}},
	}
}

type namedCommand struct {
	name string
	command
}

// Main runs the ostree command line args (without the program name) and
// returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: stdout, stderr: stderr, prog: "ostree"}
	err := dispatch(ctx, e, "", topCommands(), globalOptions, args)
	return report(e, err)
}

func report(e *env, err error) int {
	if err == nil {
		return 0
	}
	var x exitCode
	if errors.As(err, &x) {
		return int(x)
	}
	fmt.Fprintf(e.stderr, "error: %v\n", err)
	return 1
}

// globalOptions are accepted before the command name.
var globalOptions = []string{"--verbose", "-v", "--version", "--help", "-h"}

// dispatch finds the command among cmds: the first argument that is not an
// option. Options before it stay in the arguments, as ostree's do, so
// `ostree --repo=R refs` works.
func dispatch(ctx context.Context, e *env, group string, cmds []namedCommand, global []string, args []string) error {
	idx := -1
	for i, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			idx = i
			break
		}
	}
	if idx < 0 {
		for _, a := range args {
			switch a {
			case "--version":
				if group == "" {
					printVersion(e)
					return nil
				}
			case "-h", "--help":
				e.printf("%s", groupUsage(group, cmds))
				return nil
			}
		}
		fmt.Fprint(e.stderr, groupUsage(group, cmds))
		if group == "" {
			return errors.New("No command specified")
		}
		return errors.New("No \"" + group + "\" subcommand specified")
	}
	name := args[idx]
	for _, c := range cmds {
		if c.name == name {
			// Options before the command stay (--repo=R refs); a global
			// --verbose there is dropped.
			rest := append(dropArgs(args[:idx], "-v", "--verbose"), args[idx+1:]...)
			return c.run(ctx, e, rest)
		}
	}
	if group == "" {
		// CLI extensions: an ostree-NAME program on PATH is `ostree NAME`.
		// A relative PATH entry counts too, as it does for libostree.
		if p, err := exec.LookPath("ostree-" + name); err == nil || errors.Is(err, exec.ErrDot) {
			return runExtension(ctx, e, p, args[idx+1:])
		}
		fmt.Fprint(e.stderr, groupUsage(group, cmds))
		return fmt.Errorf("Unknown command '%s'", name)
	}
	fmt.Fprint(e.stderr, groupUsage(group, cmds))
	return fmt.Errorf("Unknown \"%s\" subcommand '%s'", group, name)
}

func dropArgs(args []string, drop ...string) []string {
	out := args[:0:0]
	for _, a := range args {
		skip := false
		for _, d := range drop {
			skip = skip || a == d
		}
		if !skip {
			out = append(out, a)
		}
	}
	return out
}

func groupUsage(group string, cmds []namedCommand) string {
	var b strings.Builder
	prog := strings.TrimSpace("ostree " + group)
	fmt.Fprintf(&b, "Usage:\n  %s [OPTION…] COMMAND\n\nBuiltin Commands:\n", prog)
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-17s %s\n", c.name, c.summary)
	}
	b.WriteString("\nHelp Options:\n  -h, --help        Show help options\n\nApplication Options:\n")
	b.WriteString("  -v, --verbose     Print debug information during command processing\n")
	if group == "" {
		b.WriteString("  --version         Print version information and exit\n")
	}
	b.WriteString("\n")
	return b.String()
}

// features are what `ostree --version` lists; the test suite decides from
// them which tests apply.
var features = []string{"libcurl", "gpgme", "release"}

func printVersion(e *env) {
	e.printf("libostree:\n Version: '%s'\n Features:\n", Version)
	for _, f := range features {
		e.printf("  - %s\n", f)
	}
	e.printf(" os-update: ostree personality\n")
}

// cmdOptions starts the options of a command: every command takes -h and
// (unless noRepo) --repo.
type cmdOptions struct {
	optionSet
	name, params, summary string
	help, verbose         bool
	repoPath              string
}

func newCmd(name, params, summary string, withRepo bool) *cmdOptions {
	c := &cmdOptions{name: name, params: params, summary: summary}
	c.flag("help", 'h', &c.help, "Show help options")
	c.flag("verbose", 'v', &c.verbose, "Print debug information during command processing")
	if withRepo {
		c.str("repo", 0, &c.repoPath, "PATH", "Path to OSTree repository (defaults to current directory or /sysroot/ostree/repo)")
	}
	return c
}

// errHelp ends a command after --help was printed.
var errHelp = exitCode(0)

// parseArgs parses args; with --help it prints the usage and returns errHelp.
func (c *cmdOptions) parseArgs(e *env, args []string) ([]string, error) {
	pos, err := c.parse(args)
	if err != nil {
		return nil, err
	}
	if c.help {
		e.printf("%s", c.usageText())
		return nil, errHelp
	}
	return pos, nil
}

func (c *cmdOptions) usageText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  ostree %s [OPTION…] %s\n\n%s\n\n", c.name, c.params, c.summary)
	opts := c.opts
	sort.SliceStable(opts, func(i, j int) bool { return opts[i].long == "help" && opts[j].long != "help" })
	c.usage(&b)
	b.WriteString("\n")
	return b.String()
}

// usageError prints the command's usage to stderr and fails with msg.
func (c *cmdOptions) usageError(e *env, msg string) error {
	fmt.Fprint(e.stderr, c.usageText())
	return errors.New(msg)
}

// runExtension runs an ostree-NAME extension with the remaining arguments
// and passes its exit status on.
func runExtension(ctx context.Context, e *env, path string, args []string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exitCode(exit.ExitCode())
	}
	return err
}
