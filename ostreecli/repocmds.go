package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/internal/ostreefmt"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
	"github.com/osupdate/os-update/sysroot"
)

// openRepo opens the repository the way ostree finds it: --repo, then
// $OSTREE_REPO, then the current directory if it is one, then the
// sysroot's /ostree/repo.
func (c *cmdOptions) openRepo() (*repo.Repo, error) {
	p := c.repoPath
	if p == "" {
		p = os.Getenv("OSTREE_REPO")
	}
	if p == "" {
		if isRepoDir(".") {
			p = "."
		} else if isRepoDir("/ostree/repo") {
			p = "/ostree/repo"
		} else {
			return nil, errors.New("Command requires a --repo argument")
		}
	}
	r, err := repo.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening repo: %w", err)
	}
	return r, nil
}

func isRepoDir(p string) bool {
	fi, err := os.Stat(filepath.Join(p, "objects"))
	if err != nil || !fi.IsDir() {
		return false
	}
	_, err = os.Stat(filepath.Join(p, "config"))
	return err == nil
}

// resolve resolves a revision with ostree's error text for a missing one.
// Like libostree, a ref not found under refs/heads is looked up among
// every remote's refs (REF is found as REMOTE:REF).
func resolve(r *repo.Repo, rev string) (object.Checksum, error) {
	c, err := r.ResolveRev(rev)
	if err == nil {
		return c, nil
	}
	if !strings.Contains(rev, ":") {
		name := strings.TrimRight(rev, "^")
		refs, _ := r.ListRefs()
		for _, ref := range refs {
			if ref.Remote != "" && ref.Name == name {
				if c, err := r.ResolveRev(ref.Remote + ":" + rev); err == nil {
					return c, nil
				}
			}
		}
	}
	return c, fmt.Errorf("Refspec '%s' not found", rev)
}

func runInit(ctx context.Context, e *env, args []string) error {
	c := newCmd("init", "", "Initialize a new empty repository", true)
	mode := "bare"
	var collection string
	c.str("mode", 0, &mode, "MODE", "Initialize repository in given mode (bare, bare-user, bare-user-only, archive)")
	c.str("collection-id", 0, &collection, "COLLECTION-ID", "Globally unique ID for this repository as an collection of refs for redistribution to other repositories")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	if c.repoPath == "" {
		return errors.New("Command requires a --repo argument")
	}
	m, err := repo.ParseMode(mode)
	if err != nil {
		return fmt.Errorf("Invalid mode '%s' in repository configuration", mode)
	}
	if isRepoDir(c.repoPath) {
		// ostree init on an existing repository is a no-op.
		return nil
	}
	r, err := repo.Init(c.repoPath, m)
	if err != nil {
		return err
	}
	defer r.Close()
	if collection != "" {
		r.Config().Set("core", "collection-id", collection)
		return r.WriteConfig()
	}
	return nil
}

