package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osupdate/os-update/compose/postprocess"
	"github.com/osupdate/os-update/compose/treefs"
)

// A pair is an old and a new OSTree-style tree of one Debian variant,
// built once and kept in the cache directory.
type pair struct {
	variant  string // debootstrap variant: minbase or standard
	dir      string // cache/<variant>
	old, new string // converted trees (usr/, usr/etc, kernel in usr/lib/modules)
	kOld     string // kernel versions
	kNew     string
}

const mirror = "http://deb.debian.org/debian"

// buildPair makes (or finds in the cache) the pair of one variant:
// old = bookworm as released plus linux-image-cloud-amd64; new = the same
// after bookworm-updates and bookworm-security (including the newer kernel
// and its initramfs), the old kernel removed.
func buildPair(cache, variant string) (*pair, error) {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return nil, fmt.Errorf("debootstrap not found: install it with `apt-get install -y debootstrap`")
	}
	p := &pair{variant: variant, dir: filepath.Join(cache, variant)}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	rootOld, rootNew := filepath.Join(p.dir, "rootfs-old"), filepath.Join(p.dir, "rootfs-new")
	p.old, p.new = filepath.Join(p.dir, "tree-old"), filepath.Join(p.dir, "tree-new")

	if err := step(rootOld, func(tmp string) error {
		args := []string{"--include=linux-image-cloud-amd64,initramfs-tools"}
		if variant == "minbase" {
			args = append(args, "--variant=minbase")
		}
		args = append(args, "bookworm", tmp, mirror)
		if err := sh("debootstrap", args...); err != nil {
			return err
		}
		return writeSources(tmp, "bookworm")
	}); err != nil {
		return nil, fmt.Errorf("%s old rootfs: %w", variant, err)
	}
	if err := step(rootNew, func(tmp string) error {
		if err := sh("cp", "-a", rootOld+"/.", tmp); err != nil {
			return err
		}
		return upgrade(tmp)
	}); err != nil {
		return nil, fmt.Errorf("%s new rootfs: %w", variant, err)
	}
	for _, t := range []struct{ root, tree string }{{rootOld, p.old}, {rootNew, p.new}} {
		if err := step(t.tree, func(tmp string) error { return convert(t.root, tmp) }); err != nil {
			return nil, fmt.Errorf("%s convert %s: %w", variant, t.root, err)
		}
	}
	var err error
	if p.kOld, err = kernelOf(p.old); err != nil {
		return nil, err
	}
	if p.kNew, err = kernelOf(p.new); err != nil {
		return nil, err
	}
	return p, nil
}

// step builds dst through dst.tmp unless dst is complete already.
func step(dst string, build func(tmp string) error) error {
	if _, err := os.Stat(dst + ".done"); err == nil {
		return nil
	}
	tmp := dst + ".tmp"
	unmountUnder(tmp)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "building %s\n", dst)
	if err := build(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return os.WriteFile(dst+".done", nil, 0o644)
}

func writeSources(root string, suites ...string) error {
	var b strings.Builder
	for _, s := range suites {
		if strings.HasSuffix(s, "-security") {
			fmt.Fprintf(&b, "deb http://deb.debian.org/debian-security %s main\n", s)
		} else {
			fmt.Fprintf(&b, "deb %s %s main\n", mirror, s)
		}
	}
	return os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(b.String()), 0o644)
}

// upgrade applies bookworm-updates and bookworm-security in a chroot and
// keeps only the newest kernel.
func upgrade(root string) error {
	if err := writeSources(root, "bookworm", "bookworm-updates", "bookworm-security"); err != nil {
		return err
	}
	// No service starts in the chroot. /dev stays debootstrap's own
	// (the host's may be restricted in a container).
	if err := os.WriteFile(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d"))
	for _, m := range [][]string{
		{"-t", "proc", "proc", root + "/proc"},
		{"-t", "sysfs", "sysfs", root + "/sys"},
	} {
		if err := sh("mount", m...); err != nil {
			return err
		}
	}
	defer unmountUnder(root)
	env := "DEBIAN_FRONTEND=noninteractive"
	if err := sh("chroot", root, "env", env, "apt-get", "update"); err != nil {
		return err
	}
	if err := sh("chroot", root, "env", env, "apt-get", "-y", "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"); err != nil {
		return err
	}
	// Keep the newest kernel only (an OSTree tree carries one).
	mods, err := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	if err != nil {
		return err
	}
	var kvers []string
	for _, m := range mods {
		kvers = append(kvers, m.Name())
	}
	sort.Slice(kvers, func(i, j int) bool { return versionLess(kvers[i], kvers[j]) })
	for _, k := range kvers[:max(0, len(kvers)-1)] {
		if err := sh("chroot", root, "env", env, "apt-get", "-y", "purge", "linux-image-"+k); err != nil {
			return err
		}
	}
	return sh("chroot", root, "apt-get", "clean")
}

// versionLess orders kernel versions like 6.1.0-9-cloud-amd64 < 6.1.0-28-cloud-amd64.
func versionLess(a, b string) bool {
	return exec.Command("dpkg", "--compare-versions", a, "lt", b).Run() == nil
}

func unmountUnder(root string) {
	for _, d := range []string{"sys", "proc"} {
		exec.Command("umount", "-l", filepath.Join(root, d)).Run()
	}
}

// convert copies a Debian root into dst and applies the OSTree
// conventions with the compose postprocess (/etc → /usr/etc, kernel and
// initramfs → /usr/lib/modules/KVER, /var → tmpfiles.d).
func convert(rootfs, dst string) error {
	if err := sh("cp", "-a", rootfs+"/.", dst); err != nil {
		return err
	}
	// What a compose drops: package caches and indexes, and Debian's
	// kernel links in / (the kernel moves into /usr).
	for _, g := range []string{"var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "vmlinuz*", "initrd.img*", "boot/vmlinuz.old", "boot/initrd.img.old"} {
		ms, _ := filepath.Glob(filepath.Join(dst, g))
		for _, m := range ms {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// Debian ships /usr/local with empty directories (and a man link); it
	// becomes a link
	// into /var.
	if err := sh("find", filepath.Join(dst, "usr/local"), "-mindepth", "1", "-type", "l", "-delete"); err != nil {
		return err
	}
	if err := sh("find", filepath.Join(dst, "usr/local"), "-mindepth", "1", "-depth", "-type", "d", "-empty", "-delete"); err != nil {
		return err
	}
	r, err := treefs.Open(dst)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := postprocess.Apply(r)
	if err != nil {
		return err
	}
	if res.KernelVersion == "" {
		return fmt.Errorf("no kernel found in %s/boot", rootfs)
	}
	return nil
}

func kernelOf(tree string) (string, error) {
	ms, err := filepath.Glob(filepath.Join(tree, "usr/lib/modules/*/vmlinuz"))
	if err != nil || len(ms) != 1 {
		return "", fmt.Errorf("%s: want exactly one usr/lib/modules/*/vmlinuz, found %d", tree, len(ms))
	}
	return filepath.Base(filepath.Dir(ms[0])), nil
}

func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
