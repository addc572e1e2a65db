package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/sysroot"
)

func runAdmin(ctx context.Context, e *env, args []string) error {
	cmds := []namedCommand{
		{"cleanup", command{"Delete untagged deployments and repository objects", adminCleanup}},
		{"config-diff", command{"Diff current /etc configuration versus default", notImplemented("admin config-diff")}},
		{"deploy", command{"Checkout revision REFSPEC as the new default deployment", adminDeploy}},
		{"finalize-staged", command{"Internal command to run at shutdown time", notImplemented("admin finalize-staged")}},
		{"init-fs", command{"Initialize a root filesystem", adminInitFS}},
		{"instutil", command{"Deprecated commands intended for installer programs", adminInstutil}},
		{"os-init", command{"Initialize empty state for given operating system", adminOSInit}},
		{"pin", command{"Change the \"pinning\" state of a deployment", adminPin}},
		{"set-origin", command{"Set Origin and create a new origin file", notImplemented("admin set-origin")}},
		{"status", command{"List deployments", adminStatus}},
		{"switch", command{"Construct new tree from REFSPEC and deploy it", adminSwitch}},
		{"undeploy", command{"Delete deployment INDEX", adminUndeploy}},
		{"unlock", command{"Make the current deployment mutable (as a hotfix or development)", notImplemented("admin unlock")}},
		{"upgrade", command{"Construct new tree from current origin and deploy it, if it changed", adminUpgrade}},
		{"kargs", command{"Change kernel arguments", adminKargs}},
	}
	// `ostree admin --print-current-dir` and `--sysroot` before the
	// subcommand are admin options.
	for _, a := range args {
		if a == "--print-current-dir" {
			return adminPrintCurrentDir(e, args)
		}
		if !strings.HasPrefix(a, "-") {
			break
		}
	}
	return dispatch(ctx, e, "admin", cmds, nil, args)
}

// adminCmd starts the options of an admin subcommand: --sysroot and
// (where it applies) --os.
type adminCmd struct {
	*cmdOptions
	sysrootPath, osname string
}

func newAdminCmd(name, params, summary string, withOS bool) *adminCmd {
	c := &adminCmd{cmdOptions: newCmd("admin "+name, params, summary, false)}
	c.str("sysroot", 0, &c.sysrootPath, "PATH", "Create a new OSTree sysroot at PATH")
	if withOS {
		c.str("os", 0, &c.osname, "OSNAME", "Use a different operating system root than the current one")
	}
	return c
}

// open opens the sysroot: --sysroot, $OSTREE_SYSROOT, else /.
func (c *adminCmd) open(e *env) (*sysroot.Sysroot, error) {
	p := c.sysrootPath
	if p == "" {
		p = os.Getenv("OSTREE_SYSROOT")
	}
	if p == "" {
		p = "/"
	}
	opts := sysroot.Options{}
	for _, f := range strings.Split(os.Getenv("OSTREE_SYSROOT_DEBUG"), ",") {
		if f == "mutable-deployments" {
			opts.MutableDeployments = true
		}
	}
	s, err := sysroot.Open(p, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stateroot picks --os, else the booted deployment's, else the only one.
func (c *adminCmd) stateroot(s *sysroot.Sysroot) (string, error) {
	if c.osname != "" {
		return c.osname, nil
	}
	if s.Booted != nil {
		return s.Booted.OS, nil
	}
	if len(s.Deployments) > 0 {
		return s.Deployments[0].OS, nil
	}
	names, err := s.OSNames()
	if err != nil {
		return "", err
	}
	if len(names) == 1 {
		return names[0], nil
	}
	return "", errors.New("Not currently booted into an OSTree system and no --os= argument given")
}

func adminInitFS(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("init-fs", "PATH", "Initialize a root filesystem", false)
	var modern bool
	c.flag("modern", 0, &modern, "Only create /boot and /ostree")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "PATH must be specified")
	}
	if !modern {
		return sysroot.InitFS(pos[0])
	}
	// --modern: only /boot and /ostree (with its repository).
	for _, d := range []string{"boot", "ostree/deploy"} {
		if err := os.MkdirAll(filepath.Join(pos[0], d), 0o755); err != nil {
			return err
		}
	}
	if isRepoDir(filepath.Join(pos[0], "ostree/repo")) {
		return nil
	}
	r, err := repo.Init(filepath.Join(pos[0], "ostree/repo"), repo.ModeBare)
	if err != nil {
		return err
	}
	return r.Close()
}

