package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/compose/image"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// composeCommands are the top-level commands that build trees: compose.
func composeCommands() []command {
	return []command{
		{use: "compose", short: "build OS trees from RPM packages or a directory, images and disk images", group: groupBuild, long: `Build what hosts deploy: commits composed from RPM packages (tree) or a
directory (commit), OCI images of a commit (container-encapsulate) and
bootable disk images (image).`, sub: []command{
			{use: "tree TREEFILE", short: "compose a treefile of RPM packages into a commit", run: composeTree, long: `Compose the packages a treefile lists into a commit of its ref: resolve
them from its repositories (or pinned by --lockfile), install them, apply
the OSTree conventions, commit, and by default sign, update the summary
and generate a static delta from the previous commit.`},
			{use: "commit ROOTFS", short: "commit a root filesystem directory with the OSTree conventions", run: composeCommit, long: `Commit the root filesystem directory ROOTFS to --branch after applying the
OSTree conventions (/etc moved to /usr/etc, the content of /var turned
into tmpfiles.d lines, the kernel moved to /usr/lib/modules; see
docs/compose.md), then sign, update the summary and generate a delta as
compose tree does.`},
			{use: "container-encapsulate REF oci:PATH[:TAG]|oci-archive:PATH[:TAG]|docker://HOST/NAME:TAG", short: "write a commit as an OCI image (ostree container format)", run: composeEncapsulate, long: `Write the commit of REF as an OCI image in the ostree container format
(layers of the tree, the commit in its metadata), to an OCI layout
directory, an OCI archive or a registry. --max-layers splits the tree into
up to that many layers so that updates fetch only changed ones.`},
			{use: "image", short: "write a bootable disk image of a commit (MBR, ext4, extlinux)", run: composeImage, long: `Write a bootable disk image of --ref from the repository: an MBR disk with
one ext4 partition holding a sysroot with that commit deployed and a boot
loader (extlinux, or grub2 with --bootloader grub2), raw or qcow2. The
file appears only when complete.`},
		}},
	}
}

// publishFlags are the after-commit steps shared by compose tree/commit.
type publishFlags struct {
	signer    *signerFlags
	noSummary *bool
	noDelta   *bool
}

func addPublishFlags(f *flagSet) *publishFlags {
	return &publishFlags{
		signer:    addSignerFlags(f),
		noSummary: f.Bool("no-summary", false, "do not regenerate (and sign) the summary after the commit"),
		noDelta:   f.Bool("no-delta", false, "do not generate a static delta from the previous commit of the ref"),
	}
}

// hooks returns the signing and post-commit steps (compose.Publish).
func (p *publishFlags) hooks(e *env) (func(*repo.Repo, object.Checksum) error, func(context.Context, *repo.Repo, string, object.Checksum, object.Checksum) error, error) {
	signers, err := p.signer.signers()
	if err != nil {
		return nil, nil, err
	}
	signFn, post := compose.Publish{Signers: signers, NoDelta: *p.noDelta, NoSummary: *p.noSummary, Log: e.stdout}.Hooks()
	return signFn, post, nil
}

// sourceDateEpoch reads --source-date-epoch or SOURCE_DATE_EPOCH.
func sourceDateEpoch(flagVal string) (*int64, error) {
	v := flagVal
	if v == "" {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, usagef("bad SOURCE_DATE_EPOCH %q", v)
	}
	return &n, nil
}

