// Package postprocess applies the OSTree conventions to a composed root
// filesystem: /etc moves to /usr/etc, /var content becomes tmpfiles.d
// entries (files go to /usr/share/factory/var), /home /root /opt /srv /mnt
// become links into /var, the kernel moves to
// /usr/lib/modules/KVER/vmlinuz, and the /sysroot + /ostree links exist.
package postprocess

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/osupdate/os-update/compose/rpmfile"
	"github.com/osupdate/os-update/compose/treefs"
)

// TmpfilesConf is where the /var entries are written.
const TmpfilesConf = "/usr/lib/tmpfiles.d/os-update-compose.conf"

// FactoryVar holds regular files packages put under /var; tmpfiles copies
// them into /var on the host at boot ("C" lines).
const FactoryVar = "/usr/share/factory/var"

// Result describes what was done.
type Result struct {
	KernelVersion string   // "" when the tree has no kernel
	Notes         []string // things worth telling the user
}

// varLinks are the toplevel directories that hold machine-local data and
// become symlinks into /var (the same choices as rpm-ostree).
var varLinks = []struct{ dir, target string }{
	{"home", "var/home"},
	{"root", "var/roothome"},
	{"opt", "var/opt"},
	{"srv", "var/srv"},
	{"mnt", "var/mnt"},
	{"media", "run/media"},
	{"usr/local", "../var/usrlocal"},
}

// Apply runs every convention on the tree.
func Apply(root *treefs.Root) (*Result, error) {
	res := &Result{}
	acct, err := rpmfile.LoadAccounts(root)
	if err != nil {
		return nil, err
	}
	if res.KernelVersion, err = moveKernel(root, res); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := moveEtc(root); err != nil {
		return nil, fmt.Errorf("/etc: %w", err)
	}
	var entries []string
	for _, l := range varLinks {
		st, err := root.Lstat(l.dir)
		if err != nil {
			if !isNotExist(err) {
				return nil, err
			}
		} else if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// Content a package put here moves under /var with the rest.
			names, err := root.ReadDir(l.dir)
			if err != nil {
				return nil, err
			}
			if len(names) > 0 && strings.HasPrefix(l.target, "var/") {
				if err := root.Mkdir(l.target, st.Mode, int(st.Uid), int(st.Gid)); err != nil {
					return nil, err
				}
				for _, n := range names {
					if err := root.Rename(l.dir+"/"+n, l.target+"/"+n); err != nil {
						return nil, err
					}
				}
				res.Notes = append(res.Notes, fmt.Sprintf("content of /%s moved to /%s", l.dir, l.target))
			} else if len(names) > 0 {
				return nil, fmt.Errorf("/%s is not empty; it becomes a link to /%s", l.dir, l.target)
			}
			if err := root.Remove(l.dir); err != nil {
				return nil, err
			}
		} else if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if err := root.Remove(l.dir); err != nil {
				return nil, err
			}
		}
		if err := root.Symlink(l.target, l.dir, 0, 0); err != nil {
			return nil, err
		}
		mode := "0755"
		if l.dir == "root" {
			mode = "0700"
		}
		if strings.HasPrefix(l.target, "var/") || strings.HasPrefix(l.target, "../var/") {
			entries = append(entries, fmt.Sprintf("d /%s %s root root - -", strings.TrimPrefix(l.target, "../"), mode))
		}
	}
	varEntries, err := convertVar(root, acct, res)
	if err != nil {
		return nil, fmt.Errorf("/var: %w", err)
	}
	entries = append(entries, varEntries...)
	if err := writeTmpfiles(root, entries); err != nil {
		return nil, err
	}
	// The deployment mounts the physical root at /sysroot; /ostree points
	// into it.
	if err := root.Mkdir("sysroot", 0o755, 0, 0); err != nil {
		return nil, err
	}
	if err := root.Remove("ostree"); err != nil {
		return nil, err
	}
	if err := root.Symlink("sysroot/ostree", "ostree", 0, 0); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		mode uint32
	}{{"tmp", 0o1777}, {"run", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"boot", 0o755}} {
		if err := emptyDir(root, d.name, d.mode); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

func emptyDir(root *treefs.Root, name string, mode uint32) error {
	if err := root.RemoveAll(name); err != nil {
		return err
	}
	return root.Mkdir(name, mode, 0, 0)
}

func moveEtc(root *treefs.Root) error {
	st, err := root.Lstat("etc")
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("/etc is not a directory")
	}
	if _, err := root.Lstat("usr/etc"); err == nil {
		return fmt.Errorf("both /etc and /usr/etc exist")
	}
	if err := root.Mkdir("usr", 0o755, 0, 0); err != nil {
		return err
	}
	return root.Rename("etc", "usr/etc")
}

