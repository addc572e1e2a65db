package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Boot counting: a newly deployed default entry gets a few tries; a boot
// loader that counts falls back to the next entry (the previous
// deployment) once they are used up, without help from userspace, so even
// a kernel that panics comes back. A boot that reached a healthy
// userspace is marked good (MarkGood), which ends the counting.
//
// Two ways of counting are written:
//   - systemd-boot (Boot Loader Specification, "boot counting"): the entry
//     file is named NAME+LEFT.conf; the boot loader renames it to
//     NAME+LEFT-DONE.conf at each try and sorts an entry with LEFT 0 after
//     the others; marking good drops the suffix.
//   - grub2: the environment block /boot/grub/grubenv holds boot_counter
//     (tries left) and boot_success (0 while on trial), the variables
//     Fedora's greenboot uses; the grub.cfg written here decrements the
//     counter at each boot and boots entry 1 when it is 0.
//
// syslinux/extlinux and u-boot do not count here (see docs/boot.md).

// DefaultTries is how many boots a new default entry gets.
const DefaultTries = 3

// MaxTries bounds the tries (the grub.cfg decrements by a chain of
// comparisons, one per value).
const MaxTries = 9

// ParseCountedName splits a BLS entry file name with a boot counter,
// "NAME+LEFT.conf" or "NAME+LEFT-DONE.conf", into "NAME.conf" and the
// counters. A name without a valid counter is returned unchanged with
// counted false.
func ParseCountedName(name string) (base string, left, done int, counted bool) {
	stem, ok := strings.CutSuffix(name, ".conf")
	if !ok {
		return name, 0, 0, false
	}
	i := strings.LastIndexByte(stem, '+')
	if i < 0 {
		return name, 0, 0, false
	}
	l, d, hasDone := strings.Cut(stem[i+1:], "-")
	var err error
	if left, err = parseCounter(l); err != nil {
		return name, 0, 0, false
	}
	if hasDone {
		if done, err = parseCounter(d); err != nil {
			return name, 0, 0, false
		}
	}
	return stem[:i] + ".conf", left, done, true
}

func parseCounter(s string) (int, error) {
	if s == "" || len(s) > 6 {
		return 0, fmt.Errorf("bad counter %q", s)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("bad counter %q", s)
		}
	}
	return strconv.Atoi(s)
}

// CountedName gives name ("NAME.conf", with or without a counter) the
// counter +tries; tries 0 drops any counter.
func CountedName(name string, tries int) string {
	base, _, _, _ := ParseCountedName(name)
	if tries <= 0 {
		return base
	}
	return strings.TrimSuffix(base, ".conf") + "+" + strconv.Itoa(tries) + ".conf"
}

// CountAction is what a flip does to the boot counter of the new default
// entry.
type CountAction struct {
	// Tries > 0 starts counting: the new default gets that many boots.
	Tries int
	// Keep leaves the counter as it is (the default entry did not change:
	// a try in progress or used up stays so). KeepName is the current
	// default entry's file name (its counter suffix carries over).
	Keep     bool
	KeepName string
	// Otherwise (Tries 0, Keep false) counting stops: the default is the
	// booted deployment, or there is nothing to fall back to.
}

// CountState says where the boot loader's counting of the default entry
// stands.
type CountState struct {
	// Method is "systemd-boot" or "grubenv", "" if the boot loader does
	// not count.
	Method string `json:"method,omitempty"`
	// Counting: the default entry is on trial (not yet marked good).
	Counting bool `json:"counting"`
	// Left is the number of tries left; with Counting and Left 0 the
	// boot loader boots the next entry (it fell back).
	Left int `json:"left"`
	// Done is the number of tries made (systemd-boot only).
	Done int `json:"done,omitempty"`
}

// Exhausted reports that the default entry used up its tries.
func (c CountState) Exhausted() bool { return c.Counting && c.Left <= 0 }

// Counter is implemented by the backends whose boot loader counts boots.
type Counter interface {
	Backend
	// PrepareCount adjusts the entries (default first) before they are
	// written.
	PrepareCount(entries []*Entry, act CountAction)
	// CommitCount runs after the swap: state kept outside loader.N.
	CommitCount(l *Loader, act CountAction) error
	// MarkGood records that the entry at index booted (of entries, read
	// from loader.<version>, the current one) booted into a healthy
	// system. It reports whether anything changed.
	MarkGood(l *Loader, version int, entries []*Entry, booted int) (bool, error)
	// CountState reads the counting of the default entry.
	CountState(l *Loader, entries []*Entry) (CountState, error)
}

// SystemdBoot writes BLS entries only, with the boot counter in the
// default entry's file name (systemd-boot reads the entries itself).
type SystemdBoot struct{ BLS }