// parseTimestamp parses --timestamp like ostree: a date g_date_time can
// read, or seconds since the epoch.
func parseTimestamp(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(strings.TrimPrefix(s, "@"), 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	// libostree reads dates with gnulib's parse_datetime, as GNU date -d
	// does ("October 25 1985", "1 week ago"): ask date for the rest.
	out, err := exec.Command("date", "-u", "-d", s, "+%s").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("Could not parse '%s'", s)
}

func runCommit(ctx context.Context, e *env, args []string) error {
	c := newCmd("commit", "[PATH]", "Commit a new revision", true)
	var branch, subject, body, bodyFile, parent, timestamp, gpgKey, gpgHome, base, fsyncPolicy string
	var signKeys []string
	var signType string
	var orphan, noBindings, bootable, noXattrs, canonical, consume, skipUnchanged, tableOutput, generateSizes, linkSpeedup, devino, editor, roExec bool
	var trees, metaStr, metaAny, keepMeta, detachedStr, bindRefs []string
	ownerUID, ownerGID := -1, -1
	c.str("parent", 0, &parent, "COMMIT", "Parent commit checksum, or \"none\"")
	c.str("subject", 's', &subject, "SUBJECT", "One line subject")
	c.str("body", 'm', &body, "BODY", "Full description")
	c.str("body-file", 'F', &bodyFile, "FILE", "Commit message from FILE path")
	c.flag("editor", 'e', &editor, "Use an editor to write the commit message")
	c.str("branch", 'b', &branch, "BRANCH", "Branch")
	c.flag("orphan", 0, &orphan, "Create a commit without writing a ref")
	c.flag("no-bindings", 0, &noBindings, "Do not write any ref bindings")
	c.strs("bind-ref", 0, &bindRefs, "BRANCH", "Add a ref to ref binding commit metadata")
	c.str("base", 0, &base, "REV", "Start from the given commit as a base (no modifiers apply)")
	c.strs("tree", 0, &trees, "dir=PATH or tar=TARFILE or ref=COMMIT", "Overlay the given argument as a tree")
	c.strs("add-metadata-string", 0, &metaStr, "KEY=VALUE", "Add a key/value pair to metadata")
	c.strs("add-metadata", 0, &metaAny, "KEY=VALUE", "Add a key/value pair to metadata, where the KEY is a string, and VALUE is in GVariant Text Format")
	c.strs("keep-metadata", 0, &keepMeta, "KEY", "Keep metadata KEY and its associated VALUE from parent")
	c.strs("add-detached-metadata-string", 0, &detachedStr, "KEY=VALUE", "Add a key/value pair to detached metadata")
	c.integer("owner-uid", 0, &ownerUID, "UID", "Set file ownership user id")
	c.integer("owner-gid", 0, &ownerGID, "GID", "Set file ownership group id")
	c.flag("canonical-permissions", 0, &canonical, "Canonicalize permissions in the same way bare-user does for hardlinked files")
	c.flag("bootable", 0, &bootable, "Flag this commit as a bootable OSTree (e.g. contains a Linux kernel)")
	c.flag("mode-ro-executables", 0, &roExec, "Ensure executable files are not writable")
	c.flag("no-xattrs", 0, &noXattrs, "Do not import extended attributes")
	c.flag("link-checkout-speedup", 0, &linkSpeedup, "Optimize for commits of trees composed of hardlinks into the repository")
	c.flag("devino-canonical", 'I', &devino, "Assume hardlinked objects are unmodified.  Implies --link-checkout-speedup")
	c.flag("skip-if-unchanged", 0, &skipUnchanged, "If the contents are unchanged from previous commit, do nothing")
	c.flag("consume", 0, &consume, "Consume (delete) content after commit (for local directories)")
	c.flag("table-output", 0, &tableOutput, "Output more information in a KEY: VALUE format")
	c.str("gpg-sign", 0, &gpgKey, "KEY-ID", "GPG Key ID to sign the commit with")
	c.str("gpg-homedir", 0, &gpgHome, "HOMEDIR", "GPG Homedir to use when looking for keyrings")
	c.strs("sign", 0, &signKeys, "KEY_ID", "Sign the commit with")
	c.str("sign-type", 0, &signType, "NAME", "Signature type to use (defaults to 'ed25519')")
	c.flag("generate-sizes", 0, &generateSizes, "Generate size information along with commit metadata")
	c.str("fsync", 0, &fsyncPolicy, "POLICY", "Specify how to invoke fsync()")
	c.str("timestamp", 0, &timestamp, "TIMESTAMP", "Override the timestamp of the commit")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	switch {
	case editor:
		return errors.New("ostree commit --editor: not implemented by os-update")
	case base != "":
		return errors.New("ostree commit --base: not implemented by os-update")
	case roExec:
		return errors.New("ostree commit --mode-ro-executables: not implemented by os-update")
	case generateSizes:
		return errors.New("ostree commit --generate-sizes: not implemented by os-update")
	case len(keepMeta) > 0:
		return errors.New("ostree commit --keep-metadata: not implemented by os-update")
	case len(bindRefs) > 0:
		return errors.New("ostree commit --bind-ref: not implemented by os-update")
	}
	if branch == "" && !orphan {
		return errors.New("A branch must be specified with --branch, or use --orphan")
	}
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return err
		}
		body = string(b)
	}
	dir := "."
	switch {
	case len(trees) > 1:
		return errors.New("ostree commit with several --tree: not implemented by os-update")
	case len(trees) == 1:
		kind, p, _ := strings.Cut(trees[0], "=")
		if kind != "dir" {
			return fmt.Errorf("ostree commit --tree=%s=: not implemented by os-update", kind)
		}
		dir = p
		if len(pos) > 0 {
			return errors.New("Cannot specify both a directory argument and --tree")
		}
	case len(pos) == 1:
		dir = pos[0]
	case len(pos) > 1:
		return errors.New("Too many arguments")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	r.SetFsync(fsyncPolicy != "false" && fsyncPolicy != "none")
	opts := repo.CommitOptions{Branch: branch, Subject: subject, Body: body, NoBindings: noBindings || branch == ""}
	opts.NoXattrs = noXattrs || disableXattrs(r)
	opts.CanonicalPermissions = canonical
	if ownerUID >= 0 {
		u := uint32(ownerUID)
		opts.OwnerUID = &u
	}
	if ownerGID >= 0 {
		g := uint32(ownerGID)
		opts.OwnerGID = &g
	}
	switch {
	case parent == "none":
		opts.Orphan = true
	case parent != "":
		if opts.Parent, err = resolve(r, parent); err != nil {
			return err
		}
	case orphan:
		opts.Orphan = true
	}
	if timestamp != "" {
		if opts.Timestamp, err = parseTimestamp(timestamp); err != nil {
			return err
		}
	} else if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return errors.New("Parsing SOURCE_DATE_EPOCH: Numerical result out of range")
			}
			return fmt.Errorf("Failed to convert SOURCE_DATE_EPOCH='%s' to a number", s)
		}
		opts.Timestamp = time.Unix(n, 0).UTC()
	}
	for _, kv := range metaStr {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("Missing '=' in KEY=VALUE metadata '%s'", kv)
		}
		opts.Metadata.Set(k, gvariant.NewVariant("s", v))
	}
	for _, kv := range metaAny {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("Missing '=' in KEY=VALUE metadata '%s'", kv)
		}
		val, err := parseVariantText(v)
		if err != nil {
			return err
		}
		opts.Metadata.Set(k, val)
	}
	if bootable {
		kver, err := sysroot.KernelVersion(dir)
		if err != nil {
			return fmt.Errorf("--bootable: %w", err)
		}
		commitmeta.SetBootable(&opts.Metadata, kver)
	}
	var prev object.Checksum
	if branch != "" {
		prev, _ = r.ReadRef("", branch)
	}
	sum, err := r.CommitDir(ctx, dir, opts)
	if err != nil {
		return err
	}
	if skipUnchanged && prev != (object.Checksum{}) {
		// The tree is the same: the branch goes back to its commit (the
		// new commit object is left for prune).
		if same, _ := sameTree(r, prev, sum); same {
			if err := r.SetRef("", branch, prev); err != nil {
				return err
			}
			sum = prev
		}
	}
	if len(detachedStr) > 0 {
		var m object.Metadata
		if old, err := r.ReadCommitMeta(sum); err == nil {
			m = old
		}
		for _, kv := range detachedStr {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("Missing '=' in KEY=VALUE metadata '%s'", kv)
			}
			m.Set(k, gvariant.NewVariant("s", v))
		}
		if err := writeCommitMeta(r, sum, m); err != nil {
			return err
		}
	}
	if gpgKey != "" {
		s, err := sign.GPGSignerFromHomedir(gpgHome, gpgKey)
		if err != nil {
			return err
		}
		if err := sign.SignCommit(r, sum, s); err != nil {
			return err
		}
	}
	for _, k := range signKeys {
		s, err := ed25519Signer(signType, k)
		if err != nil {
			return err
		}
		if err := sign.SignCommit(r, sum, s); err != nil {
			return err
		}
	}
	if err := autoSummary(r, true); err != nil {
		return err
	}
	if consume {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if tableOutput {
		e.printf("Commit: %s\n", sum)
		return nil
	}
	e.printf("%s\n", sum)
	return nil
}