// moveKernel puts a kernel found as /boot/vmlinuz-KVER into
// /usr/lib/modules/KVER/vmlinuz (with its initramfs), unless the tree
// already uses that layout.
func moveKernel(root *treefs.Root, res *Result) (string, error) {
	if mods, err := root.ReadDir("usr/lib/modules"); err == nil {
		for _, k := range mods {
			if st, err := root.Lstat("usr/lib/modules/" + k + "/vmlinuz"); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				return k, nil
			}
		}
	}
	names, err := root.ReadDir("boot")
	if err != nil {
		return "", nil
	}
	var kver string
	for _, n := range names {
		if strings.HasPrefix(n, "vmlinuz-") && !strings.Contains(n, "rescue") {
			if kver != "" {
				return "", fmt.Errorf("more than one kernel in /boot (%s and %s)", kver, n[len("vmlinuz-"):])
			}
			kver = n[len("vmlinuz-"):]
		}
	}
	if kver == "" {
		return "", nil
	}
	dst := "usr/lib/modules/" + kver
	if err := root.Mkdir(dst, 0o755, 0, 0); err != nil {
		return "", err
	}
	if err := root.Rename("boot/vmlinuz-"+kver, dst+"/vmlinuz"); err != nil {
		return "", err
	}
	for _, cand := range []string{"initramfs-" + kver + ".img", "initrd.img-" + kver} {
		if _, err := root.Lstat("boot/" + cand); err == nil {
			if err := root.Rename("boot/"+cand, dst+"/initramfs.img"); err != nil {
				return "", err
			}
			break
		}
	}
	res.Notes = append(res.Notes, "kernel "+kver+" moved to /"+dst+"/vmlinuz")
	return kver, nil
}

// convertVar turns everything under /var into tmpfiles.d lines, moving
// regular files to FactoryVar, and leaves /var empty.
func convertVar(root *treefs.Root, acct *rpmfile.Accounts, res *Result) ([]string, error) {
	users := reverse(acct.Users)
	groups := reverse(acct.Groups)
	var lines []string
	var moved int
	var walk func(rel string) error
	walk = func(rel string) error {
		names, err := root.ReadDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			p := rel + "/" + n
			st, err := root.Lstat(p)
			if err != nil {
				return err
			}
			owner := name(users, st.Uid) + " " + name(groups, st.Gid)
			abs := "/" + p
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				lines = append(lines, fmt.Sprintf("d %s %04o %s - -", quote(abs), st.Mode&0o7777, owner))
				if err := walk(p); err != nil {
					return err
				}
			case unix.S_IFLNK:
				target, err := root.Readlink(p)
				if err != nil {
					return err
				}
				lines = append(lines, fmt.Sprintf("L %s - - - - %s", quote(abs), target))
			case unix.S_IFREG:
				factory := FactoryVar + strings.TrimPrefix(abs, "/var")
				if err := root.Mkdir(path.Dir(factory), 0o755, 0, 0); err != nil {
					return err
				}
				if err := root.Rename(p, factory); err != nil {
					return err
				}
				moved++
				lines = append(lines, fmt.Sprintf("C %s %04o %s - %s", quote(abs), st.Mode&0o7777, owner, factory))
			}
		}
		return nil
	}
	if _, err := root.Lstat("var"); isNotExist(err) {
		return nil, root.Mkdir("var", 0o755, 0, 0)
	}
	if err := walk("var"); err != nil {
		return nil, err
	}
	if moved > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d files under /var moved to %s", moved, FactoryVar))
	}
	if err := emptyDir(root, "var", 0o755); err != nil {
		return nil, err
	}
	return lines, nil
}

func reverse(m map[string]int) map[uint32]string {
	out := map[uint32]string{}
	for n, id := range m {
		if prev, ok := out[uint32(id)]; !ok || n < prev {
			out[uint32(id)] = n
		}
	}
	return out
}

func name(m map[uint32]string, id uint32) string {
	if n, ok := m[id]; ok {
		return n
	}
	return fmt.Sprint(id)
}

// quote escapes what tmpfiles.d's word splitting would break.
func quote(p string) string {
	if !strings.ContainsAny(p, " \t\\\"'") {
		return p
	}
	var b strings.Builder
	for _, r := range p {
		if r == ' ' || r == '\t' || r == '\\' || r == '"' || r == '\'' {
			fmt.Fprintf(&b, "\\x%02x", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeTmpfiles(root *treefs.Root, lines []string) error {
	return writeTmpfilesAt(root, TmpfilesConf, lines)
}

func writeTmpfilesAt(root *treefs.Root, conf string, lines []string) error {
	// Parents sort before children, which tmpfiles needs for "d" lines.
	sort.SliceStable(lines, func(i, j int) bool { return strings.Fields(lines[i])[1] < strings.Fields(lines[j])[1] })
	body := "# Generated by os-update compose: the /var content of the packages.\n" + strings.Join(lines, "\n") + "\n"
	return root.WriteFile(conf, strings.NewReader(body), 0o644, 0, 0)
}

// VarToTmpfiles applies only the /var convention, for a tree that already
// follows the others (package layering): whatever is under /var becomes
// lines of conf (regular files move to FactoryVar) and /var is left
// empty. /etc must still be in place (owner names come from it). Nothing
// is written when /var is empty.
func VarToTmpfiles(root *treefs.Root, conf string) ([]string, error) {
	acct, err := rpmfile.LoadAccounts(root)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	lines, err := convertVar(root, acct, res)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return res.Notes, nil
	}
	return res.Notes, writeTmpfilesAt(root, conf, lines)
}
