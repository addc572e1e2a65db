package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/deployinfo"
	"github.com/osupdate/os-update/sysroot"
)

// sysrootCommands are the top-level commands that work on a sysroot
// offline: admin, finalize, prepare-root.
func sysrootCommands() []command {
	return []command{
		{use: "admin", short: "manage deployments on a sysroot (init-fs, os-init, deploy, status, ...)", group: groupSysroot, sub: adminCommands(), long: `Manage the deployments of a physical root directly, without the daemon,
as "ostree admin" does: create a root, deploy commits, roll back, pin and
clean up. Every subcommand takes --sysroot DIR (default /).`},
		{use: "finalize", short: "complete a staged deployment (run at shutdown)", group: groupSysroot, run: runFinalize, long: `Write the staged deployment's boot entries so that it becomes the default.
The os-update-finalize-staged service runs this when the system shuts down.`},
		{use: "prepare-root SYSROOT [-- INIT [ARGS...]]", short: "set up the deployment named by ostree= as the new root (initramfs)", group: groupSysroot, run: runPrepareRoot, long: `Set up the deployment that the ostree= kernel argument names as the new root
below SYSROOT (the physical root mounted by the initramfs): bind mounts for
/sysroot, /var and /etc, and a read-only /usr. With INIT, switch root to it
and run it with ARGS.`},
	}
}

func adminCommands() []command {
	return []command{
		{use: "init-fs DIR", short: "create an empty physical root with a repository", run: runInitFS, long: `Create the layout of an empty physical root in DIR: the top-level
directories of a root file system (boot, dev, proc, sys, tmp, ...), a bare
repository at ostree/repo and ostree/deploy for the stateroots.`},
		{use: "os-init OSNAME", short: "create a stateroot", run: runOSInit, long: `Create the stateroot OSNAME (ostree/deploy/OSNAME with its var/) where
deployments of that operating system live.`},
		{use: "deploy REV", short: "deploy a commit as the new default", run: runDeploy, long: `Deploy REV (a ref or checksum of the sysroot's repository) for the
stateroot --os as the new default deployment; the previous default stays as
the rollback. --stage writes the deployment but makes it the default only
when "os-update finalize" runs.`},
		{use: "status", short: "list deployments", run: runAdminStatus, long: `List the deployments of the sysroot with their roles (booted, staged,
pending, rollback, pinned), versions and origins; --json prints them in
the schema of docs/json.md.`},
		{use: "rollback", short: "make the rollback deployment the default", run: runRollback, long: `Make the rollback deployment the default one for the next boot.`},
		{use: "undeploy INDEX|NAME", short: "remove a deployment by index", run: runUndeploy, long: `Remove the deployment at INDEX (as admin status lists them) or named
CHECKSUM.SERIAL; the booted deployment cannot be removed.`},
		{use: "cleanup", short: "remove unreferenced deployments, kernels and objects", run: runCleanup, long: `Remove what no deployment needs any more: deployment directories left
behind, unused boot files and repository objects no ref or deployment
reaches.`},
		{use: "pin INDEX", short: "keep a deployment when new ones are deployed", run: runPin, long: `Pin the deployment at INDEX so that new deployments do not remove it;
--unpin releases it.`},
		{use: "kargs", short: "show or change kernel arguments of a deployment", run: runKargs, long: `Print the kernel arguments of a deployment (--deployment N, default the
default one), or change them with --append, --delete and --replace, which
writes a new boot entry.`},
	}
}

// sysrootFlags are shared by every command that opens a sysroot.
type sysrootFlags struct {
	path       *string
	bootloader *string
}

func addSysrootFlags(f *flagSet) *sysrootFlags {
	return &sysrootFlags{
		path:       f.String("sysroot", "/", "physical root directory"),
		bootloader: f.String("bootloader", "", "bootloader backend: auto, none, grub2, syslinux, extlinux, uboot (default: sysroot.bootloader, else auto)"),
	}
}

func (sf *sysrootFlags) open(e *env) (*sysroot.Sysroot, error) {
	opts := sysroot.Options{Log: e.stdout, Bootloader: *sf.bootloader}
	for _, f := range strings.Split(os.Getenv("OSTREE_SYSROOT_DEBUG"), ",") {
		if f == "mutable-deployments" {
			opts.MutableDeployments = true
		}
	}
	return sysroot.Open(*sf.path, opts)
}