// disableXattrs reports the test suite's core.disable-xattrs setting.
func disableXattrs(r *repo.Repo) bool {
	v, _ := r.Config().Bool("core", "disable-xattrs", false)
	return v
}

func sameTree(r *repo.Repo, a, b object.Checksum) (bool, error) {
	ca, err := r.LoadCommit(a)
	if err != nil {
		return false, err
	}
	cb, err := r.LoadCommit(b)
	if err != nil {
		return false, err
	}
	return ca.RootTree == cb.RootTree && ca.RootMeta == cb.RootMeta, nil
}

// parseVariantText parses the GVariant text forms used on command lines,
// with libostree's wording for text it cannot read.
func parseVariantText(s string) (gvariant.Variant, error) {
	v, err := gvariant.ParseText(s)
	if errors.Is(err, gvariant.ErrUnknownText) {
		return gvariant.Variant{}, fmt.Errorf("0-%d:expected value", len(strings.TrimSpace(s)))
	}
	return v, err
}

func runCheckout(ctx context.Context, e *env, args []string) error {
	c := newCmd("checkout", "COMMIT [DESTINATION]", "Check out a commit into a filesystem tree", true)
	var opts repo.CheckoutOptions
	var unionAdd, unionIdentical, whiteouts, passthrough, allowNoent, fromStdin, requireHL, bareuseronlyDirs, disableCache bool
	var fromFile, fsyncPolicy, skipList, selinuxPolicy, selinuxPrefix string
	c.flag("user-mode", 'U', &opts.UserMode, "Do not change file ownership or initialize extended attributes")
	c.flag("disable-cache", 0, &disableCache, "Do not update or use the internal repository uncompressed object cache")
	c.str("subpath", 0, &opts.Subpath, "PATH", "Checkout sub-directory PATH")
	c.flag("union", 0, &opts.Union, "Keep existing directories, overwrite existing files")
	c.flag("union-add", 0, &unionAdd, "Keep existing files/directories, only add new")
	c.flag("union-identical", 0, &unionIdentical, "When layering checkouts, error out if a file would be replaced with a different version, but add new files and directories")
	c.flag("whiteouts", 0, &whiteouts, "Process 'whiteout' (Docker style) entries")
	c.flag("process-passthrough-whiteouts", 0, &passthrough, "Enable overlayfs whiteout extraction into char 0:0 devices")
	c.flag("allow-noent", 0, &allowNoent, "Do nothing if specified path does not exist")
	c.flag("from-stdin", 0, &fromStdin, "Process many checkouts from standard input")
	c.str("from-file", 0, &fromFile, "FILE", "Process many checkouts from input file")
	c.str("fsync", 0, &fsyncPolicy, "POLICY", "Specify how to invoke fsync()")
	c.flag("require-hardlinks", 'H', &requireHL, "Do not fall back to full copies if hardlinking fails")
	c.flag("force-copy", 'C', &opts.Copy, "Never hardlink (but may reflink if available)")
	c.flag("bareuseronly-dirs", 'M', &bareuseronlyDirs, "Suppress mode bits outside of 0775 for directories (suid, world writable, etc.)")
	c.str("skip-list", 0, &skipList, "FILE", "File containing list of files to skip")
	c.str("selinux-policy", 0, &selinuxPolicy, "PATH", "Set SELinux labels based on policy in root filesystem PATH (may be /); implies --force-copy")
	c.str("selinux-prefix", 0, &selinuxPrefix, "PREFIX", "When setting SELinux labels, prefix all paths by PREFIX")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	for name, set := range map[string]bool{"--union-add": unionAdd, "--union-identical": unionIdentical, "--whiteouts": whiteouts,
		"--process-passthrough-whiteouts": passthrough, "--from-stdin": fromStdin, "--from-file": fromFile != "",
		"--bareuseronly-dirs": bareuseronlyDirs, "--skip-list": skipList != "", "--selinux-policy": selinuxPolicy != "",
		"--require-hardlinks": requireHL} {
		if set {
			return fmt.Errorf("ostree checkout %s: not implemented by os-update", name)
		}
	}
	if len(pos) < 1 {
		return c.usageError(e, "COMMIT must be specified")
	}
	if len(pos) > 2 {
		return c.usageError(e, "Too many arguments")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := resolve(r, pos[0])
	if err != nil {
		return err
	}
	dest := pos[0]
	if len(pos) == 2 {
		dest = pos[1]
	}
	if allowNoent && opts.Subpath != "" {
		v, err := r.ViewCommit(sum)
		if err != nil {
			return err
		}
		if _, err := v.Lookup(opts.Subpath); err != nil {
			return nil
		}
	}
	if opts.Union {
		// ostree merges into an existing directory; ours wants it absent
		// only without --union, which is the same contract.
	} else if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("Failed to check out: %s: File exists", dest)
	}
	return r.Checkout(ctx, sum, dest, opts)
}

