package sysroot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"golang.org/x/sys/unix"
)

// kernelLayout describes the kernel of a tree, found in
// usr/lib/modules/KVER/: vmlinuz, and optionally initramfs.img (or
// initramfs), devicetree (a file) or dtb/ (a directory), .vmlinuz.hmac.
type kernelLayout struct {
	KVer       string
	Initramfs  string // source name, "" if none
	Devicetree string // "devicetree", "dtb" or ""
	HMAC       bool
	BootCsum   string
}

func (k *kernelLayout) srcDir() string { return filepath.Join("usr/lib/modules", k.KVer) }

// bootFiles maps source names (in srcDir) to names in /boot/ostree/OS-CSUM.
func (k *kernelLayout) bootFiles() [][2]string {
	out := [][2]string{{"vmlinuz", "vmlinuz-" + k.KVer}}
	if k.Initramfs != "" {
		out = append(out, [2]string{k.Initramfs, "initramfs-" + k.KVer + ".img"})
	}
	switch k.Devicetree {
	case "devicetree":
		out = append(out, [2]string{"devicetree", "devicetree-" + k.KVer})
	case "dtb":
		out = append(out, [2]string{"dtb", "dtb"})
	}
	if k.HMAC {
		out = append(out, [2]string{".vmlinuz.hmac", ".vmlinuz-" + k.KVer + ".hmac"})
	}
	return out
}

