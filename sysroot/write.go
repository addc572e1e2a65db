package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/internal/osrelease"
)

// nameRe matches a deployment directory name.
var nameRe = regexp.MustCompile(`^([0-9a-f]{64})\.([0-9]+)$`)

// backend returns the bootloader backend to write for.
func (s *Sysroot) backend() (bootloader.Backend, error) {
	name := s.opts.Bootloader
	if name == "" {
		name = s.repo.Config().String("sysroot", "bootloader", "auto")
	}
	if name == "auto" {
		return bootloader.Detect(s.abs("boot")), nil
	}
	return bootloader.ByName(name)
}

// writeDeployments makes list the boot configuration: kernels installed,
// entries and native config written into the inactive loader.N, bootlinks
// built in the inactive ostree/boot.N, everything synced, then the
// /boot/loader symlink swapped. Until that rename nothing the current
// configuration references has changed.
func (s *Sysroot) writeDeployments(list []*Deployment) error {
	if len(list) == 0 {
		return fmt.Errorf("refusing to write an empty deployment list: the system could not boot")
	}
	if err := s.checkReadable(); err != nil {
		return err
	}
	be, err := s.backend()
	if err != nil {
		return err
	}
	// Bootserials: position among the deployments sharing a bootcsum.
	seen := map[string]int{}
	for i, d := range list {
		d.Index = i
		d.BootSerial = seen[d.BootCsum]
		seen[d.BootCsum]++
	}
	showOS := false
	for _, d := range list[1:] {
		if d.OS != list[0].OS {
			showOS = true
		}
	}
	newBV := 1 - s.BootVersion
	if _, ok, _ := s.loader().CurrentVersion(); !ok {
		newBV = 1 // libostree: no loader link means version 0 is current
	}
	entries := make([]*bootloader.Entry, len(list))
	for i, d := range list {
		k, err := kernelOnDisk(s.abs(d.RelDir()))
		if err != nil {
			return fmt.Errorf("deployment %s: %w", d.Name(), err)
		}
		if err := s.installKernel(d, k); err != nil {
			return err
		}
		e, err := s.entryFor(d, k, newBV, len(list), showOS)
		if err != nil {
			return err
		}
		entries[i] = e
	}
	s.checkpoint("kernels-installed")
	counter, counts := be.(bootloader.Counter)
	var act bootloader.CountAction
	if counts {
		if act, err = s.countAction(list); err != nil {
			return err
		}
		counter.PrepareCount(entries, act)
	}
	if err := s.loader().Prepare(newBV, entries, be); err != nil {
		return err
	}
	newSub, err := s.writeBootlinks(newBV, list)
	if err != nil {
		return err
	}
	if !s.opts.NoSync {
		// Deployment checkouts are not synced file by file; one syncfs of
		// the sysroot makes them durable before the commit point.
		if err := fsutil.SyncFS(s.Path); err != nil {
			return err
		}
	}
	s.checkpoint("synced")
	if err := s.loader().Swap(newBV); err != nil {
		return err
	}
	s.logf("Bootloader updated; bootversion: boot.%d.%d, deployments: %d", newBV, newSub, len(list))
	if counts {
		// After the swap: a counter armed before it would count the old
		// default's boots if the flip did not complete.
		if err := counter.CommitCount(s.loader(), act); err != nil {
			return fmt.Errorf("after the swap (the new configuration is in place): boot counter: %w", err)
		}
		if act.Tries > 0 {
			s.logf("Boot counting: the new default gets %d tries before the boot loader falls back", act.Tries)
		}
	}
	if err := be.Link(s.abs("boot")); err != nil {
		return fmt.Errorf("after the swap (the new configuration is in place): %w", err)
	}
	s.checkpoint("linked")
	s.BootVersion, s.SubBootVersion = newBV, newSub
	s.Deployments = list
	for i, d := range list {
		d.entryName = entries[i].Name
	}
	for _, d := range list {
		d.Staged = false
	}
	return nil
}