// adminPrintCurrentDir prints the directory of the first deployment (the
// booted one on a running system).
func adminPrintCurrentDir(e *env, args []string) error {
	c := newAdminCmd("", "", "", false)
	var print bool
	c.flag("print-current-dir", 0, &print, "Print the current booted deployment directory")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	d := s.Booted
	if d == nil {
		if len(s.Deployments) == 0 {
			return errors.New("No deployments")
		}
		d = s.Deployments[0]
	}
	abs, err := filepath.Abs(filepath.Join(s.Path, "ostree/deploy", d.OS, "deploy", d.Name()))
	if err != nil {
		return err
	}
	e.printf("%s\n", abs)
	return nil
}

func adminOSInit(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("os-init", "OSNAME", "Initialize empty state for given operating system", false)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "OSNAME must be specified")
	}
	s, err := c.open(e)
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

func adminDeploy(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("deploy", "REFSPEC", "Checkout revision REFSPEC as the new default deployment", true)
	var kargs, kargsAppend, kargsDelete, overlays []string
	var origin string
	var procCmdline, stage, retain, retainPending, retainRollback, notDefault, noPrune, noMerge, lockFinal bool
	c.str("origin-file", 0, &origin, "FILENAME", "Specify origin file")
	c.flag("retain", 0, &retain, "Do not delete previous deployments")
	c.flag("stage", 0, &stage, "Complete deployment at OS shutdown")
	c.flag("lock-finalization", 0, &lockFinal, "Prevent automatic deployment finalization on shutdown")
	c.flag("retain-pending", 0, &retainPending, "Do not delete pending deployments")
	c.flag("retain-rollback", 0, &retainRollback, "Do not delete rollback deployments")
	c.flag("not-as-default", 0, &notDefault, "Append rather than prepend new deployment")
	c.flag("no-prune", 0, &noPrune, "Don't prune the repo when done")
	c.flag("no-merge", 0, &noMerge, "Do not apply configuration (/etc and kernel arguments) from booted deployment")
	c.flag("karg-proc-cmdline", 0, &procCmdline, "Import current /proc/cmdline")
	c.strs("karg", 0, &kargs, "NAME=VALUE", "Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name")
	c.strs("karg-append", 0, &kargsAppend, "NAME=VALUE", "Append kernel argument; useful with e.g. console= that can be used multiple times")
	c.strs("karg-delete", 0, &kargsDelete, "NAME=VALUE", "Delete kernel argument if exists")
	c.strs("overlay-initrd", 0, &overlays, "PATH", "Overlay iniramfs file")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	for name, set := range map[string]bool{"--origin-file": origin != "", "--retain-pending": retainPending, "--retain-rollback": retainRollback,
		"--not-as-default": notDefault, "--no-merge": noMerge, "--overlay-initrd": len(overlays) > 0, "--lock-finalization": lockFinal} {
		if set {
			return fmt.Errorf("ostree admin deploy %s: not implemented by os-update", name)
		}
	}
	if len(pos) < 1 {
		return c.usageError(e, "Must specify REFSPEC")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	if stage && s.Booted == nil {
		return errors.New("Cannot stage deployment: Not currently booted into an OSTree system")
	}
	osname, err := c.stateroot(s)
	if err != nil {
		return err
	}
	opts := sysroot.DeployOptions{OS: osname, Rev: pos[0], Kargs: kargs, KargsAppend: kargsAppend, Stage: stage, Retain: retain}
	if kargs == nil && len(kargsAppend) > 0 {
		opts.Kargs = nil
	}
	if procCmdline {
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return err
		}
		opts.BaseKargs = bootloader.ParseKargs(string(b)).Without("ostree").Without("BOOT_IMAGE").Without("initrd")
	}
	if len(kargsDelete) > 0 {
		var base bootloader.Kargs
		if merge := s.MergeDeployment(osname); merge != nil {
			base = append(base, merge.Kargs...)
		}
		if opts.BaseKargs != nil {
			base = opts.BaseKargs
		}
		for _, a := range kargsDelete {
			if base, err = base.Delete(a); err != nil {
				return err
			}
		}
		opts.BaseKargs = base
	}
	if _, err := resolve(s.Repo(), pos[0]); err != nil {
		return err
	}
	return deploy(ctx, e, s, opts)
}

