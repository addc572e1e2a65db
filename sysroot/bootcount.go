package sysroot

import (
	"fmt"
	"strconv"

	"github.com/osupdate/os-update/bootloader"
)

// BootTriesKey is the repository configuration key ([sysroot]) with the
// number of boots a newly deployed default gets on a boot loader that
// counts (0 turns counting off); default bootloader.DefaultTries.
const BootTriesKey = "boot-counting-tries"

// bootTries reads the configured number of tries.
func (s *Sysroot) bootTries() (int, error) {
	v := s.repo.Config().String("sysroot", BootTriesKey, "")
	if v == "" {
		return bootloader.DefaultTries, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > bootloader.MaxTries {
		return 0, fmt.Errorf("repository config: sysroot.%s = %q: want a number from 0 (no counting) to %d", BootTriesKey, v, bootloader.MaxTries)
	}
	return n, nil
}

// countAction decides the boot counting of a new deployment list: a
// deployment that becomes the default gets tries, unless it is the booted
// one (it reached userspace) or there is nothing to fall back to; a
// default that stays the default keeps its counter as it stands (a used
// up counter keeps the boot loader on the fallback).
func (s *Sysroot) countAction(list []*Deployment) (bootloader.CountAction, error) {
	tries, err := s.bootTries()
	if err != nil {
		return bootloader.CountAction{}, err
	}
	def := list[0]
	switch {
	case tries == 0 || len(list) < 2 || def.same(s.Booted):
		return bootloader.CountAction{}, nil
	case len(s.Deployments) > 0 && def.same(s.Deployments[0]):
		return bootloader.CountAction{Keep: true, KeepName: s.Deployments[0].entryName}, nil
	}
	return bootloader.CountAction{Tries: tries}, nil
}

// BootCount reports the boot loader's counting of the default
// deployment (Method "" if the boot loader does not count).
func (s *Sysroot) BootCount() (bootloader.CountState, error) {
	be, err := s.backend()
	if err != nil {
		return bootloader.CountState{}, err
	}
	c, ok := be.(bootloader.Counter)
	if !ok {
		return bootloader.CountState{}, nil
	}
	return c.CountState(s.loader(), s.entries())
}

// entries are the current boot entries of the deployments, by name.
func (s *Sysroot) entries() []*bootloader.Entry {
	out := make([]*bootloader.Entry, len(s.Deployments))
	for i, d := range s.Deployments {
		out[i] = &bootloader.Entry{Name: d.entryName}
	}
	return out
}

// MarkBootGoodResult says what MarkBootGood did.
type MarkBootGoodResult struct {
	// Changed: a counter was cleared (false: nothing was counting, or the
	// boot loader does not count).
	Changed bool
	// FellBack: the booted deployment is not the default; the default
	// used up its tries and stays marked as failed.
	FellBack bool
	// State is the counting after the change.
	State bootloader.CountState
}

// MarkBootGood records that the booted deployment came up healthy: the
// boot loader stops counting its boots (systemd-boot: the counter
// leaves the entry's file name; grub2: boot_counter is removed and
// boot_success set). If the boot loader fell back to an older deployment,
// the failed default is left as it is. It is an error on a system not
// booted into a deployment of this sysroot.
func (s *Sysroot) MarkBootGood() (*MarkBootGoodResult, error) {
	var res *MarkBootGoodResult
	err := s.mutate(func() error {
		if s.Booted == nil {
			return fmt.Errorf("mark boot good: the running system is not booted into a deployment of %s", s.Path)
		}
		var err error
		res, err = s.markGood(s.Booted)
		return err
	})
	return res, err
}

func (s *Sysroot) markGood(booted *Deployment) (*MarkBootGoodResult, error) {
	idx := -1
	for i, d := range s.Deployments {
		if d.same(booted) {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("mark boot good: deployment %s is not in the boot configuration", booted.Name())
	}
	res := &MarkBootGoodResult{FellBack: idx != 0}
	be, err := s.backend()
	if err != nil {
		return nil, err
	}
	c, ok := be.(bootloader.Counter)
	if !ok {
		return res, nil
	}
	entries := s.entries()
	if res.Changed, err = c.MarkGood(s.loader(), s.BootVersion, entries, idx); err != nil {
		return nil, err
	}
	for i, d := range s.Deployments {
		d.entryName = entries[i].Name
	}
	if res.State, err = c.CountState(s.loader(), entries); err != nil {
		return nil, err
	}
	if res.Changed {
		s.logf("Marked boot good: %s", booted.Name())
	}
	return res, nil
}
