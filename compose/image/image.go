// Package image writes bootable disk images of a commit: an MBR disk with
// one ext4 partition holding an OSTree sysroot (the commit deployed by
// package sysroot, a bare repository, the remote configuration) and a BIOS
// boot loader reading the configuration the deployment flip writes:
// extlinux, or grub2 (boot.img and core.img in the gap after the MBR, see
// grub.go).
//
// Tools: mkfs.ext4 (e2fsprogs) makes the file system straight into the
// image file at the partition's offset; the partition table is 66 bytes
// written here (see mbr); a loop device and a mount are needed only to
// deploy with the same code a running host uses and for `extlinux
// --install`, which records the sectors of its second stage and so must
// see the finished file system. The image is assembled in a temporary file
// beside the output and renamed over it only when complete.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/sysroot"
	"golang.org/x/sys/unix"
)

// Bootloaders are the boot loaders an image can get.
var Bootloaders = []string{"extlinux", "grub2"}

// Formats are the output formats.
var Formats = []string{"raw", "qcow2"}

// partStart is the first sector of the partition (1 MiB, the usual
// alignment; the gap also holds nothing else with extlinux).
const partStart = 2048

// SyslinuxMBR is where Debian's syslinux-common keeps the MBR boot code.
var SyslinuxMBR = "/usr/lib/syslinux/mbr/mbr.bin"

// Options describes an image.
type Options struct {
	// Repo is the source repository (archive mode: the one compose writes
	// and a server publishes); Ref a branch in it.
	Repo *repo.Repo
	Ref  string
	// Output is the image path; it appears only when complete.
	Output string
	// Size of the disk in bytes; 0 picks twice the minimum.
	Size int64
	// Bootloader is one of Bootloaders ("" = extlinux).
	Bootloader string
	// Kargs are extra kernel arguments (root= and ostree= are set here).
	Kargs []string
	// Format is "raw" (default) or "qcow2" (needs qemu-img).
	Format string
	// OS is the stateroot name (default "os").
	OS string
	// Remote names the remote the deployment's origin follows
	// (REMOTE:REF); RemoteURL, if set, is written as its URL. Without
	// RemoteURL the origin is the plain ref (no updates).
	Remote, RemoteURL string
	// NoGPGVerify writes gpg-verify=false for the remote (for
	// repositories published unsigned).
	NoGPGVerify bool
	// SourceDateEpoch stamps the file system's own times (0: the commit's
	// timestamp).
	SourceDateEpoch int64
	Log             io.Writer
}

// Result describes a written image.
type Result struct {
	Commit    object.Checksum
	Size      int64
	MinSize   int64
	RootUUID  string
	DiskID    uint32
	Kargs     string
	KernelVer string
}

// ParseSize reads a size: bytes, or a number with K, M, G or T (powers
// of 1024, optionally followed by "iB" or "B").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("bad size %q (want e.g. 2G, 512M or a number of bytes)", s)
	}
	return int64(v * float64(mult)), nil
}

// CheckKarg refuses kernel arguments that cannot survive the trip through
// a boot loader's configuration: whitespace would split one argument into
// several and quotes are read differently by each loader.
func CheckKarg(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("empty kernel argument")
	case strings.ContainsAny(k, " \t\n\r\v\f"):
		return fmt.Errorf("kernel argument %q contains whitespace (give each argument separately)", k)
	case strings.ContainsAny(k, "\"'`\\"):
		return fmt.Errorf("kernel argument %q contains a quote or backslash", k)
	case strings.HasPrefix(k, "root=") || strings.HasPrefix(k, "ostree="):
		return fmt.Errorf("kernel argument %q: root= and ostree= are set by the image builder", k)
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("kernel argument %q contains a control character", k)
		}
	}
	return nil
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (o *Options) validate() error {
	if o.Bootloader == "" {
		o.Bootloader = "extlinux"
	}
	if !oneOf(o.Bootloader, Bootloaders) {
		return fmt.Errorf("unknown bootloader %q (supported: %s)", o.Bootloader, strings.Join(Bootloaders, ", "))
	}
	if o.Format == "" {
		o.Format = "raw"
	}
	if !oneOf(o.Format, Formats) {
		return fmt.Errorf("unknown image format %q (supported: %s)", o.Format, strings.Join(Formats, ", "))
	}
	for _, k := range o.Kargs {
		if err := CheckKarg(k); err != nil {
			return err
		}
	}
	if o.OS == "" {
		o.OS = "os"
	}
	if err := sysroot.ValidateOSName(o.OS); err != nil {
		return err
	}
	if o.Remote != "" {
		if err := remote.ValidateName(o.Remote); err != nil {
			return err
		}
	}
	if o.RemoteURL != "" && o.Remote == "" {
		return fmt.Errorf("a remote URL needs a remote name")
	}
	if o.Output == "" {
		return fmt.Errorf("no output path")
	}
	if o.Size < 0 {
		return fmt.Errorf("negative size")
	}
	if o.Repo.Mode() != repo.ModeArchive {
		return fmt.Errorf("repository %s is in %s mode: images are built from an archive repository (the one compose writes and a server publishes)", o.Repo.Path(), o.Repo.Mode())
	}
	return nil
}