func deploy(ctx context.Context, e *env, s *sysroot.Sysroot, opts sysroot.DeployOptions) error {
	before := len(s.Deployments)
	res, err := s.Deploy(ctx, opts)
	if err != nil {
		return err
	}
	// As libostree does: systemd's ConditionNeedsUpdate= units run again
	// on the new deployment, and watchers of ostree/deploy see a change.
	d := res.Deployment
	for _, p := range []string{filepath.Join(s.Path, "ostree/deploy", d.OS, "var/.updated"), filepath.Join(s.Path, "ostree/deploy", d.OS, "deploy", d.Name(), "etc/.updated")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	now := time.Now()
	if err := os.Chtimes(filepath.Join(s.Path, "ostree/deploy"), now, now); err != nil {
		return err
	}
	if opts.Stage {
		return nil
	}
	e.printf("Transaction complete; bootconfig swap: yes; bootversion: boot.%d.%d, deployment count change: %d\n",
		s.BootVersion, s.SubBootVersion, len(s.Deployments)-before)
	return nil
}

func adminStatus(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("status", "", "List deployments", false)
	var verify, skipSignatures, isDefault, json bool
	c.flag("verify", 'V', &verify, "Print the commit verification status")
	c.flag("skip-signatures", 'S', &skipSignatures, "Skip signatures in output")
	c.flag("is-default", 'D', &isDefault, "Output \"default\" if booted into the default deployment; otherwise \"not-default\"")
	c.flag("json", 0, &json, "Output in JSON format")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	if verify || isDefault || json {
		return errors.New("ostree admin status --verify/--is-default/--json: not implemented by os-update")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	st := s.Status()
	if len(st.Deployments) == 0 {
		e.printf("No deployments.\n")
		return nil
	}
	for _, d := range st.Deployments {
		mark := " "
		if d.Booted {
			mark = "*"
		}
		suffix := ""
		switch {
		case d.Staged:
			suffix = " (staged)"
		case s.Booted != nil && d.Pending:
			suffix = " (pending)"
		case s.Booted != nil && d.Rollback:
			suffix = " (rollback)"
		}
		e.printf("%s %s %s.%d%s\n", mark, d.OS, d.Commit, d.Serial, suffix)
		if d.Version != "" {
			e.printf("    Version: %s\n", d.Version)
		}
		if d.Pinned() {
			e.printf("    Pinned: yes\n")
		}
		if ref := d.Refspec(); ref != "" {
			e.printf("    origin refspec: %s\n", ref)
		} else {
			e.printf("    origin: none\n")
		}
	}
	return nil
}

// deploymentIndex parses an INDEX argument.
func deploymentIndex(s *sysroot.Sysroot, arg string) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return 0, fmt.Errorf("Invalid index: %s", arg)
	}
	if n < 0 || n >= len(s.Deployments) {
		return 0, fmt.Errorf("Out of range deployment index %d, expected < %d", n, len(s.Deployments))
	}
	return n, nil
}

func adminUndeploy(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("undeploy", "INDEX", "Delete deployment INDEX", false)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "INDEX must be specified")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := deploymentIndex(s, pos[0])
	if err != nil {
		return err
	}
	d := s.Deployments[n]
	if s.Booted != nil && d.OS == s.Booted.OS && d.Commit == s.Booted.Commit && d.Serial == s.Booted.Serial {
		return fmt.Errorf("Cannot undeploy currently booted deployment %d", n)
	}
	if _, err := s.Undeploy(ctx, d.OS+"/"+d.Name()); err != nil {
		return err
	}
	e.printf("Deleted deployment %s\n", d.Name())
	return nil
}

func adminCleanup(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("cleanup", "", "Delete untagged deployments and repository objects", false)
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Cleanup(ctx, true)
	return err
}

func adminPin(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("pin", "INDEX", "Change the \"pinning\" state of a deployment", false)
	var unpin bool
	c.flag("unpin", 'u', &unpin, "Unset pin")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "INDEX must be specified")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, a := range pos {
		n, err := deploymentIndex(s, a)
		if err != nil {
			return err
		}
		d := s.Deployments[n]
		if d.Pinned() == !unpin {
			e.printf("Deployment %s is already %s\n", a, map[bool]string{true: "pinned", false: "unpinned"}[!unpin])
			continue
		}
		if err := s.SetPinned(n, !unpin); err != nil {
			return err
		}
		e.printf("Deployment %s is now %s\n", a, map[bool]string{true: "pinned", false: "unpinned"}[!unpin])
	}
	return nil
}