// writeBootlinks builds ostree/boot.BV.SUB/OS/BOOTCSUM/SERIAL symlinks to
// the deployments, in the bootversion that is not current, and points
// ostree/boot.BV at it.
func (s *Sysroot) writeBootlinks(bv int, list []*Deployment) (int, error) {
	cur, err := s.subBootVersion(bv)
	if err != nil {
		return 0, err
	}
	sub := 1 - cur
	if _, err := os.Lstat(s.abs(fmt.Sprintf("ostree/boot.%d", bv))); errors.Is(err, os.ErrNotExist) {
		sub = 1 // a missing link counts as sub 0
	}
	dirRel := fmt.Sprintf("ostree/boot.%d.%d", bv, sub)
	dir := s.abs(dirRel)
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("bootlinks: %w", err)
	}
	for _, d := range list {
		p := filepath.Join(dir, d.OS, d.BootCsum)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return 0, fmt.Errorf("bootlinks: %w", err)
		}
		target := filepath.Join("../../../deploy", d.OS, "deploy", d.Name())
		if err := os.Symlink(target, filepath.Join(p, strconv.Itoa(d.BootSerial))); err != nil {
			return 0, fmt.Errorf("bootlinks: %w", err)
		}
	}
	s.checkpoint("bootlinks-written")
	link := s.abs(fmt.Sprintf("ostree/boot.%d", bv))
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(dirRel), tmp); err != nil {
		return 0, fmt.Errorf("bootlinks: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return 0, fmt.Errorf("bootlinks: %w", err)
	}
	return sub, s.syncDir(s.abs("ostree"))
}

// entryFor renders the BLS entry of a deployment at its index.
func (s *Sysroot) entryFor(d *Deployment, k *kernelLayout, bv, n int, showOS bool) (*bootloader.Entry, error) {
	name, err := osReleaseName(s.abs(d.RelDir()))
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	title := name
	if d.Version != "" && !strings.Contains(name, d.Version) {
		title += " " + d.Version
	}
	title += " (ostree"
	if showOS {
		title += ":" + d.OS
	}
	title += fmt.Sprintf(":%d)", d.Index)
	bootDir := "/" + bootDirRel(d.OS, d.BootCsum)
	ostreeArg := fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", bv, d.OS, d.BootCsum, d.BootSerial)
	kargs := append(bootloader.Kargs{}, d.Kargs...)
	if k.Initramfs == "" {
		kargs = kargs.Replace("init=" + ostreeArg + "/usr/lib/ostree/ostree-prepare-root")
	}
	kargs = kargs.Replace("ostree=" + ostreeArg)
	e := &bootloader.Entry{Name: fmt.Sprintf("ostree-%d-%s.conf", n-d.Index, d.OS)}
	e.Add("title", title)
	e.Add("version", strconv.Itoa(n-d.Index))
	e.Add("options", kargs.String())
	// Key order as libostree writes it: devicetree before linux, fdtdir last.
	if k.Devicetree == "devicetree" {
		e.Add("devicetree", bootDir+"/devicetree-"+k.KVer)
	}
	e.Add("linux", bootDir+"/vmlinuz-"+k.KVer)
	if k.Initramfs != "" {
		e.Add("initrd", bootDir+"/initramfs-"+k.KVer+".img")
	}
	if k.Devicetree == "dtb" {
		e.Add("fdtdir", bootDir+"/dtb")
	}
	return e, nil
}

// osReleaseName is the boot entry title of a deployed tree (see
// package osrelease for the rules).
func osReleaseName(root string) (string, error) {
	vals, err := osrelease.Read(osrelease.Paths, func(p string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, p))
	}, func(err error) bool { return errors.Is(err, fs.ErrNotExist) })
	if err != nil {
		return "", err
	}
	return osrelease.Name(vals)
}