func runInitFS(f *flagSet) runFunc {
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		if len(pos) != 1 {
			return usagef("admin init-fs: expected DIR")
		}
		return sysroot.InitFS(pos[0])
	}
}

func runOSInit(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("admin os-init: expected OSNAME")
		}
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.InitOS(pos[0]); err != nil {
			return err
		}
		e.printf("ostree/deploy/%s initialized as OSTree root\n", pos[0])
		return nil
	}
}

func runDeploy(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	osname := f.String("os", "", "stateroot to deploy into")
	var kargs, kargsAppend stringList
	f.Var(&kargs, "karg", "set kernel argument K=V, replacing the inherited value (repeatable)")
	f.Var(&kargsAppend, "karg-append", "append kernel argument (repeatable)")
	procCmdline := f.Bool("karg-proc-cmdline", false, "start from /proc/cmdline instead of the merge deployment's arguments")
	stage := f.Bool("stage", false, "write the deployment but make it the default only when os-update finalize runs (at shutdown)")
	refspec := f.String("origin-refspec", "", "refspec to record in the origin file (default: REV if it is a ref)")
	retain := f.Bool("retain", false, "keep every existing deployment of the stateroot")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("admin deploy: expected one REV")
		}
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		if *osname == "" {
			names, err := s.OSNames()
			if err != nil {
				return err
			}
			switch {
			case s.Booted != nil:
				*osname = s.Booted.OS
			case len(names) == 1:
				*osname = names[0]
			default:
				return usagef("admin deploy: --os is required")
			}
		}
		opts := sysroot.DeployOptions{OS: *osname, Rev: pos[0], Kargs: kargs, KargsAppend: kargsAppend,
			Stage: *stage, OriginRefspec: *refspec, Retain: *retain}
		if *procCmdline {
			b, err := os.ReadFile("/proc/cmdline")
			if err != nil {
				return err
			}
			opts.BaseKargs = bootloader.ParseKargs(string(b)).Without("ostree").Without("BOOT_IMAGE").Without("initrd")
		}
		res, err := s.Deploy(ctx, opts)
		if err != nil {
			return err
		}
		if res.Etc != nil && len(res.Etc.Conflicts) > 0 {
			e.printf("%d /etc conflict(s): local versions kept\n", len(res.Etc.Conflicts))
		}
		return nil
	}
}

func runAdminStatus(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	asJSON := f.Bool("json", false, "print JSON")
	return func(ctx context.Context, e *env, args []string) error {
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		// The schema of `status --json` (api.Deployment), built the same way.
		out := deployinfo.Describe(s)
		if *asJSON {
			doc := map[string]any{"deployments": out}
			if len(s.Warnings) > 0 {
				doc["warnings"] = s.Warnings
			}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return err
			}
			e.printf("%s\n", b)
			return nil
		}
		for _, w := range s.Warnings {
			e.printf("Warning: %s\n", w)
		}
		if len(out) == 0 {
			e.printf("No deployments.\n")
			return nil
		}
		for _, d := range out {
			mark := " "
			if d.Booted {
				mark = "*"
			}
			// One tag, as ostree admin status prints it. Offline nothing is
			// booted: the default is not called pending.
			suffix := ""
			switch {
			case d.Staged:
				suffix = " (staged)"
			case d.Pending && s.Booted != nil:
				suffix = " (pending)"
			case d.Rollback:
				suffix = " (rollback)"
			}
			e.printf("%s %s %s.%d%s\n", mark, d.OSName, d.Checksum, d.Serial, suffix)
			if d.Version != "" {
				e.printf("    Version: %s\n", d.Version)
			}
			if d.Origin != "" {
				e.printf("    origin refspec: %s\n", d.Origin)
			} else {
				e.printf("    origin: none\n")
			}
			if d.Pinned {
				e.printf("    Pinned: yes\n")
			}
		}
		return nil
	}
}

func runRollback(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		d, err := s.Rollback(ctx)
		if err != nil {
			return err
		}
		e.printf("Default deployment is now %s %s\n", d.OS, d.Name())
		return nil
	}
}

