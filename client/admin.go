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
func sysrootCommands() map[string]command {
	return map[string]command{
		"admin":        {"manage deployments on a sysroot (init-fs, os-init, deploy, status, ...)", runGroup("admin", adminCommands())},
		"finalize":     {"complete a staged deployment (run at shutdown)", runFinalize},
		"prepare-root": {"set up the deployment named by ostree= as the new root (initramfs)", runPrepareRoot},
	}
}

func adminCommands() map[string]command {
	return map[string]command{
		"init-fs":  {"create an empty physical root with a repository", runInitFS},
		"os-init":  {"create a stateroot", runOSInit},
		"deploy":   {"deploy a commit as the new default", runDeploy},
		"status":   {"list deployments", runAdminStatus},
		"rollback": {"make the rollback deployment the default", runRollback},
		"undeploy": {"remove a deployment by index", runUndeploy},
		"cleanup":  {"remove unreferenced deployments, kernels and objects", runCleanup},
		"pin":      {"keep a deployment when new ones are deployed", runPin},
		"kargs":    {"show or change kernel arguments of a deployment", runKargs},
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

func runInitFS(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin init-fs", "DIR")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("admin init-fs: expected DIR")
	}
	return sysroot.InitFS(pos[0])
}

func runOSInit(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin os-init", "OSNAME [--sysroot DIR]")
	sf := addSysrootFlags(f)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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

func runDeploy(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin deploy", "--os OS REV [--sysroot DIR] [--karg K=V]... [--stage]")
	sf := addSysrootFlags(f)
	osname := f.String("os", "", "stateroot to deploy into")
	var kargs, kargsAppend stringList
	f.Var(&kargs, "karg", "set kernel argument K=V, replacing the inherited value (repeatable)")
	f.Var(&kargsAppend, "karg-append", "append kernel argument (repeatable)")
	procCmdline := f.Bool("karg-proc-cmdline", false, "start from /proc/cmdline instead of the merge deployment's arguments")
	stage := f.Bool("stage", false, "write the deployment but make it the default only at `finalize`")
	refspec := f.String("origin-refspec", "", "refspec to record in the origin file (default: REV if it is a ref)")
	retain := f.Bool("retain", false, "keep every existing deployment of the stateroot")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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

func runAdminStatus(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin status", "[--sysroot DIR] [--json]")
	sf := addSysrootFlags(f)
	asJSON := f.Bool("json", false, "print JSON")
	if _, err := f.parse(args); err != nil {
		return err
	}
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

func runRollback(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin rollback", "[--sysroot DIR]")
	sf := addSysrootFlags(f)
	if _, err := f.parse(args); err != nil {
		return err
	}
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

func runUndeploy(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin undeploy", "INDEX|NAME [--sysroot DIR]")
	sf := addSysrootFlags(f)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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

func runCleanup(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin cleanup", "[--sysroot DIR]")
	sf := addSysrootFlags(f)
	if _, err := f.parse(args); err != nil {
		return err
	}
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

func runPin(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin pin", "INDEX [--unpin] [--sysroot DIR]")
	sf := addSysrootFlags(f)
	unpin := f.Bool("unpin", false, "remove the pin")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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

func runKargs(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "admin kargs", "[--sysroot DIR] [--deployment N] [--append K=V] [--delete K] [--replace K=V|K=OLD=NEW]")
	sf := addSysrootFlags(f)
	index := f.Int("deployment", 0, "index of the deployment to change")
	var edit sysroot.KargsEdit
	f.Var((*stringList)(&edit.Append), "append", "append an argument (repeatable)")
	f.Var((*stringList)(&edit.Delete), "delete", "delete KEY or KEY=VALUE (repeatable)")
	f.Var((*stringList)(&edit.Replace), "replace", "KEY=VALUE replaces the only value of KEY, KEY=OLD=NEW the value OLD (repeatable)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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

func runFinalize(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "finalize", "[--sysroot DIR]")
	sf := addSysrootFlags(f)
	if _, err := f.parse(args); err != nil {
		return err
	}
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

func runPrepareRoot(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "prepare-root", "[--cmdline STR | --cmdline-file FILE] SYSROOT [-- INIT [ARGS...]]")
	cmdline := f.String("cmdline", "", "kernel command line to read ostree= from (default: --cmdline-file)")
	cmdlineFile := f.String("cmdline-file", "/proc/cmdline", "file holding the kernel command line")
	runDir := f.String("run-dir", "/run", "directory for the ostree-booted stamp")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
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