func (SystemdBoot) Name() string { return "systemd-boot" }

func (SystemdBoot) PrepareCount(entries []*Entry, act CountAction) {
	if len(entries) == 0 {
		return
	}
	for _, e := range entries {
		e.Name = CountedName(e.Name, 0)
	}
	switch {
	case act.Keep:
		if _, left, done, ok := ParseCountedName(act.KeepName); ok {
			base := strings.TrimSuffix(entries[0].Name, ".conf")
			if done > 0 {
				entries[0].Name = fmt.Sprintf("%s+%d-%d.conf", base, left, done)
			} else {
				entries[0].Name = fmt.Sprintf("%s+%d.conf", base, left)
			}
		}
	case act.Tries > 0:
		entries[0].Name = CountedName(entries[0].Name, act.Tries)
	}
}

func (SystemdBoot) CommitCount(*Loader, CountAction) error { return nil }

// MarkGood renames the booted entry without its counter, as
// systemd-bless-boot does.
func (SystemdBoot) MarkGood(l *Loader, version int, entries []*Entry, booted int) (bool, error) {
	if booted < 0 || booted >= len(entries) {
		return false, fmt.Errorf("mark boot good: no boot entry %d", booted)
	}
	name := entries[booted].Name
	base, _, _, counted := ParseCountedName(name)
	if !counted {
		return false, nil
	}
	dir := filepath.Join(l.BootDir, fmt.Sprintf("loader.%d", version), "entries")
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, base)); err != nil {
		return false, fmt.Errorf("mark boot good: %w", err)
	}
	entries[booted].Name = base
	if err := l.syncDir(dir); err != nil {
		return false, err
	}
	l.flushJournal()
	return true, nil
}

func (SystemdBoot) CountState(_ *Loader, entries []*Entry) (CountState, error) {
	st := CountState{Method: "systemd-boot"}
	if len(entries) > 0 {
		_, st.Left, st.Done, st.Counting = ParseCountedName(entries[0].Name)
	}
	return st, nil
}

// Grub2 counting: grubenv beside grub.cfg.

func (g Grub2) envPath(l *Loader) string { return filepath.Join(l.BootDir, g.Dir, "grubenv") }

func (Grub2) PrepareCount([]*Entry, CountAction) {}

func (g Grub2) CommitCount(l *Loader, act CountAction) error {
	if act.Keep {
		return nil
	}
	return g.editEnv(l, func(env *GrubEnv) {
		if act.Tries > 0 {
			env.Delete("boot_success") // listed after the counter
			env.Set("boot_counter", strconv.Itoa(act.Tries))
			env.Set("boot_success", "0")
		} else {
			env.Delete("boot_counter")
			env.Set("boot_success", "1")
		}
	})
}

// MarkGood ends the trial if the default entry (index 0) booted. After
// a fallback (another entry booted) the used-up counter stays, so grub
// keeps booting the working entry until the deployments change.
func (g Grub2) MarkGood(l *Loader, _ int, _ []*Entry, booted int) (bool, error) {
	if booted != 0 {
		return false, nil
	}
	changed := false
	err := g.editEnv(l, func(env *GrubEnv) {
		if _, ok := env.Get("boot_counter"); ok {
			changed = true
		}
		env.Delete("boot_counter")
		env.Set("boot_success", "1")
	})
	return changed, err
}

func (g Grub2) CountState(l *Loader, _ []*Entry) (CountState, error) {
	st := CountState{Method: "grubenv"}
	env, err := ReadGrubEnv(g.envPath(l))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	c, ok := env.Get("boot_counter")
	if s, _ := env.Get("boot_success"); !ok || s != "0" {
		return st, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil {
		return st, fmt.Errorf("%s: boot_counter %q is not a number", g.envPath(l), c)
	}
	st.Counting, st.Left = true, n
	return st, nil
}

// editEnv reads grubenv (a missing one is empty), applies edit and
// writes it back if anything changed.
func (g Grub2) editEnv(l *Loader, edit func(*GrubEnv)) error {
	p := g.envPath(l)
	env, err := ReadGrubEnv(p)
	if errors.Is(err, os.ErrNotExist) {
		env, err = &GrubEnv{}, nil
	}
	if err != nil {
		return err
	}
	before, err := env.Bytes()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	edit(env)
	after, err := env.Bytes()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if _, serr := os.Stat(p); serr == nil && string(before) == string(after) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp := p + ".os-update-tmp"
	if err := l.writeFile(tmp, after); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := l.syncDir(filepath.Dir(p)); err != nil {
		return err
	}
	// grub reads (and writes) the file's blocks without replaying the
	// journal: the new inode must be in place on disk.
	l.flushJournal()
	return nil
}
