package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/bootloader"
	"golang.org/x/sys/unix"
)

// PrepareRootOptions controls PrepareRoot.
type PrepareRootOptions struct {
	// Sysroot is where the physical root is mounted (the initramfs
	// mounts it at /sysroot). It must be a mount point.
	Sysroot string
	// Cmdline is the kernel command line holding ostree=.
	Cmdline string
	// RunDir receives the ostree-booted stamp ("" for /run).
	RunDir string
}

// PrepareRoot makes the deployment named by ostree= the tree mounted at
// opts.Sysroot, with the physical root moved under it at /sysroot:
//
//   - the deployment is bind-mounted onto itself (so it is a mount);
//   - /usr becomes a read-only bind mount; /etc stays writable;
//   - /var is the stateroot's shared var, bind-mounted;
//   - /boot is the physical /boot when the deployment has a boot dir;
//   - the physical root moves to <deployment>/sysroot and the deployment
//     to opts.Sysroot.
//
// What is left is the initramfs' switch_root into opts.Sysroot (SwitchRoot
// does it for tests and for use as /init). It returns the deployment path
// (as it was found under the physical root).
func PrepareRoot(opts PrepareRootOptions) (string, error) {
	root := filepath.Clean(opts.Sysroot)
	arg, ok := bootloader.ParseKargs(opts.Cmdline).Get("ostree")
	if !ok || arg == "" {
		return "", fmt.Errorf("prepare-root: no ostree= on the kernel command line")
	}
	link := filepath.Join(root, arg)
	fi, err := os.Lstat(link)
	if err != nil {
		return "", fmt.Errorf("prepare-root: ostree=%s: %w", arg, err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return "", fmt.Errorf("prepare-root: ostree=%s is not a symlink", arg)
	}
	deploy, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("prepare-root: resolve ostree=%s: %w", arg, err)
	}
	if !strings.HasPrefix(deploy, filepath.Join(root, "ostree/deploy")+"/") {
		return "", fmt.Errorf("prepare-root: ostree=%s resolves outside the deployments (%s)", arg, deploy)
	}
	stateVar := filepath.Join(deploy, "../../var")
	for _, p := range []string{"usr", "var", "sysroot"} {
		if fi, err := os.Lstat(filepath.Join(deploy, p)); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("prepare-root: deployment %s has no /%s directory to mount on", deploy, p)
		}
	}
	mount := func(src, dst, fstype string, flags uintptr) error {
		if err := unix.Mount(src, dst, fstype, flags, ""); err != nil {
			return fmt.Errorf("prepare-root: mount %s on %s: %w", src, dst, err)
		}
		return nil
	}
	// Moves are refused under shared mounts.
	if err := mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE); err != nil {
		return "", err
	}
	if err := mount(deploy, deploy, "", unix.MS_BIND); err != nil {
		return "", err
	}
	if fi, err := os.Lstat(filepath.Join(root, "boot/loader")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if fi, err := os.Lstat(filepath.Join(deploy, "boot")); err == nil && fi.IsDir() {
			if err := mount(filepath.Join(root, "boot"), filepath.Join(deploy, "boot"), "", unix.MS_BIND); err != nil {
				return "", err
			}
		}
	}
	usr := filepath.Join(deploy, "usr")
	if err := mount(usr, usr, "", unix.MS_BIND); err != nil {
		return "", err
	}
	if err := mount(usr, usr, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY); err != nil {
		return "", err
	}
	if err := mount(stateVar, filepath.Join(deploy, "var"), "", unix.MS_BIND); err != nil {
		return "", err
	}
	run := opts.RunDir
	if run == "" {
		run = "/run"
	}
	if f, err := os.OpenFile(filepath.Join(run, "ostree-booted"), os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Close()
	}
	// Swap places: the deployment moves aside, the physical root goes
	// under it at /sysroot, and the whole moves back to root's place.
	tmp := root + ".tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("prepare-root: %w", err)
	}
	if err := mount(deploy, tmp, "", unix.MS_MOVE); err != nil {
		return "", err
	}
	if err := mount(root, filepath.Join(tmp, "sysroot"), "", unix.MS_MOVE); err != nil {
		return "", err
	}
	if err := mount(tmp, root, "", unix.MS_MOVE); err != nil {
		return "", err
	}
	os.Remove(tmp)
	return deploy, nil
}

// SwitchRoot makes newRoot (a mount point) the root of this mount
// namespace and execs argv[0] in it, as switch_root does.
func SwitchRoot(newRoot string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("switch-root: no program to run")
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch-root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch-root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch-root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch-root: %w", err)
	}
	if err := unix.Exec(argv[0], argv, os.Environ()); err != nil {
		return fmt.Errorf("switch-root: exec %s: %w", argv[0], err)
	}
	return nil
}
