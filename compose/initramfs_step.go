package compose

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/compose/initramfs"
	"github.com/osupdate/os-update/compose/treefs"
)

// treeInitPath is where a tree ships the os-update binary that becomes the
// /init of the initramfs compose builds.
const treeInitPath = "usr/bin/os-update"

// ensureInitramfs builds usr/lib/modules/KVER/initramfs.img when the tree
// has a kernel but no initramfs (a distribution's own one, e.g. from
// dracut, is kept as it is). The /init is the tree's own static
// os-update, else initPath, else the running os-update if it is static.
// Without any, the tree stays without an initramfs (deploy then boots the
// kernel with init= as libostree does) unless modules were asked for.
func ensureInitramfs(work, kver string, modules []string, initPath string) (string, error) {
	if kver == "" {
		if len(modules) > 0 {
			return "", fmt.Errorf("initramfs-modules given but the tree has no kernel")
		}
		return "", nil
	}
	dst := "usr/lib/modules/" + kver + "/initramfs.img"
	root, err := treefs.Open(work)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if _, err := root.Lstat(dst); err == nil {
		if len(modules) > 0 {
			return fmt.Sprintf("the tree ships its own initramfs; initramfs-modules (%v) are not used", modules), nil
		}
		return "", nil
	}
	// Entries carry no time (mtime 0): the archive depends only on its
	// content, so composes that change nothing in it produce the same
	// bytes, and deltas and /boot share it.
	opts := initramfs.Options{Tree: work, KernelVersion: kver, Modules: modules}
	if f, err := root.Open(treeInitPath); err == nil {
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("initramfs: /%s: %w", treeInitPath, err)
		}
		opts.InitPath, opts.InitData = "/"+treeInitPath, data
	} else if initPath != "" {
		opts.InitPath = initPath
	} else if self, err := os.Executable(); err == nil && filepath.Base(self) == "os-update" {
		if ok, _ := initramfs.IsStatic(self); ok {
			opts.InitPath = self
		}
	}
	if opts.InitPath == "" {
		if len(modules) > 0 {
			return "", fmt.Errorf("initramfs: the tree has no /%s and no static os-update is available to be its /init", treeInitPath)
		}
		return "no initramfs built: the tree has no /" + treeInitPath + " (a static os-update) to be its /init", nil
	}
	var buf bytes.Buffer
	res, err := initramfs.Build(&buf, opts)
	if err != nil {
		return "", err
	}
	if err := root.WriteFile(dst, &buf, 0o644, 0, 0); err != nil {
		return "", fmt.Errorf("initramfs: write /%s: %w", dst, err)
	}
	return fmt.Sprintf("initramfs built: /%s (%d bytes, init %s, %d modules)", dst, res.Size, opts.InitPath, len(res.Modules)), nil
}

// ensureModulesDep runs depmod for a tree whose kernel modules have no
// modules.dep: distributions' kernel packages ship none (depmod makes it
// when the package is installed), and without it modprobe on the booted
// system finds nothing. depmod -b reads BASE/lib/modules/KVER, so BASE is
// a directory whose lib/modules/KVER leads to the tree's
// usr/lib/modules/KVER.
func ensureModulesDep(work, kver string) (string, error) {
	if kver == "" {
		return "", nil
	}
	modDir := filepath.Join(work, "usr/lib/modules", kver)
	if _, err := os.Lstat(filepath.Join(modDir, "modules.dep")); err == nil {
		return "", nil
	}
	if ents, _ := os.ReadDir(filepath.Join(modDir, "kernel")); len(ents) == 0 {
		return "", nil // a kernel without modules
	}
	depmod, err := exec.LookPath("depmod")
	if err != nil {
		return "no modules.dep written: depmod (Debian package kmod) is not installed", nil
	}
	base, err := os.MkdirTemp("", "os-update-depmod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(base)
	if err := os.MkdirAll(filepath.Join(base, "lib/modules"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(modDir, filepath.Join(base, "lib/modules", kver)); err != nil {
		return "", err
	}
	if out, err := exec.Command(depmod, "-b", base, kver).CombinedOutput(); err != nil {
		return "", fmt.Errorf("depmod for kernel %s: %v: %s", kver, err, strings.TrimSpace(string(out)))
	}
	return "modules.dep written for kernel " + kver + " (depmod)", nil
}