// treeStats walks a commit: the kernel version and the space its files
// take in 4 KiB blocks.
func treeStats(r *repo.Repo, root object.Checksum) (kver string, bytes int64, err error) {
	var walk func(c object.Checksum, path string) error
	walk = func(c object.Checksum, path string) error {
		dt, err := r.LoadDirTree(c)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		bytes += 4096
		for _, f := range dt.Files {
			content, err := r.OpenContent(f.Checksum)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", path, f.Name, err)
			}
			content.Close()
			bytes += (int64(content.Size) + 4095) &^ 4095
			if f.Name == "vmlinuz" && !content.Header.IsSymlink() && strings.HasPrefix(path, "/usr/lib/modules/") && strings.Count(path, "/") == 4 {
				if kver != "" {
					return fmt.Errorf("more than one kernel (%s and %s)", kver, filepath.Base(path))
				}
				kver = filepath.Base(path)
			}
		}
		for _, d := range dt.Dirs {
			if err := walk(d.Tree, path+"/"+d.Name); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(root, "")
	return kver, bytes, err
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// identity derives the file system UUID and the disk signature from the
// commit, so the same commit gives the same identifiers.
func identity(commit object.Checksum) (uuid string, diskID uint32) {
	h := sha256.Sum256([]byte("os-update image\x00" + commit.String()))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40 // version 4 layout
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	uuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	return uuid, binary.LittleEndian.Uint32(h[16:20])
}

// Build writes the image. On any error nothing is left at opts.Output
// (an existing file there is untouched) and no temporary file remains.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Repo == nil {
		return nil, fmt.Errorf("image: no repository")
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	commit, err := opts.Repo.ResolveRev(opts.Ref)
	if err != nil {
		return nil, fmt.Errorf("image: ref %s: %w", opts.Ref, err)
	}
	if err := repo.ValidateRef(opts.Ref); err != nil {
		return nil, fmt.Errorf("image: --ref must be a branch (the deployment's origin follows it): %w", err)
	}
	cm, err := opts.Repo.LoadCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("image: commit %s: %w", commit, err)
	}
	kver, used, err := treeStats(opts.Repo, cm.RootTree)
	if err != nil {
		return nil, fmt.Errorf("image: commit %s: %w", commit, err)
	}
	if kver == "" {
		return nil, fmt.Errorf("image: commit %s (%s) has no kernel (usr/lib/modules/KVER/vmlinuz): it cannot boot", commit, opts.Ref)
	}
	// Minimum: the partition offset, ext4's own metadata and journal, the
	// tree (repository objects and the checkout share blocks through
	// hard links) with 10% slack, and the /etc copy inside that slack.
	minSize := int64(partStart*Sector) + 64<<20 + used + used/10
	minSize = (minSize + 1<<20 - 1) &^ (1<<20 - 1)
	size := opts.Size
	if size == 0 {
		size = 2 * minSize
	}
	size &^= 1<<20 - 1
	if size < minSize {
		return nil, fmt.Errorf("image: --size %d MiB is too small for commit %s: it needs at least %d MiB", opts.Size>>20, commit, minSize>>20)
	}
	tools := []string{"mkfs.ext4", "losetup"}
	switch opts.Bootloader {
	case "extlinux":
		tools = append(tools, "extlinux")
	case "grub2":
		tools = append(tools, "grub-mkimage")
	}
	if opts.Format == "qcow2" {
		tools = append(tools, "qemu-img")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return nil, fmt.Errorf("image: %s is needed: %w", t, err)
		}
	}
	sde := opts.SourceDateEpoch
	if sde == 0 {
		sde = int64(cm.Timestamp)
	}
	uuid, diskID := identity(commit)
	var bootCode, grubCore []byte
	if opts.Bootloader == "grub2" {
		if bootCode, grubCore, err = grubImages(ctx, uuid); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	} else {
		if bootCode, err = os.ReadFile(SyslinuxMBR); err != nil {
			return nil, fmt.Errorf("image: extlinux MBR boot code (Debian package syslinux-common): %w", err)
		}
		if len(bootCode) > 440 {
			bootCode = bootCode[:440]
		}
	}
	kargs := append([]string{"root=UUID=" + uuid, "rw"}, opts.Kargs...)
	res := &Result{Commit: commit, Size: size, MinSize: minSize, RootUUID: uuid, DiskID: diskID, Kargs: strings.Join(kargs, " "), KernelVer: kver}

	outDir := filepath.Dir(opts.Output)
	tmp, err := os.CreateTemp(outDir, "."+filepath.Base(opts.Output)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	tmpPath := tmp.Name()
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmpPath)
		return nil, fmt.Errorf("image: %w", err)
	}
	final := tmpPath
	defer func() {
		os.Remove(tmpPath)
		if final != tmpPath {
			os.Remove(final)
		}
	}()
	opts.logf("Writing %s for %s (%s), kernel %s, %d MiB (minimum %d MiB)", opts.Output, opts.Ref, commit, kver, size>>20, minSize>>20)
	partSectors := uint64(size/Sector) - partStart
	table, err := mbr(bootCode, diskID, partStart, partSectors)
	if err == nil {
		_, err = tmp.WriteAt(table, 0)
	}
	if err == nil && grubCore != nil {
		_, err = tmp.WriteAt(grubCore, grubCoreStart*Sector)
	}
	if err == nil {
		err = tmp.Truncate(size)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := mkfs(ctx, tmpPath, int64(partSectors)*Sector, uuid, sde); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := withMounted(ctx, tmpPath, int64(partStart)*Sector, int64(partSectors)*Sector, func(mnt string) error {
		return populate(ctx, &opts, mnt, commit, kargs)
	}); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return nil, fmt.Errorf("image: --size %d MiB is too small: %w", size>>20, err)
		}
		return nil, fmt.Errorf("image: %w", err)
	}
	if opts.Format == "qcow2" {
		final = tmpPath + ".qcow2"
		if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", tmpPath, final).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("image: qemu-img convert: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	if err := syncFile(final); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(final, opts.Output); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	final = tmpPath // nothing left to remove but the raw temp of a qcow2
	if d, err := os.Open(outDir); err == nil {
		d.Sync()
		d.Close()
	}
	opts.logf("Wrote %s: root UUID %s, kernel arguments %q", opts.Output, uuid, res.Kargs)
	return res, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// FSFeatures are the ext4 features of the root file system, given in full
// (and mke2fs.conf ignored) so that the result does not depend on the
// build host. The journal is what makes a power cut safe; 64bit is off
// because extlinux cannot boot from a file system with it.
const FSFeatures = "has_journal,extent,huge_file,flex_bg,metadata_csum,dir_nlink,extra_isize,sparse_super,large_file,filetype,resize_inode,dir_index,^64bit"

// mkfs makes the ext4 file system inside the image file at the partition
// offset (no loop device needed); the times come from sde.
func mkfs(ctx context.Context, img string, size int64, uuid string, sde int64) error {
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-U", uuid, "-m", "0",
		"-b", "4096", "-I", "256", "-O", FSFeatures, "-E", fmt.Sprintf("offset=%d,hash_seed=%s,lazy_itable_init=0,lazy_journal_init=0", partStart*Sector, uuid),
		img, strconv.FormatInt(size/1024, 10)+"k")
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(sde, 10), "MKE2FS_CONFIG=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// withMounted attaches the partition to a loop device, mounts it, runs fn
// and always unmounts and detaches.
func withMounted(ctx context.Context, img string, off, size int64, fn func(mnt string) error) (err error) {
	out, lerr := exec.CommandContext(ctx, "losetup", "--find", "--show", "--offset", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10), img).CombinedOutput()
	if lerr != nil {
		return fmt.Errorf("losetup (a free loop device is needed, as root): %v: %s", lerr, bytes.TrimSpace(out))
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		if out, derr := exec.Command("losetup", "--detach", dev).CombinedOutput(); derr != nil && err == nil {
			err = fmt.Errorf("losetup --detach %s: %v: %s", dev, derr, bytes.TrimSpace(out))
		}
	}()
	mnt, merr := os.MkdirTemp("", "os-update-image-")
	if merr != nil {
		return merr
	}
	defer os.Remove(mnt)
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	defer func() {
		var uerr error
		for i := 0; i < 50; i++ {
			if uerr = unix.Unmount(mnt, 0); uerr != unix.EBUSY {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if uerr != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
			if err == nil {
				err = fmt.Errorf("unmount %s: %w", mnt, uerr)
			}
		}
	}()
	return fn(mnt)
}

// bootDirName is the boot loader's directory under /boot.
func bootDirName(bootloader string) string {
	if bootloader == "grub2" {
		return "grub" // core.img's prefix; what Debian's grub uses
	}
	return bootloader
}

// populate makes the sysroot on the mounted file system: the layout, the
// repository with the remote, the commit pulled and deployed (the boot
// configuration written by the same flip a host uses), and the boot
// loader.
func populate(ctx context.Context, opts *Options, mnt string, commit object.Checksum, kargs []string) error {
	if err := sysroot.InitFS(mnt); err != nil {
		return err
	}
	// The boot loader's directory makes detection find it, for ostree and
	// for us; the configuration symlink appears with the first flip.
	if err := os.MkdirAll(filepath.Join(mnt, "boot", bootDirName(opts.Bootloader)), 0o755); err != nil {
		return err
	}
	s, err := sysroot.Open(mnt, sysroot.Options{Bootloader: opts.Bootloader, Log: opts.Log})
	if err != nil {
		return err
	}
	defer s.Close()
	r := s.Repo()
	r.Config().Set("sysroot", "bootloader", opts.Bootloader)
	if err := r.WriteConfig(); err != nil {
		return fmt.Errorf("repository config: %w", err)
	}
	refspec := opts.Ref
	src := &pull.Source{URL: "file://" + opts.Repo.Path()}
	popts := pull.Options{Refs: []string{opts.Ref + "@" + commit.String()}}
	if opts.Remote != "" {
		refspec = opts.Remote + ":" + opts.Ref
		src.Name = opts.Remote
		if opts.RemoteURL != "" {
			verify := !opts.NoGPGVerify
			st := &remote.Store{Repo: r}
			if err := st.Add(&remote.Remote{Name: opts.Remote, URL: opts.RemoteURL, GPGVerify: verify, GPGVerifySummary: verify}, remote.AddOptions{}); err != nil {
				return fmt.Errorf("remote %s: %w", opts.Remote, err)
			}
		}
	} else {
		popts.Mirror = true
	}
	if _, err := pull.Pull(ctx, r, src, popts); err != nil {
		return fmt.Errorf("copy commit %s into the image: %w", commit, err)
	}
	if err := s.InitOS(opts.OS); err != nil {
		return err
	}
	if _, err := s.Deploy(ctx, sysroot.DeployOptions{
		OS: opts.OS, Rev: commit.String(), OriginRefspec: refspec,
		BaseKargs: bootloader.ParseKargs(strings.Join(kargs, " ")),
	}); err != nil {
		return err
	}
	if opts.Bootloader == "extlinux" {
		if out, err := exec.CommandContext(ctx, "extlinux", "--install", filepath.Join(mnt, "boot/extlinux")).CombinedOutput(); err != nil {
			return fmt.Errorf("extlinux --install: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	d, err := os.Open(mnt)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", mnt, err)
	}
	return nil
}