// hashFile feeds a regular file of the tree to h.
func hashFile(v *repo.TreeView, h hash.Hash, e repo.TreeEntry) error {
	content, err := v.Open(e)
	if err != nil {
		return err
	}
	defer content.Close()
	if content.Header.IsSymlink() {
		return fmt.Errorf("%s: is a symlink", e.Path)
	}
	if _, err = io.Copy(h, content); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// hashDir feeds every file under a directory to h, names sorted at each
// level (files and directories together) as libostree does for a dtb/
// directory.
func hashDir(v *repo.TreeView, h hash.Hash, dir repo.TreeEntry) error {
	ents, err := v.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if e.IsDir {
			err = hashDir(v, h, e)
		} else {
			err = hashFile(v, h, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lookupOptional is Lookup where a missing path is not an error.
func lookupOptional(v *repo.TreeView, p string) (repo.TreeEntry, bool, error) {
	e, err := v.Lookup(p)
	if errors.Is(err, fs.ErrNotExist) {
		return e, false, nil
	}
	return e, err == nil, err
}

// findKernel locates the kernel of a commit in the repository and
// computes its bootcsum. A tree without a kernel, or with more than one
// usr/lib/modules/KVER/vmlinuz, is refused: which one would boot would be
// a guess.
func findKernel(v *repo.TreeView) (*kernelLayout, error) {
	mods, ok, err := lookupOptional(v, "usr/lib/modules")
	if err != nil {
		return nil, err
	}
	var found []*kernelLayout
	if ok && mods.IsDir {
		ents, err := v.ReadDir(mods)
		if err != nil {
			return nil, err
		}
		for _, d := range ents {
			if !d.IsDir {
				continue
			}
			if ok, err := v.IsRegular(d.Path + "/vmlinuz"); err != nil {
				return nil, err
			} else if ok {
				found = append(found, &kernelLayout{KVer: d.Name()})
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no kernel found: the commit has no usr/lib/modules/KVER/vmlinuz")
	case 1:
	default:
		names := make([]string, len(found))
		for i, k := range found {
			names[i] = k.KVer
		}
		return nil, fmt.Errorf("more than one kernel in usr/lib/modules (%s): refusing to guess which one to boot", strings.Join(names, ", "))
	}
	k := found[0]
	dir := k.srcDir()
	h := sha256.New()
	vm, err := v.Lookup(dir + "/vmlinuz")
	if err != nil {
		return nil, err
	}
	if err := hashFile(v, h, vm); err != nil {
		return nil, err
	}
	// hashRegular hashes dir/name if it is a regular file.
	hashRegular := func(name string) (bool, error) {
		ok, err := v.IsRegular(dir + "/" + name)
		if err != nil || !ok {
			return false, err
		}
		e, err := v.Lookup(dir + "/" + name)
		if err != nil {
			return false, err
		}
		return true, hashFile(v, h, e)
	}
	for _, name := range []string{"initramfs.img", "initramfs"} {
		if ok, err := hashRegular(name); err != nil {
			return nil, err
		} else if ok {
			k.Initramfs = name
			break
		}
	}
	if ok, err := hashRegular("devicetree"); err != nil {
		return nil, err
	} else if ok {
		k.Devicetree = "devicetree"
	} else if dtb, ok, err := lookupOptional(v, dir+"/dtb"); err != nil {
		return nil, err
	} else if ok && dtb.IsDir {
		k.Devicetree = "dtb"
		if err := hashDir(v, h, dtb); err != nil {
			return nil, err
		}
	}
	if k.HMAC, err = v.IsRegular(dir + "/.vmlinuz.hmac"); err != nil {
		return nil, err
	}
	k.BootCsum = hex.EncodeToString(h.Sum(nil))
	return k, nil
}

// KernelVersion is the KVER of the one kernel of a tree on disk
// (usr/lib/modules/KVER/vmlinuz, a regular file), by the rule deploy
// applies; `repo commit --bootable` records it.
func KernelVersion(root string) (string, error) {
	k, err := kernelOnDisk(root)
	if err != nil {
		return "", err
	}
	return k.KVer, nil
}

// kernelOnDisk finds the kernel layout of a checked-out deployment (used
// for deployments that exist already, whose bootcsum is known).
func kernelOnDisk(depDir string) (*kernelLayout, error) {
	mods := filepath.Join(depDir, "usr/lib/modules")
	des, err := os.ReadDir(mods)
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	var found []*kernelLayout
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(mods, de.Name(), "vmlinuz")); err == nil && fi.Mode().IsRegular() {
			found = append(found, &kernelLayout{KVer: de.Name()})
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("find kernel in %s: %d kernels in usr/lib/modules, want exactly one", depDir, len(found))
	}
	k := found[0]
	dir := filepath.Join(depDir, k.srcDir())
	isReg := func(n string) bool {
		fi, err := os.Lstat(filepath.Join(dir, n))
		return err == nil && fi.Mode().IsRegular()
	}
	for _, n := range []string{"initramfs.img", "initramfs"} {
		if isReg(n) {
			k.Initramfs = n
			break
		}
	}
	if isReg("devicetree") {
		k.Devicetree = "devicetree"
	} else if fi, err := os.Lstat(filepath.Join(dir, "dtb")); err == nil && fi.IsDir() {
		k.Devicetree = "dtb"
	}
	k.HMAC = isReg(".vmlinuz.hmac")
	return k, nil
}

// bootDirRel is the kernel directory of a deployment, relative to /boot.
func bootDirRel(osname, bootcsum string) string {
	return filepath.Join("ostree", osname+"-"+bootcsum)
}

// installKernel makes /boot/ostree/OS-BOOTCSUM hold the kernel files of
// the deployment, if it does not already. The directory is assembled
// under a temporary name and renamed into place, so an existing one is
// always complete.
func (s *Sysroot) installKernel(d *Deployment, k *kernelLayout) error {
	final := s.abs(filepath.Join("boot", bootDirRel(d.OS, d.BootCsum)))
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("install kernel: %w", err)
	}
	tmp := filepath.Join(parent, ".tmp-"+filepath.Base(final))
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("install kernel: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("install kernel: %w", err)
	}
	src := s.abs(filepath.Join(d.RelDir(), k.srcDir()))
	for _, f := range k.bootFiles() {
		if err := s.linkOrCopy(filepath.Join(src, f[0]), filepath.Join(tmp, f[1])); err != nil {
			return fmt.Errorf("install kernel %s: %w", d.Name(), err)
		}
		s.checkpoint("kernel-file")
	}
	if err := s.syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("install kernel: %w", err)
	}
	return s.syncDir(parent)
}

// linkOrCopy hardlinks src to dst, or copies it (recursively for a
// directory) where a link is impossible (/boot on another file system).
func (s *Sysroot) linkOrCopy(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		des, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, de := range des {
			if err := s.linkOrCopy(filepath.Join(src, de.Name()), filepath.Join(dst, de.Name())); err != nil {
				return err
			}
		}
		return s.syncDir(dst)
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) && !errors.Is(err, unix.EPERM) {
		return err
	}
	return s.copyFile(src, dst, fi.Mode().Perm())
}

func (s *Sysroot) copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if !s.opts.NoSync {
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

func (s *Sysroot) syncDir(dir string) error {
	if s.opts.NoSync {
		return nil
	}
	return fsutil.SyncDir(dir)
}