func runFsck(ctx context.Context, e *env, args []string) error {
	c := newCmd("fsck", "", "Check the repository for consistency", true)
	var tombstones, quiet, all, del, verifyBindings, verifyBackRefs bool
	c.flag("add-tombstones", 0, &tombstones, "Add tombstones for missing commits")
	c.flag("quiet", 'q', &quiet, "Only print error messages")
	c.flag("all", 'a', &all, "Don't stop on first error")
	c.flag("delete", 0, &del, "Remove corrupted objects")
	c.flag("verify-bindings", 0, &verifyBindings, "Verify ref bindings")
	c.flag("verify-back-refs", 0, &verifyBackRefs, "Verify back-references (implies --verify-bindings)")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	if tombstones || verifyBindings || verifyBackRefs {
		return errors.New("ostree fsck --add-tombstones/--verify-bindings: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	if !quiet {
		e.printf("Validating refs...\nValidating refs in collections...\nEnumerating commits...\n")
	}
	rep, err := r.Fsck(ctx, repo.FsckOptions{Delete: del})
	if err != nil {
		return err
	}
	if !quiet {
		e.printf("Verifying content integrity of %d commit objects...\n", rep.Commits)
	}
	for _, p := range rep.Partial {
		e.printf("Commit %s is partial\n", p)
	}
	deleted := map[object.Name]bool{}
	for _, n := range rep.Deleted {
		e.printf("Corrupted object %s deleted\n", n)
		deleted[n] = true
	}
	remaining := 0
	for _, p := range rep.Problems {
		if !deleted[p.Object] {
			fmt.Fprintf(e.stderr, "error: %s\n", p)
			remaining++
		}
	}
	if remaining > 0 {
		return exitCode(1)
	}
	if !quiet {
		e.printf("object fsck of %d commits completed successfully - no errors found.\n", rep.Commits)
	}
	return nil
}

func runPrune(ctx context.Context, e *env, args []string) error {
	c := newCmd("prune", "", "Search for unreachable objects", true)
	var opts repo.PruneOptions
	var keep string
	var deleteCommits, retain, onlyBranch []string
	var staticOnly, commitOnly bool
	opts.Depth = -1
	c.flag("no-prune", 0, &opts.DryRun, "Only display unreachable objects; don't delete")
	c.flag("refs-only", 0, &opts.RefsOnly, "Only compute reachability via refs")
	c.integer("depth", 0, &opts.Depth, "DEPTH", "Only traverse DEPTH parents for each commit (default: -1=infinite)")
	c.strs("delete-commit", 0, &deleteCommits, "COMMIT", "Specify a commit to delete")
	c.str("keep-younger-than", 0, &keep, "DATE", "Prune all commits older than the specified date")
	c.flag("static-deltas-only", 0, &staticOnly, "Change the behavior of delete-commit and keep-younger-than to prune only static deltas")
	c.strs("retain-branch-depth", 0, &retain, "BRANCH=DEPTH", "Additionally retain BRANCH=DEPTH commits")
	c.strs("only-branch", 0, &onlyBranch, "BRANCH", "Only prune BRANCH (may be specified multiple times)")
	c.flag("commit-only", 0, &commitOnly, "Only traverse and delete commit objects.")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	if staticOnly || len(retain) > 0 || len(onlyBranch) > 0 || commitOnly {
		return errors.New("ostree prune --static-deltas-only/--retain-branch-depth/--only-branch/--commit-only: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	if keep != "" {
		t, err := parseTimestamp(keep)
		if err != nil {
			return fmt.Errorf("Could not parse '%s'", keep)
		}
		opts.KeepYoungerThan = t
	}
	for _, d := range deleteCommits {
		sum, err := resolve(r, d)
		if err != nil {
			return err
		}
		opts.DeleteCommits = append(opts.DeleteCommits, sum)
	}
	res, err := r.Prune(ctx, opts)
	if err != nil {
		return err
	}
	e.printf("Total objects: %d\n", res.Total)
	if res.Pruned == 0 {
		e.printf("No unreachable objects\n")
	} else if opts.DryRun {
		e.printf("Would delete: %d objects, freeing %s\n", res.Pruned, formatSize(uint64(res.BytesFree)))
	} else {
		e.printf("Deleted %d objects, %s freed\n", res.Pruned, formatSize(uint64(res.BytesFree)))
	}
	return nil
}

// formatSize renders a size like g_format_size: "158 bytes", "1.2 kB".
func formatSize(n uint64) string {
	if n < 1000 {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB", "PB"} {
		f /= 1000
		if f < 1000 {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EB", f/1000)
}

func printCommit(e *env, sum object.Checksum, cm *object.Commit) {
	ostreefmt.WriteCommit(e.stdout, sum, cm)
}

func runLog(ctx context.Context, e *env, args []string) error {
	c := newCmd("log", "REV", "Show log starting at commit or ref", true)
	var raw bool
	c.flag("raw", 0, &raw, "Show raw variant data")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "A rev argument is required")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := resolve(r, pos[0])
	if err != nil {
		return err
	}
	for {
		cm, err := r.LoadCommit(sum)
		if err != nil {
			return err
		}
		printCommit(e, sum, cm)
		if !cm.HasParent() {
			return nil
		}
		if ok, _ := r.HasObject(cm.Parent, object.TypeCommit); !ok {
			e.printf("<< History beyond this commit not fetched >>\n")
			return nil
		}
		sum = cm.Parent
	}
}

func runShow(ctx context.Context, e *env, args []string) error {
	c := newCmd("show", "OBJECT", "Output a metadata object", true)
	var related, printSizes, raw, noByteswap bool
	var variantType, key, dkey, gpgHome, gpgRemote string
	c.flag("print-related", 0, &related, "Show the \"related\" commits")
	c.str("print-variant-type", 0, &variantType, "TYPE", "Memory map OBJECT (in this case a filename) to the GVariant type string")
	c.str("print-metadata-key", 0, &key, "KEY", "Print string value of metadata key")
	c.str("print-detached-metadata-key", 0, &dkey, "KEY", "Print string value of detached metadata key")
	c.flag("print-sizes", 0, &printSizes, "Show the commit size metadata")
	c.flag("raw", 0, &raw, "Show raw variant data")
	c.flag("no-byteswap", 'B', &noByteswap, "Do not automatically convert variant data from big endian")
	c.str("gpg-homedir", 0, &gpgHome, "HOMEDIR", "GPG Homedir to use when looking for keyrings")
	c.str("gpg-verify-remote", 0, &gpgRemote, "REMOTE", "Use REMOTE name for GPG configuration")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "An object argument is required")
	}
	if related || variantType != "" || printSizes || raw {
		return errors.New("ostree show --print-related/--print-variant-type/--print-sizes/--raw: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	for _, rev := range pos {
		sum, err := resolve(r, rev)
		if err != nil {
			return err
		}
		cm, err := r.LoadCommit(sum)
		if err != nil {
			return err
		}
		switch {
		case key != "":
			v, ok := cm.Metadata.Get(key)
			if !ok {
				return fmt.Errorf("No such metadata key '%s'", key)
			}
			e.printf("%s\n", gvariant.Format(v.Value, v.Type))
		case dkey != "":
			m, err := r.ReadCommitMeta(sum)
			if err != nil {
				return err
			}
			v, ok := m.Get(dkey)
			if !ok {
				return fmt.Errorf("No such detached metadata key '%s'", dkey)
			}
			e.printf("%s\n", gvariant.Format(v.Value, v.Type))
		default:
			printCommit(e, sum, cm)
			if err := printSignatures(e, r, sum, gpgHome, gpgRemote); err != nil {
				return err
			}
		}
	}
	return nil
}

// treeLine renders one entry as ostree ls prints it.
func treeLine(r *repo.Repo, v *repo.TreeView, te repo.TreeEntry, checksums, xattrs bool) (string, error) {
	var typ byte
	var mode, uid, gid uint32
	var size uint64
	var xs []object.Xattr
	var target string
	if te.IsDir {
		m, err := r.LoadDirMeta(te.Tree.DirMeta)
		if err != nil {
			return "", err
		}
		typ, mode, uid, gid, xs = 'd', m.Mode, m.UID, m.GID, m.Xattrs
	} else {
		content, err := v.Open(te)
		if err != nil {
			return "", err
		}
		content.Close()
		h := content.Header
		typ, mode, uid, gid, xs, size = '-', h.Mode, h.UID, h.GID, h.Xattrs, content.Size
		if h.IsSymlink() {
			typ, target = 'l', h.SymlinkTarget
		}
	}
	s := fmt.Sprintf("%c0%04o %d %d %6d ", typ, mode&0o7777, uid, gid, size)
	if checksums {
		if te.IsDir {
			s += te.Tree.DirTree.String() + " " + te.Tree.DirMeta.String() + " "
		} else {
			s += te.File.String() + " "
		}
	}
	if xattrs {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = fmt.Sprintf("(%s, %s)", gvariant.Format(x.Name, gvariant.MustParseType("ay")), gvariant.Format(x.Value, gvariant.MustParseType("ay")))
		}
		s += "{ [" + strings.Join(parts, ", ") + "] } "
	}
	s += te.Path
	if target != "" {
		s += " -> " + target
	}
	return s, nil
}

func runLs(ctx context.Context, e *env, args []string) error {
	c := newCmd("ls", "COMMIT [PATH...]", "List file paths", true)
	var dirOnly, recursive, checksums, xattrs, nul bool
	c.flag("dironly", 'd', &dirOnly, "Do not recurse into directory arguments")
	c.flag("recursive", 'R', &recursive, "Print directories recursively")
	c.flag("checksum", 'C', &checksums, "Print checksum")
	c.flag("xattrs", 'X', &xattrs, "Print extended attributes")
	c.flag("nul-filenames-only", 0, &nul, "Print only filenames, NUL separated")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "An COMMIT argument is required")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := resolve(r, pos[0])
	if err != nil {
		return err
	}
	v, err := r.ViewCommit(sum)
	if err != nil {
		return err
	}
	paths := pos[1:]
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	for _, p := range paths {
		top, err := v.Lookup(p)
		if err != nil {
			return fmt.Errorf("No such file or directory: %s", p)
		}
		err = v.Walk(p, func(te repo.TreeEntry) error {
			if nul {
				fmt.Fprintf(e.stdout, "%s\x00", te.Path)
			} else {
				line, err := treeLine(r, v, te, checksums, xattrs)
				if err != nil {
					return err
				}
				e.printf("%s\n", line)
			}
			if te.IsDir && (dirOnly || te.Path != top.Path && !recursive) {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func runCat(ctx context.Context, e *env, args []string) error {
	c := newCmd("cat", "COMMIT PATH...", "Concatenate contents of files", true)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return c.usageError(e, "An COMMIT and at least one PATH argument are required")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := resolve(r, pos[0])
	if err != nil {
		return err
	}
	v, err := r.ViewCommit(sum)
	if err != nil {
		return err
	}
	for _, p := range pos[1:] {
		te, err := v.Lookup(p)
		if err != nil {
			return fmt.Errorf("No such file or directory: %s", p)
		}
		content, err := v.Open(te)
		if err != nil {
			return err
		}
		_, err = io.Copy(e.stdout, content)
		content.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func runRefs(ctx context.Context, e *env, args []string) (err error) {
	c := newCmd("refs", "[PREFIX]", "List refs", true)
	var del, list, alias, collections, force bool
	var create string
	c.flag("delete", 0, &del, "Delete refs which match PREFIX, rather than listing them")
	c.flag("list", 0, &list, "Do not remove the prefix from the refs")
	c.flag("alias", 'A', &alias, "If used with --create, create an alias, otherwise just list aliases")
	c.str("create", 0, &create, "NEWREF", "Create a new ref for an existing commit")
	c.flag("collections", 'c', &collections, "Enable listing collection IDs for refs")
	c.flag("force", 0, &force, "Overwrite existing refs when creating")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if alias || collections {
		return errors.New("ostree refs --alias/--collections: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	if create != "" {
		if len(pos) != 1 {
			return errors.New("You must specify an existing ref when creating a new ref")
		}
		sum, err := resolve(r, pos[0])
		if err != nil {
			return err
		}
		remote, ref, err := repo.ParseRefspec(create)
		if err == nil {
			err = repo.ValidateRef(ref)
		}
		if err != nil {
			return fmt.Errorf("Invalid ref name %s", create)
		}
		if _, err := r.ReadRef(remote, ref); err == nil && !force {
			return fmt.Errorf("--create specified but ref %s already exists", create)
		}
		if err := r.SetRef(remote, ref, sum); err != nil {
			return err
		}
		return autoSummary(r, false)
	}
	refs, err := r.ListRefs()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		pos = []string{""}
	}
	if del && pos[0] == "" {
		return errors.New("At least one PREFIX is required when deleting refs")
	}
	deleted := false
	defer func() {
		if deleted && err == nil {
			err = autoSummary(r, false)
		}
	}()
	for _, prefix := range pos {
		for _, ref := range refs {
			spec := ref.Refspec()
			if !refHasPrefix(spec, prefix) {
				continue
			}
			if del {
				if err := r.SetRef(ref.Remote, ref.Name, object.Checksum{}); err != nil {
					return err
				}
				deleted = true
				continue
			}
			if list || prefix == "" {
				e.printf("%s\n", spec)
			} else {
				e.printf("%s\n", strings.TrimPrefix(strings.TrimPrefix(spec, prefix), "/"))
			}
		}
	}
	return nil
}

// refHasPrefix matches ostree's prefix semantics: a whole ref, a directory
// of refs ("a/b" matches "a/b/c"), or a remote ("origin:" or "origin").
func refHasPrefix(spec, prefix string) bool {
	if prefix == "" || spec == prefix {
		return true
	}
	if strings.HasSuffix(prefix, ":") || strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(spec, prefix)
	}
	return strings.HasPrefix(spec, prefix+"/") || strings.HasPrefix(spec, prefix+":")
}

func runRevParse(ctx context.Context, e *env, args []string) error {
	c := newCmd("rev-parse", "REV", "Output the target of a rev", true)
	var single bool
	c.flag("single", 'S', &single, "If the repository has exactly one commit, then print it; any other case will result in an error")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	if single {
		var found []object.Checksum
		err := r.ListObjects(func(n object.Name) error {
			if n.Type == object.TypeCommit {
				found = append(found, n.Checksum)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(found) != 1 {
			return fmt.Errorf("Repository has %d commits, expected exactly one", len(found))
		}
		e.printf("%s\n", found[0])
		return nil
	}
	if len(pos) < 1 {
		return c.usageError(e, "REV must be specified")
	}
	for _, rev := range pos {
		sum, err := resolve(r, rev)
		if err != nil {
			return err
		}
		e.printf("%s\n", sum)
	}
	return nil
}

func runReset(ctx context.Context, e *env, args []string) error {
	c := newCmd("reset", "REF COMMIT", "Reset a REF to a previous COMMIT", true)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return c.usageError(e, "A ref and commit argument is required")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	remote, ref, err := repo.ParseRefspec(pos[0])
	if err != nil {
		return err
	}
	current, err := r.ReadRef(remote, ref)
	if err != nil {
		return fmt.Errorf("Refspec '%s' not found", pos[0])
	}
	target, err := resolve(r, pos[1])
	if err != nil {
		return err
	}
	_ = current // like ostree since 2017, any commit will do (not only an ancestor)
	if err := r.SetRef(remote, ref, target); err != nil {
		return err
	}
	return autoSummary(r, false)
}

func runConfig(ctx context.Context, e *env, args []string) error {
	c := newCmd("config", "(get KEY|set KEY VALUE|unset KEY)", "Change repo configuration settings", true)
	var group string
	c.str("group", 0, &group, "GROUP", "Group name")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return errors.New("OPERATION must be specified")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	split := func(i int) (string, string, error) {
		if group != "" {
			if len(pos) <= i {
				return "", "", errors.New("KEY must be specified")
			}
			return group, pos[i], nil
		}
		if len(pos) <= i {
			return "", "", errors.New("GROUP name, KEY and VALUE must be specified")
		}
		dot := strings.LastIndex(pos[i], ".")
		if dot <= 0 {
			return "", "", fmt.Errorf("Key %s must be of the form GROUP.NAME", pos[i])
		}
		return pos[i][:dot], pos[i][dot+1:], nil
	}
	cfg := r.Config()
	want := map[string]int{"get": 2, "set": 3, "unset": 2}[pos[0]]
	if want == 0 {
		return fmt.Errorf("Unknown operation %s", pos[0])
	}
	if len(pos) > want {
		return errors.New("Too many arguments given")
	}
	switch pos[0] {
	case "get":
		g, k, err := split(1)
		if err != nil {
			return err
		}
		v, ok := cfg.Get(g, k)
		if !ok {
			if !cfg.HasGroup(g) {
				return fmt.Errorf("Key file does not have group “%s”", g)
			}
			return fmt.Errorf("Key file does not have key “%s” in group “%s”", k, g)
		}
		e.printf("%s\n", v)
		return nil
	case "set":
		g, k, err := split(1)
		if err != nil {
			return err
		}
		if len(pos) < 3 {
			return errors.New("You must specify a value")
		}
		cfg.Set(g, k, pos[2])
		return r.WriteConfig()
	case "unset":
		g, k, err := split(1)
		if err != nil {
			return err
		}
		// A missing group or key is not an error.
		if _, ok := cfg.Get(g, k); !ok {
			return nil
		}
		cfg.Delete(g, k)
		return r.WriteConfig()
	}
	return fmt.Errorf("Unknown operation %s", pos[0])
}

// autoSummary regenerates the summary after a ref change when the
// repository asks for it: core.auto-update-summary, or, after a commit,
// core.commit-update-summary.
func autoSummary(r *repo.Repo, afterCommit bool) error {
	auto, _ := r.Config().Bool("core", "auto-update-summary", false)
	onCommit, _ := r.Config().Bool("core", "commit-update-summary", false)
	if !auto && !(afterCommit && onCommit) {
		return nil
	}
	_, err := summary.Update(r, summary.Options{})
	return err
}