func composeTree(f *flagSet) runFunc {
	open := repoFlag(f)
	cache := f.String("cache", "", "cache directory for repository metadata and packages (default: REPO/tmp/compose-cache)")
	dry := f.Bool("dry-run", false, "solve and print the transaction; download and commit nothing")
	lock := f.String("lockfile", "", "pin package versions from this lockfile (JSON)")
	writeLock := f.String("write-lockfile", "", "write the solved package versions to this lockfile")
	report := f.String("json-report", "", "write a JSON report of the compose to this file")
	sde := f.String("source-date-epoch", "", "commit timestamp (default: $SOURCE_DATE_EPOCH, else the newest package build time)")
	workers := f.Int("workers", 4, "parallel downloads and object writes")
	pub := addPublishFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("compose tree: expected one TREEFILE")
		}
		epoch, err := sourceDateEpoch(*sde)
		if err != nil {
			return err
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		signFn, post, err := pub.hooks(e)
		if err != nil {
			return err
		}
		res, err := compose.Tree(ctx, compose.Options{
			Treefile: pos[0], Repo: r, CacheDir: *cache, DryRun: *dry, Lockfile: *lock, WriteLockfile: *writeLock,
			JSONReport: *report, SourceDateEpoch: epoch, Workers: *workers, Log: e.stdout,
			Sign: signFn, PostCommit: post,
		})
		if err != nil {
			return fmt.Errorf("compose %s: %w", filepath.Base(pos[0]), err)
		}
		if res.Changed {
			t := res.Timings
			e.printf("Commit: %s\nRef: %s\n", res.Commit, res.Ref)
			if res.Version != "" {
				e.printf("Version: %s\n", res.Version)
			}
			e.printf("Time: metadata %s, solve %s, download %s, unpack %s, scripts %s, postprocess %s, commit %s, total %s\n",
				round(t.Metadata), round(t.Solve), round(t.Download), round(t.Unpack), round(t.Scripts), round(t.Postprocess), round(t.Commit), round(t.Total))
		}
		return nil
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func composeCommit(f *flagSet) runFunc {
	open := repoFlag(f)
	branch := f.String("branch", "", "ref to commit to (required)")
	subject := f.String("subject", "", "commit subject")
	version := f.String("version", "", "commit version metadata")
	sde := f.String("source-date-epoch", "", "commit timestamp (default: $SOURCE_DATE_EPOCH, else now)")
	var mods stringList
	f.Var(&mods, "initramfs-module", "kernel module the built initramfs loads, with its dependencies (repeatable; as the treefile's initramfs-modules)")
	pub := addPublishFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("compose commit: expected one ROOTFS directory")
		}
		if *branch == "" {
			return usagef("--branch is required")
		}
		epoch, err := sourceDateEpoch(*sde)
		if err != nil {
			return err
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		signFn, post, err := pub.hooks(e)
		if err != nil {
			return err
		}
		var ts time.Time
		if epoch != nil {
			ts = time.Unix(*epoch, 0)
		}
		commit, pp, err := compose.CommitRootfs(ctx, compose.RootfsOptions{
			Rootfs: pos[0], Repo: r, Branch: *branch, Subject: *subject, Version: *version, Timestamp: ts,
			Sign: signFn, PostCommit: post, InitramfsModules: mods,
		})
		if err != nil {
			return fmt.Errorf("compose commit %s: %w", pos[0], err)
		}
		for _, n := range pp.Notes {
			e.printf("%s\n", n)
		}
		e.printf("%s\n", commit)
		return nil
	}
}

func composeImage(f *flagSet) runFunc {
	open := repoFlag(f)
	ref := f.String("ref", "", "branch of the repository to deploy (required)")
	output := f.String("output", "", "image file to write (required); it appears only when complete")
	size := f.String("size", "", "disk size, e.g. 2G or 700M (default: twice the minimum for the commit)")
	bl := f.String("bootloader", "extlinux", "boot loader: "+strings.Join(image.Bootloaders, ", "))
	format := f.String("format", "raw", "image format: raw or qcow2 (needs qemu-img)")
	osName := f.String("os", "os", "stateroot name")
	remoteName := f.String("remote", "", "remote the deployment's origin follows (REMOTE:REF)")
	remoteURL := f.String("remote-url", "", "URL of that remote, written into the image (http://, https:// or file:///)")
	noVerify := f.Bool("no-gpg-verify", false, "write the remote with gpg-verify=false (unsigned repositories)")
	sde := f.String("source-date-epoch", "", "file system timestamps (default: $SOURCE_DATE_EPOCH, else the commit's time)")
	var kargs stringList
	f.Var(&kargs, "karg", "kernel argument, e.g. console=ttyS0 (repeatable; root= and ostree= are set)")
	f.Var(&kargs, "kargs", "same as --karg")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 0 {
			return usagef("compose image: unexpected argument %q", pos[0])
		}
		if *ref == "" || *output == "" {
			return usagef("--ref and --output are required")
		}
		var sz int64
		if *size != "" {
			if sz, err = image.ParseSize(*size); err != nil {
				return usagef("--size: %v", err)
			}
		}
		epoch, err := sourceDateEpoch(*sde)
		if err != nil {
			return err
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		opts := image.Options{
			Repo: r, Ref: *ref, Output: *output, Size: sz, Bootloader: *bl, Kargs: kargs, Format: *format,
			OS: *osName, Remote: *remoteName, RemoteURL: *remoteURL, NoGPGVerify: *noVerify, Log: e.stdout,
		}
		if epoch != nil {
			opts.SourceDateEpoch = *epoch
		}
		res, err := image.Build(ctx, opts)
		if err != nil {
			return err
		}
		e.printf("Image %s: commit %s, kernel %s, %d MiB, root UUID %s\n", *output, res.Commit, res.KernelVer, res.Size>>20, res.RootUUID)
		return nil
	}
}