func indexArg(cmd string, pos []string) (int, error) {
	if len(pos) != 1 {
		return 0, usagef("%s: expected a deployment INDEX", cmd)
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil || n < 0 {
		return 0, usagef("%s: invalid index %q", cmd, pos[0])
	}
	return n, nil
}

func runUndeploy(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("admin undeploy: expected a deployment INDEX or NAME")
		}
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		// An index counts the boot-configured deployments, as before; a name
		// is CHECKSUM.SERIAL or OS/CHECKSUM.SERIAL.
		name := pos[0]
		if n, err := strconv.Atoi(name); err == nil {
			if n < 0 || n >= len(s.Deployments) {
				return fmt.Errorf("undeploy: no deployment %d (there are %d)", n, len(s.Deployments))
			}
			name = s.Deployments[n].OS + "/" + s.Deployments[n].Name()
		}
		if _, err := s.Undeploy(ctx, name); err != nil {
			return err
		}
		e.printf("Deleted deployment %s\n", pos[0])
		return nil
	}
}

func runCleanup(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		res, err := s.Cleanup(ctx, true)
		if err != nil {
			return err
		}
		for _, r := range res.Removed {
			e.printf("Removed %s\n", r)
		}
		if res.Pruned != nil {
			e.printf("Pruned %d objects (%d bytes)\n", res.Pruned.Pruned, res.Pruned.BytesFree)
		}
		return nil
	}
}

func runPin(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	unpin := f.Bool("unpin", false, "remove the pin")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		n, err := indexArg("admin pin", pos)
		if err != nil {
			return err
		}
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.SetPinned(n, !*unpin); err != nil {
			return err
		}
		if *unpin {
			e.printf("Deployment %d is now unpinned\n", n)
		} else {
			e.printf("Deployment %d is now pinned\n", n)
		}
		return nil
	}
}

func runKargs(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	index := f.Int("deployment", 0, "index of the deployment to change")
	var edit sysroot.KargsEdit
	f.Var((*stringList)(&edit.Append), "append", "append an argument (repeatable)")
	f.Var((*stringList)(&edit.Delete), "delete", "delete KEY or KEY=VALUE (repeatable)")
	f.Var((*stringList)(&edit.Replace), "replace", "KEY=VALUE replaces the only value of KEY, KEY=OLD=NEW the value OLD (repeatable)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 0 {
			return usagef("admin kargs: unexpected argument %q", pos[0])
		}
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		if len(edit.Append)+len(edit.Delete)+len(edit.Replace) == 0 {
			if *index < 0 || *index >= len(s.Deployments) {
				return fmt.Errorf("admin kargs: no deployment %d", *index)
			}
			e.printf("%s\n", s.Deployments[*index].Kargs)
			return nil
		}
		k, err := s.SetKargs(ctx, *index, edit)
		if err != nil {
			return err
		}
		e.printf("%s\n", k)
		return nil
	}
}

func runFinalize(f *flagSet) runFunc {
	sf := addSysrootFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		s, err := sf.open(e)
		if err != nil {
			return err
		}
		defer s.Close()
		res, err := s.Finalize(ctx)
		if errors.Is(err, sysroot.ErrNothingStaged) {
			e.printf("No staged deployment.\n")
			return nil
		}
		if err != nil {
			return err
		}
		if res != nil {
			e.printf("Finalized %s %s\n", res.Deployment.OS, res.Deployment.Name())
		}
		return nil
	}
}

func runPrepareRoot(f *flagSet) runFunc {
	cmdline := f.String("cmdline", "", "kernel command line to read ostree= from (default: --cmdline-file)")
	cmdlineFile := f.String("cmdline-file", "/proc/cmdline", "file holding the kernel command line")
	runDir := f.String("run-dir", "/run", "directory for the ostree-booted stamp")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) < 1 {
			return usagef("prepare-root: expected SYSROOT (the mounted physical root, e.g. /sysroot)")
		}
		line := *cmdline
		if line == "" {
			b, err := os.ReadFile(*cmdlineFile)
			if err != nil {
				return fmt.Errorf("prepare-root: %w", err)
			}
			line = string(b)
		}
		deploy, err := sysroot.PrepareRoot(sysroot.PrepareRootOptions{Sysroot: pos[0], Cmdline: line, RunDir: *runDir})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "prepare-root: %s is now mounted at %s\n", deploy, pos[0])
		if len(pos) > 1 {
			// Acting as switch_root: only returns on failure.
			return sysroot.SwitchRoot(pos[0], pos[1:])
		}
		return nil
	}
}