// pullOrigin pulls refspec ("remote:ref", or a local ref that needs no
// pull) into the sysroot repository and returns the commit.
func pullOrigin(ctx context.Context, r *repo.Repo, refspec string, timestampCheck bool) error {
	name, ref, err := repo.ParseRefspec(refspec)
	if err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	st := &remote.Store{Repo: r}
	rem, err := getRemote(st, name)
	if err != nil {
		return err
	}
	trustGlobalKeys(rem)
	if strings.HasPrefix(rem.URL, "file://") && !isArchiveAt(strings.TrimPrefix(rem.URL, "file://")) {
		src, err := repo.Open(strings.TrimPrefix(rem.URL, "file://"))
		if err != nil {
			return err
		}
		defer src.Close()
		return pullLocalRefs(ctx, &env{stdout: discard{}, stderr: discard{}}, src, r, []string{ref}, name, 0, false)
	}
	src, err := pull.FromRemote(st, rem)
	if err != nil {
		return err
	}
	_, err = pull.Pull(ctx, r, src, pull.Options{Refs: []string{ref}, TimestampCheck: timestampCheck})
	if err != nil && timestampCheck && strings.Contains(err.Error(), "refusing a downgrade") {
		return fmt.Errorf("Upgrade target is chronologically older than the current commit; use --allow-downgrade to permit (%w)", err)
	}
	return err
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func adminUpgrade(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("upgrade", "", "Construct new tree from current origin and deploy it, if it changed", true)
	var reboot, allowDowngrade, pullOnly, deployOnly, stage bool
	var override string
	c.flag("reboot", 'r', &reboot, "Reboot after a successful upgrade")
	c.flag("allow-downgrade", 0, &allowDowngrade, "Permit deployment of chronologically older trees")
	c.str("override-commit", 0, &override, "CHECKSUM", "Deploy CHECKSUM instead of the latest tree")
	c.flag("pull-only", 0, &pullOnly, "Do not create a new deployment, just download")
	c.flag("deploy-only", 0, &deployOnly, "Do not download latest ostree and AppStream data, just deploy")
	c.flag("stage", 0, &stage, "Complete deployment at OS shutdown")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	if reboot {
		return errors.New("ostree admin upgrade --reboot: not implemented by os-update")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	osname, err := c.stateroot(s)
	if err != nil {
		return err
	}
	merge := s.MergeDeployment(osname)
	if merge == nil {
		return fmt.Errorf("No previous deployment for OS '%s'", osname)
	}
	refspec := merge.Refspec()
	if refspec == "" {
		return fmt.Errorf("No origin/refspec or origin/baserefspec in current deployment origin; cannot upgrade via ostree")
	}
	if merge.Origin != nil && merge.Origin.String("origin", "unconfigured-state", "") != "" {
		return errors.New(merge.Origin.String("origin", "unconfigured-state", ""))
	}
	r := s.Repo()
	if !deployOnly && override == "" {
		if err := pullOrigin(ctx, r, refspec, !allowDowngrade); err != nil {
			return err
		}
	}
	if pullOnly {
		return nil
	}
	var target string
	if override != "" {
		target = override
	} else {
		target = refspec
	}
	sum, err := resolve(r, target)
	if err != nil {
		return err
	}
	if sum == merge.Commit {
		e.printf("No update available.\n")
		return nil
	}
	if !allowDowngrade && override == "" {
		newC, err := r.LoadCommit(sum)
		if err != nil {
			return err
		}
		oldC, err := r.LoadCommit(merge.Commit)
		if err == nil && newC.Timestamp < oldC.Timestamp {
			return fmt.Errorf("Upgrade target revision '%s' timestamp (%s) is chronologically older than current revision '%s' (%s); use --allow-downgrade to permit",
				sum, time.Unix(int64(newC.Timestamp), 0).UTC().Format(time.RFC3339), merge.Commit, time.Unix(int64(oldC.Timestamp), 0).UTC().Format(time.RFC3339))
		}
	}
	return deploy(ctx, e, s, sysroot.DeployOptions{OS: osname, Commit: sum, OriginRefspec: refspec, Stage: stage})
}

func adminSwitch(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("switch", "REF", "Construct new tree from REFSPEC and deploy it", true)
	var reboot bool
	c.flag("reboot", 'r', &reboot, "Reboot after switching trees")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "REF must be specified")
	}
	if reboot {
		return errors.New("ostree admin switch --reboot: not implemented by os-update")
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	osname, err := c.stateroot(s)
	if err != nil {
		return err
	}
	merge := s.MergeDeployment(osname)
	if merge == nil {
		return fmt.Errorf("No previous deployment for OS '%s'", osname)
	}
	old := merge.Refspec()
	oldRemote, _, _ := repo.ParseRefspec(old)
	refspec := pos[0]
	if !strings.Contains(refspec, ":") && oldRemote != "" {
		// A bare ref keeps the current remote, as ostree does.
		refspec = oldRemote + ":" + refspec
	}
	if strings.HasSuffix(refspec, ":") {
		_, oldRef, _ := repo.ParseRefspec(old)
		refspec += oldRef
	}
	if refspec == old {
		return fmt.Errorf("Old and new refs are equal: %s", refspec)
	}
	if err := pullOrigin(ctx, s.Repo(), refspec, false); err != nil {
		return err
	}
	sum, err := resolve(s.Repo(), refspec)
	if err != nil {
		return err
	}
	return deploy(ctx, e, s, sysroot.DeployOptions{OS: osname, Commit: sum, OriginRefspec: refspec})
}

// setKargs gives the deployment at index exactly the arguments want.
func setKargs(ctx context.Context, s *sysroot.Sysroot, index int, want bootloader.Kargs) error {
	cur := s.Deployments[index].Kargs
	if cur.Equal(want) {
		return nil
	}
	_, err := s.SetKargs(ctx, index, sysroot.KargsEdit{Delete: append([]string{}, cur...), Append: append([]string{}, want...)})
	return err
}

func adminInstutil(ctx context.Context, e *env, args []string) error {
	cmds := []namedCommand{
		{"set-kargs", command{"Set new kernel command line arguments(Not stable)", instutilSetKargs}},
		{"selinux-ensure-labeled", command{"Relabel all or part of a deployment", notImplemented("admin instutil selinux-ensure-labeled")}},
		{"grub2-generate", command{"Generate GRUB2 configuration from given BLS entries", notImplemented("admin instutil grub2-generate")}},
	}
	return dispatch(ctx, e, "admin instutil", cmds, nil, args)
}

func instutilSetKargs(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("instutil set-kargs", "ARGS...", "Set new kernel command line arguments(Not stable)", false)
	var procCmdline, merge bool
	var replace, appends []string
	c.flag("import-proc-cmdline", 0, &procCmdline, "Import current /proc/cmdline")
	c.flag("merge", 0, &merge, "Merge with previous command line")
	c.strs("replace", 0, &replace, "NAME=VALUE", "Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name")
	c.strs("append", 0, &appends, "NAME=VALUE", "Append kernel argument; useful with e.g. console= that can be used multiple times")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	if len(s.Deployments) == 0 {
		return errors.New("Unable to find a deployment in sysroot")
	}
	index := 0
	if s.Booted != nil {
		for i, d := range s.Deployments {
			if d.OS == s.Booted.OS && d.Commit == s.Booted.Commit && d.Serial == s.Booted.Serial {
				index = i
			}
		}
	}
	var kargs bootloader.Kargs
	switch {
	case procCmdline:
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return err
		}
		kargs = bootloader.ParseKargs(string(b)).Without("ostree").Without("BOOT_IMAGE").Without("initrd")
	case merge:
		kargs = append(kargs, s.Deployments[index].Kargs...)
	}
	for _, a := range replace {
		kargs = kargs.Replace(a)
	}
	for _, a := range appends {
		kargs = kargs.Append(a)
	}
	// Plain arguments are appended (to nothing, without --merge).
	for _, a := range pos {
		kargs = kargs.Append(a)
	}
	return setKargs(ctx, s, index, kargs)
}

func adminKargs(ctx context.Context, e *env, args []string) error {
	cmds := []namedCommand{
		{"edit-in-place", command{"Set new kernel command line arguments in place (applies to all deployments by default)", kargsEditInPlace}},
	}
	return dispatch(ctx, e, "admin kargs", cmds, nil, args)
}

func kargsEditInPlace(ctx context.Context, e *env, args []string) error {
	c := newAdminCmd("kargs edit-in-place", "", "Set new kernel command line arguments in place (applies to all deployments by default)", false)
	var appendIfMissing []string
	c.strs("append-if-missing", 0, &appendIfMissing, "NAME=VALUE", "Append kernel arguments if they do not exist")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	s, err := c.open(e)
	if err != nil {
		return err
	}
	defer s.Close()
	for i := range s.Deployments {
		kargs := append(bootloader.Kargs{}, s.Deployments[i].Kargs...)
		for _, a := range appendIfMissing {
			present := false
			for _, k := range kargs {
				present = present || k == a
			}
			if !present {
				kargs = kargs.Append(a)
			}
		}
		if err := setKargs(ctx, s, i, kargs); err != nil {
			return err
		}
	}
	return nil
}
